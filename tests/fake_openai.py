"""A real HTTP server on 127.0.0.1 speaking OpenAI's /v1/chat/completions, for tests and benchmarks.

The requested model name picks the behaviour, so one server serves every case:

- anything else: answers ``upstream: <last user message>``, word by word when streaming
- ``slow-<seconds>``: waits that long before answering (for timeouts)
- ``e429``, ``e500``, ``e503``, ``e401``, ``e400``: that HTTP error, in OpenAI's error shape
  (``e401`` quotes the bearer key it got, as some servers do, to prove it is masked; ``e429``
  says ``retry-after-ms: 10``, so a client that retries does so at once)
- ``html``: a 200 whose body is an HTML page (a proxy's sign-in page), not a completion
- ``midstream-error``: streams one token, then an ``error`` event (as vLLM and others do)
- ``moved``: a 307 to another URL
- ``hangup-once``: the first request for it (since ``reset``) is hung up on without an answer
  (as by a server closing a kept-alive connection just then); the next one is answered
- ``linger``: streams its answer and ``[DONE]``, then holds the body open until ``server.gate``
  is set (or 30 s), as a server slow to end its response
- ``unstreamed``: answers a streamed request with one whole completion, as some servers do
- with ``response_format`` in the request (structured output), any model answers with the last
  user message as it is (send the JSON the test expects back)
- ``separators``: answers ``lines<U+2028>para<U+2029>next<U+0085>end``, unescaped in the JSON
  (as it may be); streamed, each event's data is split over two ``data:`` lines
- ``drop``: streams two tokens, then drops the connection mid-body
- ``gated``: streams one token, then waits for ``server.gate`` before the rest
- ``tokens-<n>``: streams n tokens as fast as it can
- ``held``: sets ``server.arrived``, then sends nothing until ``server.hold`` is set; a client
  that hangs up meanwhile sets ``server.hung_up`` (and counts in ``aborted``)
- ``toolcall``: asks for the tool ``get_weather`` with ``{"city": "Paris"}`` (``TOOL_CALL``);
  streaming, the arguments come in pieces, as OpenAI sends them
- ``use-<names>``: a tool-using model. Until the conversation's last message is a tool result,
  it asks for each tool in ``<names>`` (``+``-separated, so ``use-a+b`` asks for two at once),
  with the last user message as arguments when that is a JSON object, else ``{"text": ...}``;
  then it answers ``upstream: tools said: <each result since the last user message, joined
  by " | ">``.
  ``always-<names>`` asks every time (for the step limit). Only tools the request offered
  (its ``tools``) are asked for; with none offered it answers as ``use-`` would at the end.

``POST /v1/embeddings`` answers with a vector per input (a string, a list of strings, a token
array or a list of them): deterministic, from the input's words (each lower-cased word adds 1
or -1 at a place its BLAKE2b hash picks; a token array's words are its numbers), L2-normalised,
``EMBEDDING_DIMENSION`` long unless the request asks for ``dimensions``; base64 when asked
(the openai SDK's default). The model names ``slow-<seconds>`` and ``e429``, ``e500``... behave
as on the chat route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import select
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSION = 16

TOOL_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        received = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append(
            {"path": self.path, "body": body, "headers": headers, "received_at": received}
        )
        if self.path.rstrip("/").endswith("/embeddings"):
            self._embeddings(body)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        model = str(body.get("model", ""))
        if model == "unstreamed":
            body = {**body, "stream": False}
        if model == "held" and not self._hold():
            return
        if model == "hangup-once" and not self.server.hung_up_once:
            self.server.hung_up_once = True
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if model == "moved":
            self.send_response(307)
            self.send_header("Location", "https://elsewhere.invalid/v1/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if model.startswith("slow-"):
            time.sleep(float(model.split("-", 1)[1]))
        if self._error(model):
            return
        if model == "html":
            page = b"<html><body><h1>Sign in to continue</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if model == "toolcall":
            self._tool_call(model, bool(body.get("stream")))
            return
        said = None
        if model.startswith(("use-", "always-")):
            said = self._use_tools(model, body)
            if said is True:
                return
        last_user = said or next(
            (
                m.get("content")
                for m in reversed(body.get("messages", []))
                if m.get("role") == "user"
            ),
            "",
        )
        if isinstance(last_user, list):
            last_user = "".join(p.get("text", "") for p in last_user)
        text = last_user if body.get("response_format") else f"upstream: {last_user}"
        if model == "surrogate":  # (a broken upstream: a lone surrogate, escaped in its JSON)
            text = "half \ud83d of an emoji, a whole one: \ud83d\ude00"
        if model == "separators":
            text = "lines\u2028para\u2029next\x85end"
        if model.startswith("tokens-"):
            text = " ".join(f"t{i}" for i in range(int(model.split("-", 1)[1])))
        tokens = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        if model == "surrogate":  # (streamed, the whole one is cut in two, as UTF-16 units)
            tokens[-1:] = [tokens[-1][:-1], tokens[-1][-1:]]
        usage = {
            "prompt_tokens": 7,
            "completion_tokens": len(tokens),
            "total_tokens": 7 + len(tokens),
        }
        if not body.get("stream"):
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        self._stream(
            model, tokens, usage, bool((body.get("stream_options") or {}).get("include_usage"))
        )

    def _error(self, model: str) -> bool:
        """Answer ``e<status>`` models with that error; True when it did."""
        if not (model.startswith("e") and model[1:].isdigit()):
            return False
        status = int(model[1:])
        message = {
            401: "Incorrect API key provided: "
            + self.headers.get("Authorization", "").removeprefix("Bearer "),
            429: "Rate limit reached",
            400: "Invalid request",
        }.get(status, "Upstream broke")
        headers = {"retry-after-ms": "10"} if status == 429 else {}
        error = {"error": {"message": message, "type": "error", "code": status}}
        self._json(status, error, headers)
        return True

    def _embeddings(self, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if model.startswith("slow-"):
            time.sleep(float(model.split("-", 1)[1]))
        if self._error(model):
            return
        inputs = _embedding_inputs(body.get("input"))
        dimension = body.get("dimensions") or EMBEDDING_DIMENSION
        if inputs is None or not isinstance(dimension, int) or dimension < 1:
            message = "input must be a string, an array of strings, or token arrays"
            if inputs is not None:
                message = "dimensions must be a positive integer"
            self._json(400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        data = []
        for index, words in enumerate(inputs):
            vector = fake_embedding(words, dimension)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                packed = struct.pack(f"<{dimension}f", *vector)
                embedding = base64.b64encode(packed).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(words) for words in inputs)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _use_tools(self, model: str, body: dict[str, Any]) -> bool | str | None:
        """The ``use-``/``always-`` models: True when it asked for tools, else the text to
        answer to (None: the last user message)."""
        messages = body.get("messages", [])
        offered = {t["function"]["name"] for t in body.get("tools") or ()}
        kind, _, names = model.partition("-")
        wanted = [n for n in names.split("+") if n in offered]
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        done = bool(messages) and messages[-1].get("role") == "tool"
        if wanted and (kind == "always" or not done):
            text = messages[last_user].get("content") if last_user >= 0 else ""
            try:
                args = json.loads(text)
            except (TypeError, ValueError):
                args = None
            if not isinstance(args, dict):
                args = {"text": text}
            step = len([m for m in messages[last_user + 1 :] if m.get("role") == "assistant"])
            calls = [
                {
                    "id": f"call_{name}_{step}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, name in enumerate(wanted)
            ]
            self._tool_call(model, bool(body.get("stream")), calls)
            return True
        if not results:
            return None
        return "tools said: " + " | ".join(str(m.get("content")) for m in results)

    def _tool_call(
        self, model: str, stream: bool, calls: list[dict[str, Any]] | None = None
    ) -> None:
        calls = calls or [TOOL_CALL]
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if not stream:
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
                    "usage": usage,
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(model, {"role": "assistant", "content": None})
        for index, call in enumerate(calls):
            name = call["function"]["name"]
            first = {"index": index, "id": call["id"], "type": "function"}
            function = {"name": name, "arguments": ""}
            self._event(model, {"tool_calls": [{**first, "function": function}]})
            arguments = call["function"]["arguments"]
            for piece in (arguments[:8], arguments[8:]):
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                self._event(model, delta)
        self._event(model, {}, finish="tool_calls")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _hold(self) -> bool:
        """Wait for ``server.hold``; False (and ``hung_up`` set) if the client hangs up first."""
        self.server.arrived.set()
        while not self.server.hold.wait(0.02):  # (the fake's own poll; tests wait on events)
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.aborted += 1
                self.server.hung_up.set()
                self.close_connection = True
                return False
        return True

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = _dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, payload: str) -> None:
        data = payload.encode()
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(
        self,
        model: str,
        delta: dict[str, Any],
        finish: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            chunk["usage"] = usage
        data = _dumps(chunk)
        if model == "separators":  # (one event's data over two lines, as SSE allows)
            data = data.replace(", ", ",\ndata: ", 1)
        self._chunk(f"data: {data}\n\n")

    def _stream(
        self, model: str, tokens: list[str], usage: dict[str, int], include_usage: bool
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._event(model, {"role": "assistant", "content": ""})
        for i, token in enumerate(tokens):
            if model == "drop" and i == 2:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # no final chunk: the body is cut
                return
            if model == "gated" and i == 1:
                self.server.gate.wait(timeout=30)
            if model == "midstream-error" and i == 1:
                error = {"message": "the model server ran out of memory", "type": "server_error"}
                self._chunk(f"data: {json.dumps({'error': error})}\n\n")
                self._chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            try:
                self._event(model, {"content": token})
            except OSError:  # the client hung up: count it, so tests can see the cancel
                self.server.aborted += 1
                self.close_connection = True
                return
        self._event(model, {}, finish="stop")
        if include_usage:
            self._event(model, {}, usage=usage)
        self._chunk("data: [DONE]\n\n")
        if model == "linger":
            self.server.gate.wait(timeout=30)
        self.wfile.write(b"0\r\n\r\n")
        self.server.finished_at = time.perf_counter()


def _dumps(payload: Any) -> str:
    """JSON with text unescaped, as many servers send it; escaped when it cannot be UTF-8
    (the ``surrogate`` model's lone surrogate)."""
    text = json.dumps(payload, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload)
    return text


def _embedding_inputs(value: Any) -> list[list[str]] | None:
    """Each input's words: a string's lower-cased words, a token array's numbers; None when
    the input is not one of the shapes OpenAI takes."""

    def is_tokens(item: Any) -> bool:
        return (
            isinstance(item, list)
            and bool(item)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )

    if isinstance(value, str) or is_tokens(value):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    inputs = []
    for item in value:
        if isinstance(item, str):
            inputs.append(re.findall(r"\w+", item.lower()))
        elif is_tokens(item):
            inputs.append([str(t) for t in item])
        else:
            return None
    return inputs


def fake_embedding(words: list[str], dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """The fake upstream's vector for these words (what tests compare the client's with)."""
    vector = [0.0] * dimension
    for word in words:
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vector[digest % dimension] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connections under load
    connections = 0  # accepted so far

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts, drops) are part of the tests

    requests: list[dict[str, Any]]
    gate: threading.Event
    hold: threading.Event
    arrived: threading.Event
    hung_up: threading.Event
    hung_up_once: bool
    finished_at: float | None
    aborted: int


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as upstream:``; ``upstream.url`` is the /v1 base URL."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.requests = []
        self._server.gate = threading.Event()
        self._server.hold = threading.Event()
        self._server.arrived = threading.Event()
        self._server.hung_up = threading.Event()
        self._server.hung_up_once = False
        self._server.finished_at = None
        self._server.aborted = 0
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.requests

    @property
    def gate(self) -> threading.Event:
        return self._server.gate

    @property
    def hold(self) -> threading.Event:
        """Releases ``held`` requests."""
        return self._server.hold

    @property
    def arrived(self) -> threading.Event:
        """Set when a ``held`` request has arrived."""
        return self._server.arrived

    @property
    def hung_up(self) -> threading.Event:
        """Set when the client of a ``held`` request hung up before it was released."""
        return self._server.hung_up

    @property
    def finished_at(self) -> float | None:
        """When the last streamed reply was fully sent (perf_counter), since ``reset``."""
        return self._server.finished_at

    @property
    def connections(self) -> int:
        """How many connections it has accepted (a client that keeps them alive makes few)."""
        return self._server.connections

    @property
    def aborted(self) -> int:
        """How many streamed replies the client hung up on."""
        return self._server.aborted

    def reset(self) -> None:
        self._server.gate.clear()
        self._server.hold.clear()
        self._server.arrived.clear()
        self._server.hung_up.clear()
        self._server.hung_up_once = False
        self._server.finished_at = None

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.gate.set()
        self._server.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # run it by hand: python tests/fake_openai.py
    with FakeOpenAI() as upstream:
        print(upstream.url, flush=True)
        threading.Event().wait()
