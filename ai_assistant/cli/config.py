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
@click.option("--json", "as_json", is_flag=True, help="Short for --format json.")
@global_options
def show(key: str | None, fmt: str, as_json: bool) -> None:
    """Print the merged settings, or the value at KEY (like models.echo), secrets masked.

    The TOML can be pasted into a settings file as it is: it sits under [default]."""
    cfg = get_config(check=False)
    value = masked_value(cfg, key)
    if as_json or fmt == "json":
        echo_json(value)
        return
    click.echo(f"# environment: {cfg.env}; secrets are masked")
    if cfg.files:
        click.echo("# files read, in order (later wins):")
        for path in cfg.files:
            click.echo(f"#   {path}")
    else:
        click.echo("# files read: none (built-in defaults)")
    for path in cfg.skipped:
        click.echo(f"# skipped {path}: not an ai-assistant settings file")
    import tomli_w

    nested: object = _plain(value)
    for part in reversed(["default", *(key.split(".") if key else [])]):
        nested = {part: nested}
    click.echo(tomli_w.dumps(nested).rstrip())


@config.command("validate")
@global_options
def validate_command() -> None:
    """Check every section and plugin; report all problems at once, with the key at fault."""
    opts = options()
    host = load_host(config=get_config(check=False, report=False), plugins_dirs=opts.plugins_dir)
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
