"""Starting the gateway under uvicorn: where it binds, how many workers, and the refusal to
expose a keyless gateway beyond loopback."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from typing import Any

from ..errors import AiAssistantError
from ..host import Host, load_host
from ..net import is_loopback_host

# how `serve` hands its options to worker processes (not an AI_ASSISTANT_ name: Dynaconf would
# read it as a setting)
OPTIONS_VARIABLE = "AIASSISTANT_SERVE_OPTIONS"


class ServeOptions:
    """Where and how to serve: each value from its option, else its ``server.*`` key, else the
    default, refused (naming the option or key) when out of range."""

    def __init__(
        self,
        config: Any,
        host: str | None = None,
        port: int | None = None,
        workers: int | None = None,
    ) -> None:
        self.host = host or config.get("server.host") or config.value("server.host")
        if not isinstance(self.host, str):
            raise AiAssistantError(f"server.host must be a string, not {self.host!r}")
        self.port = _whole(config, port, "--port", "server.port", 1, 65535)
        self.workers = _whole(config, workers, "--workers", "server.workers", 1, None)
        self.access_log = config.value("server.access_log")
        self.has_keys = bool(config.value("server.api_keys"))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _whole(
    config: Any,
    given: int | None,
    option: str,
    key: str,
    low: int,
    high: int | None,
) -> int:
    """``given`` (from ``option``), else ``config[key]``, else its default, within low..high
    (a value out of range is refused by name, never replaced by the default)."""
    name, value = option, given
    if value is None:
        name, value = key, config.get(key)
        if value is None:
            return config.value(key)
    allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise AiAssistantError(f"{name} must be a whole number {allowed}, not {value!r}")
    if high is not None and value > high:
        raise AiAssistantError(f"{name} must be a whole number {allowed}, not {value!r}")
    return value


def bind(options: ServeOptions) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear line (uvicorn would
    log the error and exit)."""
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    where = f"{options.host}:{options.port}"
    how = "choose another with --port N (or server.port in settings.toml)"
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            message = f"port {options.port} is already in use on {options.host}: {how}"
        elif exc.errno == errno.EACCES:
            message = f"not allowed to listen on port {options.port} (below 1024?): {how}"
        else:
            reason = exc.strerror or type(exc).__name__
            message = (
                f"cannot listen on {where}: {reason}; check --host (or server.host) and --port"
            )
        raise AiAssistantError(message) from None
    sock.set_inheritable(True)  # the worker processes serve it too
    return sock


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
    from . import create_app, logs

    opts = json.loads(os.environ[OPTIONS_VARIABLE])
    if opts.get("cwd"):
        os.chdir(opts["cwd"])
    host = load_host(
        settings=opts.get("settings"),
        env=opts.get("env"),
        plugins_dirs=opts.get("plugins_dirs") or (),
        strict=opts.get("strict"),
    )
    logs.install(host.config.redact, verbose=bool(opts.get("verbose")))  # after uvicorn's own
    return create_app(host, own_process=True)


def run(
    host: Host,
    options: ServeOptions,
    load_options: dict[str, Any],
    verbose: bool = False,
    banner: str | None = None,
) -> None:
    """Bind, print ``banner`` (to stderr), and serve until interrupted."""
    import uvicorn

    from . import logs

    sock = bind(options)
    if banner:
        print(banner, file=sys.stderr, flush=True)
    logs.install(host.config.redact, verbose)  # for what happens before uvicorn's are set up
    common = {
        "log_level": "debug" if verbose else "info",
        "access_log": options.access_log,
        "timeout_graceful_shutdown": 10,
    }
    try:
        if options.workers == 1:
            from . import create_app

            config = uvicorn.Config(create_app(host, own_process=True), **common)
            logs.install(host.config.redact, verbose)  # again: uvicorn has set up its handlers
            uvicorn.Server(config).run(sockets=[sock])
            return
        from uvicorn.supervisors import Multiprocess

        os.environ[OPTIONS_VARIABLE] = json.dumps(
            {**load_options, "cwd": os.getcwd(), "verbose": verbose}
        )
        config = uvicorn.Config(
            "ai_assistant.server.run:app_from_environment",
            factory=True,
            workers=options.workers,
            **common,
        )
        logs.install(host.config.redact, verbose)
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
