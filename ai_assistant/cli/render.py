"""How a reply reaches the terminal: a spinner on stderr until the first token, then the text as
it arrives, plain or drawn as Markdown with rich; notices kept off the reply's lines.

rich is imported only when a reply is drawn (it costs start-up time every other command saves).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

ERASE_LINE = "\r\x1b[K"  # back to the start of the line, and clear it


def is_terminal(stream: IO[str] | None) -> bool:
    """A terminal that understands cursor movement (not TERM=dumb)."""
    try:
        tty = stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


class Spinner:
    """A one-line spinner on ``stream``, drawn from a thread until ``stop`` erases it. The first
    frame is drawn at once, so it is on the screen before any request goes out."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    PLAIN_FRAMES = "|/-\\"
    INTERVAL = 0.08

    def __init__(self, label: str, stream: IO[str]) -> None:
        self.stream = stream
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._shown = False
        try:
            self.FRAMES.encode(getattr(stream, "encoding", None) or "ascii")
            self._frames = self.FRAMES
        except (UnicodeEncodeError, LookupError):
            self._frames = self.PLAIN_FRAMES
        width = shutil.get_terminal_size().columns
        self._label = label[: max(0, width - 3)]  # never wraps, so \r erases all of it
        self._thread: threading.Thread | None = None

    def start(self) -> Spinner:
        self._draw(0)
        if sys.stderr is self.stream:  # whatever else writes there erases the spinner first
            sys.stderr = _Aside(self)
        self._thread = threading.Thread(target=self._run, name="spinner", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(self.INTERVAL):
            index += 1
            self._draw(index)

    def _draw(self, index: int) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            frame = self._frames[index % len(self._frames)]
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(f"\r{frame} {self._label}")
                self.stream.flush()
                self._shown = True

    def _erase(self) -> None:
        if self._shown:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(ERASE_LINE)
                self.stream.flush()
            self._shown = False

    @contextlib.contextmanager
    def hidden(self) -> Iterator[None]:
        """Erase the spinner for a moment (to print a line); the next frame draws it again."""
        with self._lock:
            self._erase()
            yield

    def stop(self) -> None:
        """Erase the spinner for good; safe to call more than once."""
        self._stop.set()
        with self._lock:
            self._erase()
            if isinstance(sys.stderr, _Aside) and sys.stderr.spinner is self:
                sys.stderr = self.stream
        if self._thread is not None and self._thread is not threading.current_thread():
            # (a Ctrl-C inside Thread.start leaves it "not started" yet running: it sees the
            # stop flag and ends without being joined)
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=1)
            self._thread = None


class _Aside:
    """sys.stderr while a spinner turns: a warning or a notice written there erases the spinner
    first (the next frame draws it again below), instead of running into it."""

    def __init__(self, spinner: Spinner) -> None:
        self.spinner = spinner

    def write(self, text: str) -> int:
        with self.spinner.hidden():
            return self.spinner.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.spinner.stream, name)


