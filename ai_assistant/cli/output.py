"""Plain-text tables and JSON for the CLI (no rich: it costs 40 ms of start-up to draw a grid)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click


def format_options(*choices: str) -> Any:
    """``--format`` (the first choice is the default) and ``--json``, its short form: every
    command that lists or shows things takes both, with the same names. The command receives
    ``fmt``, already "json" when ``--json`` was given."""

    def use_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta["ai_assistant.json"] = True

    def chosen(ctx: click.Context, _param: click.Parameter, value: str) -> str:
        return "json" if ctx.meta.get("ai_assistant.json") else value

    def decorate(command: Any) -> Any:
        command = click.option(
            "--json",
            is_flag=True,
            expose_value=False,
            is_eager=True,  # before --format, whatever order they were given in
            callback=use_json,
            help="Short for --format json.",
        )(command)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(list(choices)),
            default=choices[0],
            show_default=True,
            callback=chosen,
            help="Output format.",
        )(command)

    return decorate


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), ["-" * w for w in widths], *cells]:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def first_of(info: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The first of ``keys`` that ``info`` holds a value for, as text ("" if none does)."""
    return next((str(info[k]) for k in keys if info.get(k) not in (None, "")), "")


def echo_registered(
    items: Sequence[Any],
    fmt: str,
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    empty: str,
) -> None:
    """A ``list`` command over registry items (models, embeddings models): their ids, their
    ``describe()`` as JSON, or a table of ``(header, cell of an item)`` columns; ``empty`` is
    warned when there are none, and the fix for each missing secret follows as a note."""
    if fmt == "json":
        echo_json([item.describe() for item in items])
    elif fmt == "ids":
        if items:
            click.echo("\n".join(item.id for item in items))
    elif items:
        rows = [[cell(item) for _header, cell in columns] for item in items]
        click.echo(render_table([header for header, _cell in columns], rows))
    if not items:
        warn(empty)
    for kind, hint in sorted({(i.kind, i.fix_hint()) for i in items if i.missing_secrets}):
        article = "an" if kind[:1] in "aeiou" else "a"
        click.echo(f"note: {article} {kind} needs a secret: {hint}", err=True)


def echo_details(details: Mapping[str, Any], fmt: str) -> None:
    """A ``show`` command's item: JSON, or one ``key  value`` line per field (lists joined)."""
    if fmt == "json":
        echo_json(details)
        return
    width = max(len(k) for k in details)
    for key, value in details.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        click.echo(f"{key.ljust(width)}  {value}")


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def shown_path(path: Path | str) -> str:
    """``path`` relative to the current folder when it is inside it, else as it is."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)  # already relative, or an entry point's module:attr
    try:
        return (
            os.path.relpath(path)
            if path.resolve().is_relative_to(Path.cwd().resolve())
            else str(path)
        )
    except (ValueError, OSError):
        return str(path)
