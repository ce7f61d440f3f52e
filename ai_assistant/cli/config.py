"""`ai-assistant config`: show the merged settings (secrets masked) and validate them."""

from __future__ import annotations

import click

from ..config import masked_value
from ..host import load_host
from ..validation import ERROR, validate
from .context import get_config, global_options, options
from .output import echo_json


def _plain(value):
    """TOML has no null: drop None values so tomli-w can write the rest."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None]
    return value


@click.group()
@global_options
def config() -> None:
    """Show and check the settings."""


@config.command("show")
@click.argument("key", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["toml", "json"]), default="toml", show_default=True
)
@global_options
def show(key: str | None, fmt: str) -> None:
    """Print the merged settings, or the value at KEY (like models.echo), secrets masked."""
    cfg = get_config(check=False)
    value = masked_value(cfg, key)
    if fmt == "json":
        echo_json(value)
        return
    files = ", ".join(str(p) for p in cfg.files) or "none (built-in defaults)"
    click.echo(f"# environment: {cfg.env}; files: {files}; secrets are masked")
    for path in cfg.skipped:
        click.echo(f"# skipped {path}: not an ai-assistant settings file")
    if isinstance(value, dict):
        import tomli_w

        click.echo(tomli_w.dumps(_plain(value)).rstrip())
    else:
        click.echo(value)


@config.command("validate")
@global_options
def validate_command() -> None:
    """Check every section and plugin; report all problems at once, with the key at fault."""
    opts = options()
    host = load_host(config=get_config(check=False), plugins_dirs=opts.plugins_dir)
    findings = validate(host)
    files = ", ".join(str(p) for p in host.config.files) or "no settings file"
    click.echo(f"checked: {files} (environment: {host.config.env})")
    for finding in findings:
        click.echo(f"{finding.severity:<8} {finding.key}: {finding.message}")
    errors = sum(f.severity == ERROR for f in findings)
    warnings = len(findings) - errors
    if not findings:
        click.echo("ok: no problems found")
    else:
        click.echo(
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        )
    strict = opts.strict or host.config.strict
    if errors or (strict and warnings):
        raise SystemExit(1)
