"""``Chat``: the blocking face of the async turn, for the CLI and the Python API.

Each turn runs on the process's background event loop (``ai_assistant.loop``, where the host
started too); its events come back through a queue. A ``KeyboardInterrupt`` (Ctrl-C, or the
CLI's SIGTERM) while a reply streams cancels the turn there, and the partial reply is recorded
as interrupted by the user before the interruption goes on up.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import AiAssistantError
from ..host import Host
from ..loop import background_loop
from ..storage import SQLiteStore, SyncStore
from .events import Error, Event, Token, ToolCall
from .failures import ChatError
from .prompt import Message, assemble
from .recording import Recorder
from .reply import Reply
from .settings import chat_settings, resolve_model_id
from .turn import READER_GONE, USER_INTERRUPT, Turn

CANCEL_WAIT_SECONDS = 10  # how long an interrupted turn may take to record itself


class _Notice:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Ask:
    __slots__ = ("call", "future")

    def __init__(self, call: Any, future: asyncio.Future[bool]) -> None:
        self.call = call
        self.future = future


def _settle(future: asyncio.Future[bool], answer: bool) -> None:
    if not future.done():
        future.set_result(answer)


class _Ended:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException | None) -> None:
        self.exc = exc


def drive(
    turn: Turn,
    loop: asyncio.AbstractEventLoop,
    on_notice: Callable[[str], None],
    text_only: bool = False,
    on_approve: Callable[[Any], bool] | None = None,
) -> Iterator[Any]:
    """``turn``'s events (or, ``text_only``, the text of its tokens), from ``loop``, in this
    thread; notices are handed to ``on_notice`` here, in order; an ``Error`` is raised. A tool
    that needs approval is put to ``on_approve(call)`` here too (refused without it).

    Whatever interrupts the reader here (Ctrl-C at a yield, thrown in with ``yield from``)
    cancels the turn, which records why before this returns."""
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    finished = threading.Event()
    turn.on_notice = lambda message: events.put(_Notice(message))
    if on_approve is not None:

        async def approve(call: Any) -> bool:
            future = asyncio.get_running_loop().create_future()
            events.put(_Ask(call, future))
            return await future

        turn.approve = approve

    control: dict[str, Any] = {"task": None, "cancelled": False}  # touched on the loop only

    async def pump() -> None:
        control["task"] = asyncio.current_task()
        ended: BaseException | None = None
        try:
            if control["cancelled"]:  # (cancelled before it started)
                raise asyncio.CancelledError
            async for event in turn.events():
                events.put(event)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            ended = exc
        finally:
            events.put(_Ended(ended))
            finished.set()

    def cancel() -> None:  # on the loop: the task if it runs, else before it does
        control["cancelled"] = True
        if control["task"] is not None:
            control["task"].cancel()

    asyncio.run_coroutine_threadsafe(pump(), loop)
    try:
        while True:
            item = events.get()
            if isinstance(item, _Notice):
                on_notice(item.message)
            elif isinstance(item, _Ask):
                assert on_approve is not None
                allowed = False
                try:
                    allowed = bool(on_approve(item.call))
                finally:
                    loop.call_soon_threadsafe(_settle, item.future, allowed)
            elif isinstance(item, _Ended):
                if item.exc is not None and not isinstance(item.exc, asyncio.CancelledError):
                    raise item.exc
                return
            elif isinstance(item, Error):
                raise item.error
            elif not text_only:
                yield item
            elif isinstance(item, Token):
                yield item.text
    except BaseException as exc:  # Ctrl-C, SIGTERM, or a reader that stopped reading
        if not finished.is_set() and not isinstance(exc, ChatError):
            turn.interrupt_reason = (
                USER_INTERRUPT if isinstance(exc, KeyboardInterrupt) else READER_GONE
            )
            loop.call_soon_threadsafe(cancel)
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
                finished.wait(CANCEL_WAIT_SECONDS)
        raise


class Chat:
    """A conversation with one model at a time, optionally recorded in the history store.

    >>> chat = Chat(load_host(), "echo")
    >>> "".join(chat.stream("hi"))
    'echo: hi'
    """

    def __init__(
        self,
        host: Host,
        model_id: str | None = None,
        *,
        store: SQLiteStore | SyncStore | None = None,
        conversation_id: str | None = None,
        system: str | None = None,
        on_notice: Callable[[str], None] | None = None,
        surface: str = "python",
        tools: Sequence[str] | None = None,
        approve: Callable[[ToolCall], bool] | None = None,
        knowledge: int | None = None,
    ) -> None:
        self.host = host
        self.knowledge = knowledge  # passages retrieved into each prompt (chat --knowledge)
        # tool name patterns this chat offers (None: chat.tools); approve(call) answers for a
        # tool matching tools.require_approval (without it, such a tool is refused)
        self.tool_patterns = list(tools) if tools is not None else None
        self.approve = approve
        self.surface = surface  # for callbacks: "cli" or "python"
        self.settings = chat_settings(host)
        self.store = store
        self.on_notice = on_notice or (lambda message: None)
        self.history: list[Message] = []  # what the conversation already holds
        self.conversation_id: str | None = None
        stored_system = None
        if conversation_id is not None:
            if store is None:
                raise AiAssistantError("continuing a conversation needs the history store")
            conv = store.conversation(conversation_id)
            self.conversation_id = conv["id"]
            stored_system = conv["system"]
            model_id = model_id or conv["model"]
            self.history = [
                Message.of(m) for m in conv["messages"] if m["content"] or m.get("tool_calls")
            ]
        self.model_id = resolve_model_id(host, model_id)
        self.system = system if system is not None else stored_system or self.settings["system"]
        self.last_reply: Reply | None = None
        self._recorder: Recorder | None = None  # the last turn's (its writes may be pending)

    def switch_model(self, model_id: str) -> None:
        self.host.registry.get(model_id)
        self.model_id = model_id
        if self.store is not None and self.conversation_id is not None:
            self.store.set_conversation_model(self.conversation_id, model_id)

    def new_conversation(self) -> None:
        self.history = []
        self.conversation_id = None

    def build_messages(self, user_text: str) -> list[Any]:
        """The LangChain messages the next turn sends: system, history, then the new message,
        each user message wrapped in ``prompt.prefix``/``prompt.suffix``."""
        settings = self.settings
        new = [Message("user", user_text)]
        prompt = assemble(new, self.history, self.system, settings["prefix"], settings["suffix"])
        if self.knowledge:  # (as the turn will: chat --knowledge)
            from ..knowledge.search import knowledge_of
            from ..knowledge.tool import passages
            from .prompt import add_knowledge

            add_knowledge(
                prompt, passages(knowledge_of(self.host).search(user_text, self.knowledge))
            )
        return prompt.messages

    def events(self, user_text: str) -> Iterator[Event]:
        """The reply's typed events as they arrive (``chat.events``); ``last_reply`` describes
        it afterwards. Raises ``ChatError`` when no model could answer or the reply broke off.
        On ``KeyboardInterrupt`` (or a reader closing the generator) the partial reply is
        stored as interrupted and the interruption goes on up."""
        yield from self._turn(user_text, text_only=False)

    def stream(self, user_text: str) -> Iterator[str]:
        """The reply's text as it arrives; see ``events``."""
        yield from self._turn(user_text, text_only=True)

    def offered_tools(self) -> list[Any]:
        """The registered tools this chat offers its model."""
        patterns = self.tool_patterns
        if patterns is None:
            from ..config import name_list

            patterns = name_list(self.host.config.value("chat.tools"))
        if not patterns:
            return []
        if self.host.mcp is None and self.host.has_mcp_servers:
            for problem in self.host.start_tools_blocking():  # (once: then held)
                self.on_notice(problem)
        if not len(self.host.tools):
            return []
        from ..tools import offered

        return offered(self.host, patterns)

    def _turn(self, user_text: str, text_only: bool) -> Iterator[Any]:
        turn = Turn(
            self.host,
            self.model_id,
            [Message("user", user_text)],
            history=self.history,
            system=self.system,
            store=self.store,
            conversation_id=self.conversation_id,
            surface=self.surface,
            user=_os_user(),
            tools=self.offered_tools(),
            knowledge=self.knowledge,
        )
        turn.recorder.follow(self._recorder)
        self._recorder = turn.recorder
        reply = self.last_reply = turn.reply
        try:
            # (yield from: a KeyboardInterrupt thrown in at a yield reaches the driver)
            yield from drive(
                turn, background_loop(), self.on_notice, text_only, on_approve=self.approve
            )
        finally:
            self.conversation_id = turn.conversation_id
            self.history.append(Message("user", user_text))
            self.history.extend(reply.steps)
            if reply.text or reply.tool_calls:
                self.history.append(Message("assistant", reply.text, list(reply.tool_calls)))

    def send(self, user_text: str) -> Reply:
        """The whole reply at once (it still streams underneath)."""
        for _ in self.events(user_text):
            pass
        assert self.last_reply is not None
        return self.last_reply


def _os_user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return None
