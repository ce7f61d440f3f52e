"""One reply on the terminal, for `chat` and its interactive session: the spinner, the tokens as
they arrive (drawn as Markdown when asked), notices kept off the reply's lines, -v timings."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import click

from ..chat import Chat, Token, ToolCall, ToolResult
from .context import PROCESS_START
from .render import ReplyView, is_terminal

_VIEW: ReplyView | None = None  # the reply on screen now, so a notice does not break its lines


def notice(message: str) -> None:
    """A ``note:`` line on stderr (held until the reply on screen has ended)."""
    line = f"note: {message}"
    if _VIEW is not None:
        _VIEW.notice(line)
    else:
        click.echo(line, err=True)


def _echo_err(line: str) -> None:
    click.echo(line, err=True)


def render_wanted(no_render: bool) -> bool:
    """Markdown on a terminal, unless --no-render; raw text into a pipe or a file."""
    return not no_render and is_terminal(sys.stdout)


def _show_prompt(session: Chat, text: str) -> None:
    for message in session.build_messages(text):
        click.echo(f"[{message.type}] {message.content}", err=True)


_SHORT = 120  # a tool line's length without -v


def _short(text: str, full: bool) -> str:
    text = text if full else " ".join(text.split())
    return text if full or len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def tool_line(event: ToolCall | ToolResult, full: bool = False) -> str:
    """A tool call or result as one ``tool:`` line for stderr (whole with ``-v``)."""
    import json

    if isinstance(event, ToolCall):
        args = json.dumps(event.args, ensure_ascii=False)
        return f"tool: {event.name}({_short(args, full)})"
    mark = "failed" if event.error else "->"
    return f"tool: {event.name} {mark} {_short(event.content, full)}"


def ask_approval(call: ToolCall) -> bool:
    """y/n on the terminal for a tool that needs approval (the spinner paused meanwhile)."""
    import json

    if _VIEW is not None:
        _VIEW._stop_spinner()  # (it would draw over the question)
    args = json.dumps(call.args, ensure_ascii=False)
    return click.confirm(f"run tool {call.name}({_short(args, False)})?", default=False, err=True)


def answer(
    session: Chat,
    text: str,
    show_prompt: bool = False,
    timing: bool = False,
    render: bool = False,
) -> None:
    """Stream one reply to stdout, each piece as it arrives (drawn as Markdown if ``render``),
    with a spinner on stderr until the first one when stderr is a terminal. Tool calls and
    results are ``tool:`` lines on stderr, shortened unless ``timing`` (``-v``)."""
    global _VIEW
    if show_prompt:
        _show_prompt(session, text)
    sent = time.perf_counter()
    first = None
    label = f"waiting for {session.model_id}"
    view = _VIEW = ReplyView(label, render=render, echo_err=_echo_err)
    try:
        view.start()
        stream = session.events(text)
        try:
            for event in stream:
                if isinstance(event, (ToolCall, ToolResult)):
                    view.notice(tool_line(event, full=timing))
                    continue
                if not isinstance(event, Token):
                    continue
                if first is None:
                    first = time.perf_counter()
                view.write(event.text)
        except KeyboardInterrupt:
            # Ctrl-C may land while the stream waits at a yield: hand it in, so the reply is
            # recorded as interrupted by the user rather than abandoned.
            with contextlib.suppress(KeyboardInterrupt, StopIteration):
                stream.throw(KeyboardInterrupt())
            raise
    finally:
        _VIEW = None
        view.close()
        if timing:
            _timing(sent, first, session.last_reply)
    reply = session.last_reply
    if reply is not None and reply.sources:
        click.echo(sources_block(reply.sources))


def sources_block(sources: list[dict[str, Any]]) -> str:
    """The sources a reply cites, under it: ``Sources:`` and one line each."""
    lines = ["", "Sources:"]
    for source in sources:
        where = source.get("path") or source.get("url") or source.get("document")
        title = source.get("title")
        shown = f" ({title})" if title and title != where and not str(where).endswith(title) else ""
        lines.append(f"  - {source.get('source')}: {where}{shown}")
    return "\n".join(lines)


def _timing(sent: float, first: float | None, reply: Any) -> None:
    def ms(t: float | None) -> str:
        return "-" if t is None else f"+{(t - PROCESS_START) * 1000:.1f} ms"

    usage = ""
    if reply is not None and reply.output_tokens is not None:
        usage = f"; tokens in/out {reply.input_tokens}/{reply.output_tokens}"
    click.echo(
        f"timing: request {ms(sent)}, first token {ms(first)}, done {ms(time.perf_counter())} "
        f"after start{usage}",
        err=True,
    )
