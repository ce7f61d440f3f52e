"""The gateway's log lines: every one redacted by the host's ``config.redact`` (secret values,
credentials in URLs), and none carrying a traceback unless ``-v``; written off the event loop.

One filter sits on every handler of the process (the root's, where ``httpx`` and the plugins log,
and uvicorn's own), so it sees each record once it is final, whoever logged it.

Each of those handlers is fronted by a ``Deferred`` one that only queues the record: a thread of
its own filters, formats and writes them, in order, a batch at a time. A request never waits for
a log line to be written (to a slow pipe, a full disk), and the loop pays no formatting for the
access log. The HTTP client's line for each upstream call ("HTTP Request: POST ...") is shown
with ``-v`` only: the access log already has one line a request.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

FORMAT = "%(levelname)s:     %(message)s"
HTTP_CLIENT_LOGGERS = ("httpx", "httpx2")
BATCH_SECONDS = 0.05  # the log thread wakes at most this often while lines keep coming
MAX_WAITING = 10_000  # lines queued at most (an output nobody drains): later ones are dropped


class Deferred(logging.Handler):
    """Stands in for ``target``: queues each record for the log thread, which hands it to
    ``target`` (its filters, its formatter, its stream)."""

    def __init__(self, target: logging.Handler, writer: LogThread) -> None:
        super().__init__(target.level)
        self.target = target
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        self.writer.put(self.target, record)

    def flush(self) -> None:
        self.writer.drain()


class LogThread:
    """One daemon thread that writes queued records in order, a batch every ``BATCH_SECONDS``
    at most; what is queued is written at exit."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # one writer at a time: the thread, or a drain
        self._inline = False
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="ai-assistant-log", daemon=True)
        self._thread.start()
        atexit.register(self.drain)

    def put(self, target: logging.Handler, record: logging.LogRecord) -> None:
        if self._queue.qsize() >= MAX_WAITING:
            self._dropped += 1  # (said once the output drains again)
            return
        self._queue.put((target, record))
        if self._inline:
            self.drain()

    def drain(self) -> None:
        """Write everything queued so far (at exit, or when a handler is flushed)."""
        with self._lock:
            self._write_queued()

    def write_through(self) -> None:
        """From now on, write each record as it comes (the server is stopping: its last lines
        must be out before a signal it re-raises ends the process)."""
        self._inline = True
        self.drain()

    def _write_queued(self, item: tuple[logging.Handler, logging.LogRecord] | None = None) -> None:
        """Write ``item`` and whatever is queued; then say how many lines were dropped."""
        target = None
        while True:
            if item is None:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            (target, record), item = item, None
            with contextlib.suppress(Exception):  # (a handler's own failure: it reports it)
                target.handle(record)
        if self._dropped and target is not None:
            dropped, self._dropped = self._dropped, 0
            note = logging.LogRecord(
                "ai_assistant.server",
                logging.WARNING,
                __file__,
                0,
                "%d log lines were dropped: the log output was not being read",
                (dropped,),
                None,
            )
            with contextlib.suppress(Exception):
                target.handle(note)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            with self._lock:
                self._write_queued(item)
            time.sleep(BATCH_SECONDS)  # (lines that come meanwhile wait, and go together)


_writer: LogThread | None = None


def write_through() -> None:
    """Write every log line as it comes from now on (``serve``'s lifespan, as it ends)."""
    if _writer is not None:
        _writer.write_through()


class RedactingFilter(logging.Filter):
    def __init__(self, redact: Callable[[str], str], verbose: bool = False) -> None:
        super().__init__("ai_assistant.redact")
        self.redact = redact
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_ai_assistant_redacted", False):
            return True  # seen by another handler already
        record._ai_assistant_redacted = True
        self._redact_message(record)
        self._contain_traceback(record)
        return True

    def _clean(self, text: str) -> str:
        try:
            return self.redact(text)
        except Exception:  # noqa: BLE001 - never let a log line through unredacted
            return "(log message withheld: it could not be redacted)"

    def _redact_message(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: say so, show nothing of it
            record.msg, record.args = f"(malformed log record from {record.name})", ()
            return
        clean = self._clean(text)
        if clean == text:
            return
        # keep the record's shape where we can (uvicorn's access formatter unpacks its args)
        if isinstance(record.args, tuple) and record.args and isinstance(record.msg, str):
            args = tuple(
                a if isinstance(a, (int, float)) else self._clean(str(a)) for a in record.args
            )
            msg = self._clean(record.msg)
            try:
                if msg % args == clean:
                    record.msg, record.args = msg, args
                    return
            except (TypeError, ValueError):
                pass
        record.msg, record.args = clean, ()
        record.__dict__.pop("color_message", None)  # uvicorn's coloured copy of the message

    def _contain_traceback(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if self.verbose:
                trace = logging.Formatter().formatException(record.exc_info)
                record.exc_text = self._clean(trace)
            else:  # one line: what it was, not where
                reason = self._clean(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                record.msg = f"{record.getMessage()} ({reason})"
                record.args = ()
                record.__dict__.pop("color_message", None)
                record.exc_text = None
        elif record.exc_text and not self.verbose:
            record.exc_text = None
        record.exc_info = None
        if not self.verbose:
            record.stack_info = None
        elif record.stack_info:
            record.stack_info = self._clean(record.stack_info)


def install(redact: Callable[[str], str], verbose: bool = False) -> RedactingFilter:
    """Log INFO (DEBUG with ``-v``) through the root logger, put one ``RedactingFilter`` on
    every handler there is now, and front each with a ``Deferred`` one (call it again after
    anything adds handlers, as uvicorn does). For ``serve``: it changes the whole process's
    logging."""
    global _writer
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=FORMAT)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    the_filter = RedactingFilter(redact, verbose)
    if _writer is None:
        _writer = LogThread()
    loggers = [root] + [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for index, handler in enumerate(list(logger.handlers)):
            target = handler.target if isinstance(handler, Deferred) else handler
            for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
                target.removeFilter(old)
            target.addFilter(the_filter)
            if not isinstance(handler, Deferred):
                logger.handlers[index] = Deferred(target, _writer)
    return the_filter
