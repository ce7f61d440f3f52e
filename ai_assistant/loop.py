"""The process's background event loop, for synchronous code (the CLI, the Python API's ``Chat``)
that runs async work: the host's start and stop, and every chat turn.

One loop for the life of the process, because LangChain's providers share their async HTTP
clients process-wide, bound to the loop that first used them: a second loop would find them
bound to the first (and a closed loop's clients fail with "Event loop is closed").
"""

from __future__ import annotations

import asyncio
import threading

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The loop, running on a daemon thread of its own, started on first use."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="ai-assistant-loop", daemon=True
            )
            thread.start()
            _loop = loop
    return _loop
