"""`ai-assistant serve`: the HTTP gateway to every registered model."""

from __future__ import annotations

import click

from .context import get_host, global_options, options


@click.command()
@click.option(
    "--host", "bind_host", metavar="ADDR", help="Address to bind (server.host; default 127.0.0.1)."
)
@click.option("--port", type=int, help="Port (default: server.port).")
@click.option("--workers", type=int, help="Worker processes (server.workers; default 1).")
@click.option(
    "--insecure", is_flag=True, help="Allow a non-loopback --host with no API keys configured."
)
@global_options
def serve(bind_host: str | None, port: int | None, workers: int | None, insecure: bool) -> None:
    """Serve every registered model over OpenAI's chat-completions API (/v1) and a conversation
    API (/api), with /healthz and /readyz."""
    from ..net import is_loopback_host
    from ..server.run import ServeOptions, check_exposure, run

    host = get_host(start=False)  # the app's lifespan starts it, on the server's loop
    from ..config import server_problems
    from ..errors import ConfigError

    if problems := server_problems(host.config):
        raise ConfigError(
            "invalid settings:\n" + "\n".join(f"  {key}: {msg}" for key, msg in problems),
            hint="fix the keys above (see `ai-assistant config validate` for all checks)",
        )
    serve_options = ServeOptions(host.config, bind_host, port, workers)
    check_exposure(serve_options, insecure)
    opts = options()
    if serve_options.has_keys:
        auth = f"{len(host.config.value('server.api_keys'))} API key(s)"
    elif is_loopback_host(serve_options.host):
        auth = "no API keys (loopback only)"
    else:  # --insecure
        auth = "no API keys: open to anyone who can reach it (--insecure)"
    run(
        host,
        serve_options,
        {
            "settings": opts.settings,
            "env": opts.env,
            "plugins_dirs": opts.plugins_dir,
            "strict": opts.strict or None,
        },
        verbose=opts.verbose,
        banner=(
            f"ai-assistant gateway: {len(host.registry)} models, {auth}, "
            f"{serve_options.workers} worker(s) on {serve_options.url}"
        ),
    )
