"""One reply on the terminal, for `chat` and its interactive session: the spinner, the tokens as
they arrive (drawn as Markdown when asked), notices kept off the reply's lines, -v timings."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import click

from ..chat import Chat
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


def answer(
    session: Chat,
    text: str,
    show_prompt: bool = False,
    timing: bool = False,
    render: bool = False,
) -> None:
    """Stream one reply to stdout, each piece as it arrives (drawn as Markdown if ``render``),
    with a spinner on stderr until the first one when stderr is a terminal."""
    global _VIEW
    if show_prompt:
        _show_prompt(session, text)
    sent = time.perf_counter()
    first = None
    label = f"waiting for {session.model_id}"
    view = _VIEW = ReplyView(label, render=render, echo_err=_echo_err)
    try:
        view.start()
        stream = session.stream(text)
        try:
            for token in stream:
                if first is None:
                    first = time.perf_counter()
                view.write(token)
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
