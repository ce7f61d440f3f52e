"""Starting the gateway under uvicorn: where it binds, how many workers, and the refusal to
expose a keyless gateway beyond loopback."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import AiAssistantError
from ..host import Host, load_host
from ..net import is_loopback_host

# how `serve` hands its options to worker processes (not an AI_ASSISTANT_ name: Dynaconf would
# read it as a setting)
OPTIONS_VARIABLE = "AIASSISTANT_SERVE_OPTIONS"


class ServeOptions:
    def __init__(
        self,
        config: Any,
        host: str | None = None,
        port: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.host = host or config.get("server.host") or "127.0.0.1"
        self.port = int(port or config.get("server.port") or 8080)
        self.workers = int(workers or config.get("server.workers") or 1)
        self.access_log = config.get("server.access_log", True) is not False
        self.has_keys = bool(config.get("server.api_keys"))
        if self.workers < 1:
            raise AiAssistantError("--workers must be at least 1")


def check_exposure(options: ServeOptions, insecure: bool) -> None:
    """A gateway without API keys answers anyone who reaches it: loopback only, unless asked."""
    if options.has_keys or is_loopback_host(options.host) or insecure:
        return
    raise AiAssistantError(
        f"refusing to listen on {options.host} with no API keys: anyone who can reach it "
        "could use every model",
        hint='add keys under [default.server.api_keys] in .secrets.toml (name = "key"), '
        "or pass --insecure if the network is private",
    )


def app_from_environment() -> Any:
    """The app factory each worker process calls (``--workers`` > 1)."""
    from . import create_app

    opts = json.loads(os.environ[OPTIONS_VARIABLE])
    if opts.get("cwd"):
        os.chdir(opts["cwd"])
    return create_app(
        load_host(
            settings=opts.get("settings"),
            env=opts.get("env"),
            plugins_dirs=opts.get("plugins_dirs") or (),
            strict=opts.get("strict"),
        )
    )


def run(
    host: Host, options: ServeOptions, load_options: dict[str, Any], log_level: str = "info"
) -> None:
    import uvicorn

    common = {
        "host": options.host,
        "port": options.port,
        "log_level": log_level,
        "access_log": options.access_log,
        "timeout_graceful_shutdown": 10,
    }
    if options.workers == 1:
        from . import create_app

        uvicorn.run(create_app(host), **common)
        return
    os.environ[OPTIONS_VARIABLE] = json.dumps({**load_options, "cwd": os.getcwd()})
    uvicorn.run(
        "ai_assistant.server.run:app_from_environment",
        factory=True,
        workers=options.workers,
        **common,
    )
