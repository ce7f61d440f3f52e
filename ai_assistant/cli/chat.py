"""`ai-assistant chat`: one question from the arguments or stdin, or an interactive session."""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import click

from ..chat import Chat, open_store
from .context import PROCESS_START, get_host, global_options, options
from .render import ReplyView, is_terminal

_VIEW: ReplyView | None = None  # the reply on screen now, so a notice does not break its lines


def _notice(message: str) -> None:
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


def _timing(sent: float, first: float | None, reply) -> None:  # noqa: ANN001
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


def _terminate(signum, frame):  # noqa: ANN001, ARG001
    raise KeyboardInterrupt  # SIGTERM stores the partial reply as interrupted, like Ctrl-C


@click.command()
@click.argument("prompt", required=False)
@click.option("-m", "--model", "model_id", metavar="ID", help="Model id (see `models list`).")
@click.option("-s", "--system", help="System prompt for this call (overrides prompt.system).")
@click.option(
    "-c", "--continue", "continue_", is_flag=True, help="Continue the latest conversation."
)
@click.option("--cid", metavar="ID", help="Continue the conversation with this id (or id prefix).")
@click.option("--no-log", is_flag=True, help="Do not store this exchange.")
@click.option("--show-prompt", is_flag=True, help="Print the messages sent, to stderr.")
@click.option(
    "--no-render",
    is_flag=True,
    help="Print the reply's Markdown as is (always so when stdout is not a terminal).",
)
@global_options
def chat(prompt, model_id, system, continue_, cid, no_log, show_prompt, no_render) -> None:  # noqa: ANN001
    """Ask a model; with no PROMPT on a terminal, start an interactive session.

    The prompt may also come from stdin: `echo hi | ai-assistant chat -m echo`. Without -m the
    model is chat.default_model, or the only registered one.
    """
    if no_log and (continue_ or cid):
        raise click.UsageError("--no-log cannot continue a conversation (-c/--cid need history)")
    host = get_host()
    store = None if no_log else open_store(host)
    conversation = cid
    if continue_ and store is not None:
        conversation = store.latest_conversation()
        if conversation is None:
            _notice("no earlier conversation: starting a new one")
    session = Chat(
        host,
        model_id,
        store=store,
        conversation_id=conversation,
        system=system,
        on_notice=_notice,
        surface="cli",
    )
    verbose = options().verbose
    piped = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if prompt is None and not piped:
        if sys.stdin is not None and sys.stdin.isatty():
            from .repl import run_repl

            run_repl(session, show_prompt=show_prompt or verbose, render=render_wanted(no_render))
            return
        raise click.UsageError("no prompt: give one as an argument or on stdin")
    text = "\n\n".join(part.strip("\n") for part in (piped, prompt) if part)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        answer(
            session,
            text,
            show_prompt=show_prompt or verbose,
            timing=verbose,
            render=render_wanted(no_render),
        )
    except KeyboardInterrupt:
        click.echo("interrupted: the partial reply is kept in the history", err=True)
        sys.exit(130)
