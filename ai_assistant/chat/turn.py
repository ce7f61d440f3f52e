"""The one turn every surface drives: which model answers, what is sent, what happens when a
provider fails, what is recorded, and what callbacks see. It prints nothing itself.

A reply streams as typed events (``chat.events``). With tools offered, the model's tool calls
are run (concurrently when it asks for several; a failure is the tool's result, never the
turn's) and their results fed back until it answers, at most ``chat.max_tool_steps`` times; each
step is recorded in the history as it ends. A model that fails before its first token
with a connection error, a timeout, HTTP 429 or 5xx hands over to the next model in its
``chat.fallbacks`` list; an authentication failure (401/403) never falls back. A failure after
tokens arrived keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ModelUnavailableError, UnknownModelError
from ..host import Host
from ..storage import COMPLETE, FAILED, INTERRUPTED, STREAMING, SQLiteStore, SyncStore
from .events import Done, Error, Event, Fallback, Token, ToolCall, ToolResult, Usage
from .failures import ChatError, Failure, classify, key_hint
from .prompt import Message, assemble, to_langchain
from .recording import Recorder
from .reply import Reply
from .settings import chat_settings, resolve_model_id
from .text import repaired

if TYPE_CHECKING:
    from ..registry import Tool

# a streamed reply's text is saved within this many seconds of arriving: a kill loses little
FLUSH_SECONDS = 0.5

USER_INTERRUPT = "interrupted by the user"
READER_GONE = "the reader went away before the reply ended"


def _text_of(content: Any) -> str:
    """The text of a model's message or chunk, as it came."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or ())


