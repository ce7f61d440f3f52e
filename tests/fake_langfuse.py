"""A stand-in for Langfuse's ingestion endpoints on 127.0.0.1, recording what arrives.

The langfuse 5 SDK sends its traces as OpenTelemetry spans: OTLP/HTTP protobuf, gzipped, with
HTTP basic auth (public key : secret key), POSTed to ``<host>/api/public/otel/v1/traces``. Scores
go to ``<host>/api/public/scores`` as a JSON list, and any other API call gets ``{}``. Every
request is recorded (path, headers, raw body); ``spans()`` decodes the OTLP ones into plain
dicts::

    {"name", "trace_id", "span_id", "parent_span_id", "scope", "attributes": {key: value}}

with attribute values as Python values (strings, numbers, lists).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OTLP_TRACES = "/api/public/otel/v1/traces"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._record(b"")
        self._answer(200, b"{}", "application/json")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self._record(body)
        if self.path.split("?")[0] == OTLP_TRACES:
            # an empty ExportTraceServiceResponse: everything accepted
            self._answer(200, b"", "application/x-protobuf")
        else:
            self._answer(200, b"{}", "application/json")

    def _record(self, body: bytes) -> None:
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, Any]]
    lock: threading.Lock


def _value(any_value: Any) -> Any:
    """A Python value from an OTLP ``AnyValue``."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


class FakeLangfuse:
    """``with FakeLangfuse() as server:`` serves on ``server.url`` until the block ends."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.requests = []
        self._server.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLangfuse:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.requests)

    def reset(self) -> None:
        with self._server.lock:
            self._server.requests.clear()

    def trace_posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].split("?")[0] == OTLP_TRACES]

    def basic_auth(self, request: dict[str, Any]) -> tuple[str, str]:
        """(public key, secret key) from a request's Authorization header."""
        scheme, _, encoded = request["headers"].get("authorization", "").partition(" ")
        assert scheme == "Basic", request["headers"]
        public, _, secret = base64.b64decode(encoded).decode().partition(":")
        return public, secret

    def spans(self) -> list[dict[str, Any]]:
        """Every span received so far, decoded."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = []
        for request in self.trace_posts():
            if "json" in request["headers"].get("content-type", ""):
                raise AssertionError("OTLP/JSON is not decoded here: " + json.dumps(request))
            export = ExportTraceServiceRequest()
            export.ParseFromString(request["body"])
            for resource_spans in export.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "scope": scope_spans.scope.name,
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                            }
                        )
        return spans

    def wait_for_spans(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The spans, once at least ``count`` arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if len(spans) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.02)
