"""`ai-assistant chat`: one question from the arguments or stdin, or an interactive session."""

from __future__ import annotations

import signal
import sys

import click

from ..chat import Chat, open_store
from ..storage.base import StoreError
from .answer import answer, ask_approval, notice, render_wanted
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
@click.option(
    "-T",
    "--tool",
    "tool_patterns",
    multiple=True,
    metavar="PATTERN",
    help="Offer the tools matching PATTERN (like files_*), besides chat.tools. Repeatable.",
)
@click.option("--no-tools", is_flag=True, help="Offer no tools (not even chat.tools).")
@click.option(
    "--approve",
    is_flag=True,
    help="Run tools that need approval (tools.require_approval) without asking.",
)
@click.option(
    "-K",
    "--knowledge",
    "knowledge",
    is_flag=True,
    help="Put the knowledge passages closest to the prompt into it (for models that cannot "
    "call tools; see `knowledge search`).",
)
@click.option(
    "--knowledge-k",
    type=click.IntRange(1, 100),
    metavar="N",
    help="How many passages -K retrieves (default knowledge.top_k).",
)
@global_options
def chat(  # noqa: PLR0913
    prompt,  # noqa: ANN001
    model_id,  # noqa: ANN001
    system,  # noqa: ANN001
    continue_,  # noqa: ANN001
    cid,  # noqa: ANN001
    no_log,  # noqa: ANN001
    show_prompt,  # noqa: ANN001
    no_render,  # noqa: ANN001
    tool_patterns=(),  # noqa: ANN001
    no_tools=False,  # noqa: ANN001
    approve=False,  # noqa: ANN001
    knowledge=False,  # noqa: ANN001
    knowledge_k=None,  # noqa: ANN001
) -> None:
    """Ask a model; with no PROMPT on a terminal, start an interactive session.

    The prompt may also come from stdin: `echo hi | ai-assistant chat -m echo`. Without -m the
    model is chat.default_model, or the only registered one.
    """
    if no_log and (continue_ or cid):
        raise click.UsageError("--no-log cannot continue a conversation (-c/--cid need history)")
    host = get_host()
    try:
        store = None if no_log else open_store(host)
    except StoreError as exc:  # (this command alone can do without the store)
        exc.hint = f"{exc.hint or 'fix storage.url'}, or pass --no-log to store nothing"
        raise
    conversation = cid
    if continue_ and store is not None:
        conversation = store.latest_conversation()
        if conversation is None:
            notice("no earlier conversation: starting a new one")
    if no_tools and tool_patterns:
        raise click.UsageError("--no-tools and -T/--tool contradict each other")
    tools = None  # chat.tools
    if no_tools:
        tools = []
    elif tool_patterns:
        from ..config import name_list

        tools = [*name_list(host.config.value("chat.tools")), *tool_patterns]
        _check_patterns(host, tool_patterns)
    on_terminal = sys.stdin is not None and sys.stdin.isatty()
    session = Chat(
        host,
        model_id,
        store=store,
        conversation_id=conversation,
        system=system,
        on_notice=notice,
        surface="cli",
        tools=tools,
        approve=(lambda call: True) if approve else ask_approval if on_terminal else None,
        knowledge=(knowledge_k or int(host.config.value("knowledge.top_k"))) if knowledge else None,
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


def _check_patterns(host, patterns) -> None:  # noqa: ANN001
    """A note for each -T pattern that matches no registered tool (a typo offers nothing)."""
    for pattern in patterns:
        if not host.tools.matching([pattern]):
            notice(f"-T {pattern}: no registered tool matches; {host.tools.suggest(pattern)}")
