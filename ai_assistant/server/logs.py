"""The gateway's log lines: every one redacted by the host's ``config.redact`` (secret values,
credentials in URLs), and none carrying a traceback unless ``-v``.

One filter sits on every handler of the process (the root's, where ``httpx`` and the plugins log,
and uvicorn's own), so it sees each record once it is final, whoever logged it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

FORMAT = "%(levelname)s:     %(message)s"


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
    """Log INFO (DEBUG with ``-v``) through the root logger, and put one ``RedactingFilter`` on
    every handler there is now (call it again after anything adds handlers, as uvicorn does)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=FORMAT)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    the_filter = RedactingFilter(redact, verbose)
    handlers = list(root.handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    for handler in handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(the_filter)
    return the_filter