class PlainWriter:
    """The reply as it arrives, token by token, ending on a new line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.text = ""

    def write(self, token: str) -> None:
        self.text += token
        self.stream.write(token)
        self.stream.flush()

    def close(self) -> None:
        if self.text and not self.text.endswith("\n"):
            self.stream.write("\n")
        self.stream.flush()


def _rstrip(line: list[Any]) -> list[Any]:
    """A rendered line without its trailing padding (so copied text has no trailing blanks);
    padding with a background colour (a code block's) is kept."""
    from rich.segment import Segment

    line = list(line)
    while line:
        last = line[-1]
        if last.control or (last.style is not None and last.style.bgcolor is not None):
            break
        text = last.text.rstrip(" ")
        if text:
            line[-1] = Segment(text, last.style, last.control)
            break
        line.pop()
    return line


class _Lines:
    """Already rendered lines, as a renderable; a line break after the last one if ``end``
    (print them with ``end=""``: rich drops a last line that is empty otherwise)."""

    def __init__(self, lines: list[list[Any]], end: bool = False) -> None:
        self.lines = lines
        self.end = end

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.segment import Segment

        for index, line in enumerate(self.lines):
            if index:
                yield Segment.line()
            yield from line
        if self.end and self.lines:
            yield Segment.line()


class MarkdownWriter:
    """The reply drawn as Markdown while it arrives.

    The whole text is rendered again as it grows (a later token can change earlier lines: a
    code fence closing, a list becoming loose). The last screenful is a ``rich.live.Live``
    region, redrawn several times a second, so a token shows within a fraction of a second even
    when the next one is slow to come; lines that scroll above it are printed once, for good,
    so a reply longer than the screen scrolls like any other output.
    """

    REFRESH_PER_SECOND = 12
    CHECK_INTERVAL = 1 / REFRESH_PER_SECOND  # how often a token may print lines above
    MAX_LIVE_LINES = 24

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        # Lines beyond the window are printed above it at the next check; till then the region
        # may grow up to the screen's height less one (Live cannot redraw more than that).
        self._window = max(1, min(self.console.size.height // 2, self.MAX_LIVE_LINES))
        self._limit = max(1, self.console.size.height - 1)
        self._checked = 0.0
        self._state = ("", 0)  # (text, lines printed above the live region): one atomic swap
        self._cache: tuple[str | None, list[list[Any]]] = (None, [])
        self._live = Live(
            console=self.console,
            get_renderable=self._tail,
            auto_refresh=True,
            refresh_per_second=self.REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="visible",
        )
        try:
            self._live.start()
        except BaseException:  # Ctrl-C at that very moment: no refresh thread left behind
            self._live.stop()
            raise

    @property
    def text(self) -> str:
        return self._state[0]

    def _lines(self, text: str) -> list[list[Any]]:
        cached, lines = self._cache
        if cached != text:
            from rich.markdown import Markdown

            rendered = self.console.render_lines(
                Markdown(text), self.console.options, pad=False, new_lines=False
            )
            lines = [_rstrip(line) for line in rendered]
            self._cache = (text, lines)
        return lines

    def _tail(self) -> Any:
        text, printed = self._state  # the refresh thread reads one consistent pair
        lines = self._lines(text)
        # never taller than the screen: lines above it are printed by the next _promote
        return _Lines(lines[max(printed, len(lines) - self._limit) :])

    def _promote(self, text: str, upto: int) -> None:
        """Print the rendered lines before ``upto`` above the live region, for good."""
        lines = self._lines(text)
        printed = self._state[1]
        if upto <= printed:
            self._state = (text, printed)
            return
        # Live's own lock (private, but there since rich 10): the refresh thread must not draw
        # between the new state and the lines printed above the region.
        with getattr(self._live, "_lock", contextlib.nullcontext()):
            self._state = (text, upto)
            self._live.console.print(_Lines(lines[printed:upto], end=True), end="")

    def write(self, token: str) -> None:
        text = self._state[0] + token
        now = time.monotonic()
        if now - self._checked < self.CHECK_INTERVAL:
            self._state = (text, self._state[1])  # the refresh thread draws it
            return
        self._checked = now
        self._promote(text, len(self._lines(text)) - self._window)

    def close(self) -> None:
        try:
            text = self._state[0]
            self._promote(text, len(self._lines(text)) - 1)
        finally:
            self._live.stop()  # the last refresh draws the last line, then ends it


class ReplyView:
    """One reply on the terminal: ``start`` (the spinner), ``write`` each token, ``close``.

    ``notice`` prints a line on stderr without breaking the reply: at once while the spinner
    turns (erasing it first), after the reply once its first token is out."""

    def __init__(
        self,
        label: str,
        render: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        echo_err: Callable[[str], None] | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.render = render
        self.label = label
        self._echo_err = echo_err or (lambda line: print(line, file=self.stderr, flush=True))
        self._spinner: Spinner | None = None
        self._writer: PlainWriter | MarkdownWriter | None = None
        self._held: list[str] = []
        self._closed = False

    def start(self) -> ReplyView:
        if is_terminal(self.stderr):
            self._spinner = Spinner(self.label, self.stderr)  # known before it can be stopped
            self._spinner.start()
        return self

    def _stop_spinner(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def write(self, token: str) -> None:
        if self._writer is None:
            self._stop_spinner()
            self._writer = MarkdownWriter(self.stdout) if self.render else PlainWriter(self.stdout)
        self._writer.write(token)

    def notice(self, line: str) -> None:
        if self._writer is not None and not self._closed:
            self._held.append(line)
        elif self._spinner is not None:
            with self._spinner.hidden():
                self._echo_err(line)
        else:
            self._echo_err(line)

    def close(self) -> None:
        if self._closed:
            return
        self._stop_spinner()
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._closed = True
            held, self._held = self._held, []
            for line in held:
                self._echo_err(line)
