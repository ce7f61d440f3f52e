"""The interactive chat session: line editing and input history, slash commands, Ctrl-C to stop
a reply, Ctrl-D to leave."""

from __future__ import annotations

import contextlib

import click

from ..chat import Chat
from ..errors import AiAssistantError
from ..store import default_store_path
from .context import report_error

HELP = """\
/model ID   switch model (the conversation goes on)
/model      show the current model
/new        start a new conversation
/history    show this conversation
/exit       leave (or Ctrl-D); Ctrl-C stops a reply in progress"""


def _enable_line_editing() -> None:
    try:
        import atexit
        import readline
    except ImportError:  # no readline on this platform: plain input still works
        return
    history = default_store_path().with_name("repl_history")
    with contextlib.suppress(OSError):
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(history)
    readline.set_history_length(1000)
    atexit.register(lambda: _save_history(readline, history))


def _save_history(readline, path) -> None:  # noqa: ANN001
    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def _command(session: Chat, line: str) -> bool:
    """Run a slash command; False means leave."""
    name, _, arg = line[1:].partition(" ")
    arg = arg.strip()
    if name in ("exit", "quit"):
        return False
    if name == "model":
        if arg:
            session.switch_model(arg)
            click.echo(f"model: {arg}", err=True)
        else:
            click.echo(f"model: {session.model_id}", err=True)
    elif name == "new":
        session.new_conversation()
        click.echo("new conversation", err=True)
    elif name == "history":
        for role, content in session.history:
            click.echo(f"{'you' if role == 'user' else 'assistant'}: {content}")
    elif name == "help":
        click.echo(HELP, err=True)
    else:
        click.echo(f"unknown command /{name}: /help lists them", err=True)
    return True


def run_repl(session: Chat, show_prompt: bool = False) -> None:
    from .chat import answer

    _enable_line_editing()
    click.echo(f"chatting with {session.model_id}: /help for commands, Ctrl-D to leave", err=True)
    while True:
        try:
            line = input(f"{session.model_id}> ").strip()
        except EOFError:
            click.echo(err=True)
            return
        except KeyboardInterrupt:
            click.echo(err=True)
            continue
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not _command(session, line):
                    return
                continue
            answer(session, line, show_prompt=show_prompt)
        except KeyboardInterrupt:
            click.echo("[interrupted]", err=True)
        except AiAssistantError as exc:  # ChatError included: report it and keep the session
            report_error(click.get_current_context(), exc)
