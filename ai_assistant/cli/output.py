"""Plain-text tables and JSON for the CLI (no rich: it costs 40 ms of start-up to draw a grid)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

FORMATS = click.Choice(["table", "json"])


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


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)