class Turn:
    """One exchange: the prompt is assembled when the turn is made (so a prompt that does not
    fit raises ``PromptTooLongError`` before anything is stored or sent); ``events()`` records
    the new messages, calls the models and yields what happens.

    ``messages`` are the new messages; ``record`` those of them to store (default: the user and
    tool messages). ``stream=False`` asks each model once, without streaming (cheaper when
    nobody reads the tokens as they come). ``timeout`` bounds the whole reply, fallbacks
    included. A driver that cancels the turn may first set ``interrupt_reason``, which is what
    the history says about the partial reply.

    ``tools`` are the registered tools this turn offers and runs; ``client_tools`` are
    OpenAI tool definitions the model is offered but the caller runs (the gateway's
    pass-through: their calls end the reply), with OpenAI's ``tool_choice`` if given.
    ``approve(call)`` is awaited before a tool that
    matches ``tools.require_approval`` runs; without it such a tool is refused.

    ``record_whole`` (on the gateway's async store) writes each exchange once, whole, when its
    reply ends, instead of its start first and the reply as it goes: for a reply nobody sees
    before it ends. A process killed meanwhile then leaves no record of it, rather than an
    ``interrupted`` one.
    """

    def __init__(
        self,
        host: Host,
        model_id: str | None,
        messages: Sequence[Message | tuple[str, str]],
        *,
        history: Sequence[Message | tuple[str, str]] = (),
        system: str | None = None,
        store: SQLiteStore | SyncStore | None = None,
        conversation_id: str | None = None,
        owner: str | None = None,
        record: Sequence[Message | str] | None = None,
        surface: str = "python",
        user: str | None = None,
        stream: bool = True,
        options: dict[str, Any] | None = None,
        max_prompt_chars: int | None = None,
        timeout: float | None = None,
        on_notice: Callable[[str], None] | None = None,
        tools: Sequence[Tool] = (),
        client_tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | dict[str, Any] | None = None,
        approve: Callable[[ToolCall], Awaitable[bool]] | None = None,
        knowledge: int | None = None,
        record_whole: bool = False,
    ) -> None:
        self.host = host
        # chat --knowledge: retrieve this many passages for the newest user message first
        self.knowledge = knowledge
        self.tools = {tool.id: tool for tool in tools}
        self.client_tools = list(client_tools)
        self.tool_choice = tool_choice
        self.approve = approve
        self._bindable: list[Any] | None = None  # the tools as bind_tools takes them
        self._raw_calls: list[dict[str, Any]] = []  # this answer's tool calls, unmasked
        settings = chat_settings(host)
        self.model_id = resolve_model_id(host, model_id)
        new = [Message.of(m) for m in messages]
        self.query = next((m.content for m in reversed(new) if m.role == "user"), "")
        self.prompt = assemble(
            new, history, system, settings["prefix"], settings["suffix"], max_prompt_chars
        )
        self.record = (
            list(record) if record is not None else [m for m in new if m.role in ("user", "tool")]
        )
        self.reply = Reply(self.model_id)
        self.recorder = Recorder(
            store, conversation_id, owner=owner, system=system, whole=record_whole
        )
        self.candidates = [self.model_id, *settings["fallbacks"].get(self.model_id, [])]
        self.stream = stream
        self.options = options or {}
        self.timeout = timeout
        self.on_notice = on_notice or (lambda message: None)
        self.interrupt_reason: str | None = None
        # what callbacks are told about the turn: see hookspecs.register_callbacks
        self.metadata: dict[str, Any] = {
            "model_id": self.model_id,
            "conversation_id": conversation_id,
            "user": user,
            "surface": surface,
        }
        self.handlers: list[Any] = []
        self.started = time.perf_counter()
        self._last_flush = self.started
        self._save_soon: asyncio.TimerHandle | None = None  # when the text so far is saved
        self._save_failed: Exception | None = None  # (raised in the turn, at the next chunk)
        self._deadline: float | None = None

    @property
    def conversation_id(self) -> str | None:
        return self.recorder.conversation_id

    # -- the loop ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Record the new messages, then the reply's events as they come; the reply is recorded
        as it ends, before the last event (``Done`` or ``Error``). Cancelled or closed early,
        the partial reply is recorded as interrupted."""
        reply = self.reply
        self.started = self._last_flush = time.perf_counter()
        if self.timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + self.timeout
        if self.knowledge:
            await self._retrieve(self.knowledge)
        self.recorder.start(self.model_id, self.record, reply)
        self.metadata["conversation_id"] = self.recorder.conversation_id
        if len(self.host.callbacks):
            self.handlers = self.host.callbacks.handlers(self.metadata, self.on_notice)
        error: ChatError | None = None
        try:
            async with contextlib.aclosing(self._answers()) as answers:
                async for event in answers:
                    yield event
        except ChatError as exc:
            error = exc
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(error)
        if error is not None:
            yield Error(error)
            return
        if reply.input_tokens is not None or reply.output_tokens is not None:
            yield Usage(reply.input_tokens, reply.output_tokens)
        yield Done(reply)

    async def _retrieve(self, k: int) -> None:
        """``chat --knowledge``: the passages closest to the newest user message go into the
        prompt (``add_knowledge``), and their sources are the reply's citations. Nothing
        ingested, or no knowledge configured, is a ``KnowledgeError`` before anything is
        sent."""
        from ..knowledge.search import citation, knowledge_of
        from ..knowledge.tool import passages
        from .prompt import add_knowledge

        hits = await knowledge_of(self.host).asearch(self.query, k)
        add_knowledge(self.prompt, passages(hits))
        self.reply.cite(citation(hit) for hit in hits)

    async def _answers(self) -> AsyncIterator[Event]:
        """The model's answers and the tools' results, until it answers without asking for a
        tool (or asks more often than ``chat.max_tool_steps`` allows)."""
        steps = 0
        while True:
            async with contextlib.aclosing(self._answer()) as answer:
                async for event in answer:
                    yield event
            calls = self._raw_calls
            if not self.tools or not calls:
                return
            from ..tools import tool_settings

            limit = tool_settings(self.host).max_steps
            if steps >= limit:
                self.reply.tool_calls = []  # not run: the history must not hold them unanswered
                text = (
                    f"[stopped: the model asked for tools again after {limit} tool steps, "
                    "the limit chat.max_tool_steps sets]"
                )
                if self.reply.parts:
                    text = "\n\n" + text
                self.reply.parts.append(text)
                self.on_notice(f"tool calls stopped at chat.max_tool_steps ({limit})")
                yield Token(text)
                return
            steps += 1
            async with contextlib.aclosing(self._run_calls(calls)) as results:
                async for event in results:
                    yield event

    async def _run_calls(self, calls: list[dict[str, Any]]) -> AsyncIterator[Event]:
        """Run one step's tool calls concurrently; record the step and its results, and add
        them to the prompt for the next answer."""
        reply = self.reply
        outcomes = await self._wait(asyncio.gather(*(self._run_call(c) for c in calls)))
        results = [
            Message("tool", repaired(text), tool_call_id=call.get("id") or "")
            for call, (text, _ok, _sources) in zip(calls, outcomes, strict=True)
        ]
        for call, result, (_text, ok, sources) in zip(calls, results, outcomes, strict=True):
            reply.cite(sources)
            event = ToolResult(
                call.get("id") or "", call["name"], result.content, not ok, tuple(sources)
            )
            reply.results[event.tool_call_id] = event
            yield event
        asked = Message("assistant", reply.text, list(reply.tool_calls))  # masked: stored
        # the model is shown the calls it made, as it made them, not their masked copies
        as_made = Message("assistant", reply.text, [dict(call) for call in calls])
        self.prompt.messages.extend(to_langchain([as_made, *results]))
        reply.steps.extend([asked, *results])
        # this step's assistant message is complete; the results and a new reply follow it
        reply.status, reply.latency_ms = COMPLETE, _ms_since(self.started)
        self._cancel_save()
        self.recorder.finish(reply)
        reply.parts, reply.tool_calls, reply.status = [], [], STREAMING
        self.recorder.start(reply.model_id, list(results), reply)

    async def _run_call(self, call: dict[str, Any]) -> tuple[str, bool, list[dict[str, Any]]]:
        """One tool call's result text, whether the tool ran without failing, and the sources
        its result cites."""
        from ..tools import run_tool, tool_settings

        name = call["name"]
        tool = self.tools.get(name)
        if tool is None:
            offered = ", ".join(self.tools) or "none"
            return f"error: no tool named {name!r} is offered here (offered: {offered})", False, []
        if tool_settings(self.host).needs_approval(name):
            event = ToolCall(call.get("id"), name, call.get("args") or {})
            allowed = False
            if self.approve is not None:
                allowed = await self.approve(event)
            if not allowed:
                self.on_notice(f"tool {name!r} was not run: it needs approval")
                return (
                    f"not run: the tool {name!r} needs the user's approval, which was not "
                    "given. Do not call it again in this reply.",
                    False,
                    [],
                )
        return await run_tool(self.host, tool, call.get("args") or {}, call.get("id") or "")

    def _bind(self, chat_model: Any) -> Any:
        """``chat_model`` offered this turn's tools (``bind_tools``), if there are any."""
        if not self.tools and not self.client_tools:
            return chat_model
        if self._bindable is None:
            bindable: list[Any] = []
            for tool in list(self.tools.values()):
                try:
                    bindable.append(tool.get())
                except Exception as exc:  # noqa: BLE001 - a tool that cannot be built is left out
                    del self.tools[tool.id]
                    why = self.host.config.redact(str(exc))
                    self.on_notice(f"tool {tool.id!r} is not offered: {why}")
            self._bindable = bindable + self.client_tools
        if not self._bindable:
            return chat_model
        try:
            if self.tool_choice is not None:
                return chat_model.bind_tools(self._bindable, tool_choice=self.tool_choice)
            return chat_model.bind_tools(self._bindable)
        except NotImplementedError:
            if self.client_tools:  # the caller asked for its tools: a request this model refuses
                raise ChatError(
                    f"model {self.reply.model_id!r} cannot call tools",
                    hint="pick a model that can, or send no tools",
                    reply=self.reply,
                    failure=Failure("request", "the model cannot call tools", False),
                ) from None
            self.on_notice(
                f"model {self.reply.model_id!r} cannot call tools: it answers without them"
            )
            return chat_model

    async def _answer(self) -> AsyncIterator[Event]:
        """Each candidate in turn until one answers; ``ChatError`` when none can."""
        self._raw_calls = []
        for index, chat_model in self._models():
            chat_model = self._bind(chat_model)
            try:
                async with contextlib.aclosing(self._call(index, chat_model)) as answer:
                    async for event in answer:
                        yield event
            except ChatError:
                raise
            except Exception as exc:  # noqa: BLE001 - any provider error is classified
                fallback = self._failed(exc, index)
                yield fallback
                continue
            self._answered()
            return
        raise self._exhausted()

    async def _call(self, index: int, chat_model: Any) -> AsyncIterator[Event]:
        """One model's answer: its tokens, then its tool calls."""
        kwargs = {**self.options, **self.run_config(index)}
        messages = self.prompt.messages
        if not self.stream:
            message = await self._wait(chat_model.ainvoke(messages, **kwargs))
            text = self._take(message)
            if text:
                yield Token(text)
            for event in self._tool_calls(getattr(message, "tool_calls", None) or ()):
                yield event
            return
        inner = chat_model.astream(messages, **kwargs)
        tool_chunks = None  # only the chunks that carry tool calls are added up: cheap
        held = ""  # a chunk's last character, when it is the first half of a surrogate pair
        try:
            while True:
                try:
                    chunk = await self._wait(anext(inner))
                except StopAsyncIteration:
                    break
                raw = held + _text_of(chunk.content)
                held = raw[-1] if raw and "\ud800" <= raw[-1] <= "\udbff" else ""
                text = self._take(chunk, raw[: len(raw) - len(held)])
                if text:
                    yield Token(text)
                if getattr(chunk, "tool_call_chunks", None):
                    tool_chunks = chunk if tool_chunks is None else tool_chunks + chunk
            if held:  # (its other half never came)
                yield Token(self._take(None, held))
        finally:
            await inner.aclose()  # a reader that stops early cancels the upstream request
        if tool_chunks is not None:
            for event in self._tool_calls(tool_chunks.tool_calls):
                yield event

    async def _wait(self, awaitable: Any) -> Any:
        """``awaitable``, within what is left of ``timeout``."""
        if self._deadline is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(self._deadline) as bound:
                return await awaitable
        except TimeoutError:
            if not bound.expired():
                raise  # the provider's own timeout: a failure like any other
            raise ChatError(
                f"no complete reply within server.limits.request_timeout ({self.timeout:g} s)",
                reply=self.reply,
                failure=Failure("timeout", "timed out", False),
            ) from None

    # -- what each step means ------------------------------------------------------------------

    def run_config(self, index: int) -> dict[str, Any]:
        """The LangChain run config for candidate ``index``: the callbacks, once per turn, with
        the turn's metadata (and which model this call is, when it is a fallback)."""
        if not self.handlers:
            return {}
        metadata = {**self.metadata, "called_model_id": self.candidates[index]}
        if index:
            metadata["fallback_from"] = self.candidates[index - 1]
        return {
            "config": {
                "callbacks": self.handlers,
                "metadata": metadata,
                "run_name": f"ai-assistant {self.metadata['surface']}",
                "tags": [f"surface:{self.metadata['surface']}"],
            }
        }

    def _models(self) -> Iterator[tuple[int, Any]]:
        """(index, LangChain model) of each candidate in turn; an unusable fallback is skipped
        with a notice, an unusable first choice is an error."""
        for index, model_id in enumerate(self.candidates):
            self.reply.model_id = model_id
            try:
                chat_model = self.host.registry.get(model_id).get()
            except (ModelUnavailableError, UnknownModelError) as exc:
                # a factory's error may quote its settings (pydantic prints the input): redacted
                why = self.host.config.redact(str(exc))
                if index == 0:
                    raise ChatError(why, hint=exc.hint, reply=self.reply) from None
                self.reply.failures.append((model_id, why))
                self.on_notice(f"skipping fallback {model_id!r}: {why}")
                continue
            yield index, chat_model

    def _take(self, chunk: Any, text: str | None = None) -> str:
        """Account for one streamed chunk (or a whole message); its text (may be empty),
        repaired (``text.repaired``). ``text``: what of the chunk's text to take now, if not
        all of it."""
        if self._save_failed is not None:  # (the store's failure, not the model's)
            failed, self._save_failed = self._save_failed, None
            raise ChatError(
                f"the reply could not be saved: {self.host.config.redact(str(failed))}",
                hint=getattr(failed, "hint", None),
                reply=self.reply,
            ) from failed
        reply = self.reply
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            reply.input_tokens = (reply.input_tokens or 0) + usage.get("input_tokens", 0)
            reply.output_tokens = (reply.output_tokens or 0) + usage.get("output_tokens", 0)
        text = repaired(_text_of(chunk.content) if text is None else text)
        if text:
            if reply.first_token_ms is None:
                reply.first_token_ms = _ms_since(self.started)
            reply.parts.append(text)
            if self._save_soon is None and self.stream:
                # (on a timer, not at the next chunk: text that arrives before the stream
                # stalls, in a pause or while a tool runs, is saved all the same)
                wait = max(0.0, self._last_flush + FLUSH_SECONDS - time.perf_counter())
                loop = asyncio.get_running_loop()
                self._save_soon = loop.call_later(wait, self._save_progress)
        return text

    def _save_progress(self) -> None:
        self._save_soon = None
        self._last_flush = time.perf_counter()
        try:
            self.recorder.progress(self.reply)
        except Exception as exc:  # noqa: BLE001 - not the loop's to print: the turn's
            self._save_failed = exc

    def _cancel_save(self) -> None:
        """The text is about to be recorded whole: no timer must save a part of it after (and
        a part that could not be saved is the whole write's to report now)."""
        if self._save_soon is not None:
            self._save_soon.cancel()
            self._save_soon = None
        self._save_failed = None

    def _tool_calls(self, calls: Any) -> Iterator[ToolCall]:
        for call in calls:
            args = call.get("args") or {}
            # (what is shown and stored is masked; the tool gets the arguments as sent)
            entry = {"id": call.get("id"), "name": call["name"], "args": args}
            self._raw_calls.append(entry)
            entry = {**entry, "args": self.host.config.mask(args)}
            self.reply.tool_calls.append(entry)
            if self.reply.first_token_ms is None:
                self.reply.first_token_ms = _ms_since(self.started)
            yield ToolCall(entry["id"], entry["name"], entry["args"])

    def _failed(self, exc: Exception, index: int) -> Fallback:
        """The ``Fallback`` to the next candidate; ``ChatError`` if there is none to try."""
        reply = self.reply
        model_id = self.candidates[index]
        failure = classify(exc)
        why = self.host.config.redact(failure.description)
        if reply.parts or reply.tool_calls:
            raise ChatError(
                f"the reply from {model_id!r} broke off: {why}",
                hint="what arrived is kept in the history; ask again to retry",
                reply=reply,
                failure=failure,
            ) from None
        if failure.kind == "auth":
            model = self.host.registry.get(model_id)
            raise ChatError(
                f"model {model_id!r} was refused: {why}",
                hint=key_hint(model),
                reply=reply,
                failure=failure,
            ) from None
        reply.failures.append((model_id, why))
        if failure.fallback and index + 1 < len(self.candidates):
            following = self.candidates[index + 1]
            self.on_notice(f"model {model_id!r} failed ({why}); trying {following!r}")
            return Fallback(model_id, following, why)
        hint = None
        if index == 0 and failure.fallback:
            hint = f'to fall back, set chat.fallbacks = {{ "{model_id}" = ["other-id"] }}'
        raise ChatError(
            f"model {model_id!r} failed: {why}", hint=hint, reply=reply, failure=failure
        ) from None

    def _answered(self) -> None:
        if self.reply.failures:
            failed = "; ".join(f"{m!r}: {why}" for m, why in self.reply.failures)
            self.on_notice(f"answered by {self.reply.model_id!r} (failed before it: {failed})")

    def _exhausted(self) -> ChatError:
        return ChatError(
            "no model could answer: "
            + "; ".join(f"{m!r}: {why}" for m, why in self.reply.failures),
            reply=self.reply,
        )

    def _finish(self, exc: BaseException | None) -> None:
        """Set the reply's final status from how the turn ended, and record it."""
        self._cancel_save()
        reply = self.reply
        reply.latency_ms = _ms_since(self.started)
        if exc is None:
            reply.status = COMPLETE
        elif isinstance(exc, KeyboardInterrupt):
            reply.status, reply.error = INTERRUPTED, USER_INTERRUPT
        elif isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            reply.status, reply.error = INTERRUPTED, self.interrupt_reason or READER_GONE
        else:
            reply.status = FAILED
            reply.error = self.host.config.redact(str(exc)) or type(exc).__name__
        self.recorder.finish(reply)


def _ms_since(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
