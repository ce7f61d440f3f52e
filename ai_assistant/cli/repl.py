"""The interactive chat session: line editing and input history, slash commands, multi-line
messages (a bracketed paste, or a block between /multi and /end or between two \"\"\" lines),
Ctrl-C to stop a reply, Ctrl-D to leave."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from ..chat import Chat
from ..errors import AiAssistantError
from ..storage import default_store_path
from .answer import answer
from .context import report_error

HELP = """\
/model ID   switch model (the conversation goes on)
/model      show the current model
/new        start a new conversation
/history    show this conversation
/multi      write a message of several lines; a line /end sends it, Ctrl-C drops it
\"\"\"         the same: a line of \"\"\" starts the message, another sends it
/exit       leave (or Ctrl-D); Ctrl-C stops a reply in progress
A paste of several lines is one message: edit it, then press Enter to send it."""

# A line that opens a multi-line block, and the line that closes it.
BLOCKS = {"/multi": "/end", '"""': '"""'}

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # what a terminal wraps a paste in
PASTE_ON, PASTE_OFF = "\x1b[?2004h", "\x1b[?2004l"  # ask it to (bracketed paste mode)


class LineReader:
    """Reads the user's lines: GNU readline when stdin and stdout are a terminal (line editing,
    history, and bracketed paste handled by readline itself: a paste arrives as one line with
    its newlines); otherwise plain ``input()``, with bracketed paste switched on here and a
    paste's lines, which then arrive one by one, put back together."""

    def __init__(self) -> None:
        self.readline: Any = None
        self.gnu = False
        try:
            import readline
        except ImportError:  # no readline on this platform: plain input still works
            return
        self.readline = readline
        self.gnu = "libedit" not in (readline.__doc__ or "") and (
            getattr(readline, "backend", "readline") == "readline"
        )
        if self.gnu:  # CPython turns it off (its own REPL has no use for it); readline >= 7
            readline.parse_and_bind("set enable-bracketed-paste on")
        history = default_store_path().with_name("repl_history")
        with contextlib.suppress(OSError):
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.read_history_file(history)
        readline.set_history_length(1000)
        import atexit

        atexit.register(_save_history, readline, history)

    def _terminal(self) -> Any:
        """Where to switch bracketed paste on, when readline does not: None if it does."""
        if sys.stdin is None or not sys.stdin.isatty():
            return None  # not typed
        if self.readline is not None and sys.stdout.isatty():
            # input() goes through the line editor: GNU readline does it; libedit cannot, and
            # would take the markers for keys
            return None
        for stream in (sys.stdout, sys.stderr):
            if stream.isatty():
                return stream
        return None

    def line(self, prompt: str) -> str:
        """One line as typed, or one whole paste (with its newlines); EOFError on Ctrl-D."""
        terminal = self._terminal()
        if terminal is not None:
            terminal.write(PASTE_ON)
            terminal.flush()
        try:
            text = input(prompt)
            if PASTE_START in text:
                while PASTE_END not in text:  # plain input() stops at each newline of a paste
                    text += "\n" + input()
            return text.replace(PASTE_START, "").replace(PASTE_END, "")
        finally:
            if terminal is not None:
                terminal.write(PASTE_OFF)
                terminal.flush()

    def block(self, end: str, first: str = "") -> str:
        """The lines up to a line ``end`` (or Ctrl-D), as one message; they go into the input
        history as that one message. Ctrl-C (KeyboardInterrupt) drops them."""
        lines = [first] if first else []
        length = self._history_length()
        try:
            while True:
                try:
                    line = self.line("... ")
                except EOFError:
                    click.echo(err=True)
                    break
                if line.strip() == end:
                    break
                lines.append(line)
        finally:
            self._history_replace(length, "\n".join(lines))
        return "\n".join(lines)

    def _history_length(self) -> int | None:
        if self.readline is None:
            return None
        return self.readline.get_current_history_length()

    def _history_replace(self, length: int | None, text: str) -> None:
        """Drop the entries added since ``length`` and add ``text`` as one (if any)."""
        if length is None:
            return
        with contextlib.suppress(AttributeError, ValueError):  # platforms without removal
            for position in range(self.readline.get_current_history_length(), length, -1):
                self.readline.remove_history_item(position - 1)
            if text.strip():
                self.readline.add_history(text)


def _save_history(readline, path) -> None:  # noqa: ANN001
    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def tidy(text: str) -> str:
    """A message without blank lines around it; one line is also stripped of its blanks, the
    lines of several keep their indentation (pasted code)."""
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) == 1:
        return lines[0].strip()
    return "\n".join(line.rstrip() for line in lines)


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
        for message in session.history:
            who = {"user": "you", "tool": "tool"}.get(message.role, "assistant")
            click.echo(f"{who}: {message.content}")
    elif name == "help":
        click.echo(HELP, err=True)
    elif name == "end":
        click.echo("/end closes a /multi message; there is none open", err=True)
    else:
        click.echo(f"unknown command /{name}: /help lists them", err=True)
    return True


def _read_message(reader: LineReader, prompt: str) -> tuple[str, bool]:
    """The next input and whether it is a slash command: one line, one paste (never a command
    if it has several lines), or a multi-line block (never a command)."""
    text = reader.line(prompt)
    first, _, rest = text.strip().partition(" ")
    if "\n" not in text and first in BLOCKS and (first == "/multi" or not rest):
        click.echo(f"multi-line message: end it with a line {BLOCKS[first]}", err=True)
        return tidy(reader.block(BLOCKS[first], first=rest)), False
    text = tidy(text)
    return text, text.startswith("/") and "\n" not in text


def run_repl(session: Chat, show_prompt: bool = False, render: bool = False) -> None:
    reader = LineReader()
    click.echo(f"chatting with {session.model_id}: /help for commands, Ctrl-D to leave", err=True)
    while True:
        try:
            text, command = _read_message(reader, f"{session.model_id}> ")
        except EOFError:
            click.echo(err=True)
            return
        except KeyboardInterrupt:  # at the prompt, or in a multi-line message: drop it
            click.echo(err=True)
            continue
        if not text:
            continue
        try:
            if command:
                if not _command(session, text):
                    return
                continue
            answer(session, text, show_prompt=show_prompt, render=render)
        except KeyboardInterrupt:
            click.echo("[interrupted]", err=True)
        except AiAssistantError as exc:  # ChatError included: report it and keep the session
            report_error(click.get_current_context(), exc)
