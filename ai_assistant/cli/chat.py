"""`ai-assistant chat`: one question from the arguments or stdin, or an interactive session."""

from __future__ import annotations

import signal
import sys

import click

from ..chat import Chat, open_store
from .answer import answer, notice, render_wanted
from .context import get_host, global_options, options


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
            notice("no earlier conversation: starting a new one")
    session = Chat(
        host,
        model_id,
        store=store,
        conversation_id=conversation,
        system=system,
        on_notice=notice,
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
