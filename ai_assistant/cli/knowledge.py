"""`ai-assistant knowledge`: ingest sources, search them, and see what each holds."""

from __future__ import annotations

import sys
from typing import Any

import click

from .context import get_host, global_options, options
from .output import echo_json, format_options, render_table, warn


@click.group()
def knowledge() -> None:
    """Documents the assistant answers from: ingest, search, sources.

    Configure sources in settings.toml ([default.knowledge.sources.NAME] with an ingestor,
    like "files"), then run `ai-assistant knowledge ingest`.
    """


class _Bar:
    """A rich progress bar on a terminal (stderr), one task per source; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("documents"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()

    def __call__(self, source: str, done: int, expected: int | None) -> None:
        if self.progress is None:
            return
        task = self.tasks.get(source)
        if task is None:
            task = self.tasks[source] = self.progress.add_task(source, total=expected)
        self.progress.update(task, completed=done, total=expected)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary(report: Any) -> str:
    parts = [
        f"{report.added} added",
        f"{report.updated} updated",
        f"{report.unchanged} unchanged",
        f"{report.deleted} deleted",
    ]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    if report.failed:
        parts.append(f"{len(report.failed)} failed")
    return (
        f"{report.name}: " + ", ".join(parts) + f" ({report.chunks} chunks written, "
        f"{report.embedded} embedded with {report.embeddings}, {report.seconds:.1f} s)"
    )


@knowledge.command("ingest")
@click.argument("sources", nargs=-1)
@click.option(
    "--reembed",
    is_flag=True,
    help="Drop what the sources hold and embed every document again (after changing a "
    "source's embeddings model).",
)
@format_options("text", "json")
@global_options
def ingest_command(sources: tuple[str, ...], reembed: bool, fmt: str) -> None:
    """Bring the index in line with each SOURCE (all when none is named): new and changed
    documents are embedded, unchanged ones cost a hash check, removed ones are deleted."""
    from ..knowledge.sync import ingest

    host = get_host()
    verbose = options().verbose
    bar = _Bar(enabled=fmt == "text" and sys.stderr.isatty())
    shown: list[Any] = []

    def on_report(report: Any) -> None:
        shown.append(report)
        if fmt != "text":
            return
        click.echo(_summary(report))
        for document, reason in report.skipped[: None if verbose else 5]:
            click.echo(f"  skipped {document}: {reason}", err=True)
        if len(report.skipped) > 5 and not verbose:
            click.echo(f"  ... {len(report.skipped) - 5} more skipped (-v lists them)", err=True)
        for document, message in report.warnings:
            warn(f"{report.name}: {document}: {message}")
        for document, why in report.failed:
            click.echo(f"error: {report.name}: {document} was not indexed: {why}", err=True)
        if report.error:
            click.echo(
                f"error: {report.name}: {report.error}; nothing was deleted, what was read is kept",
                err=True,
            )

    try:
        reports = ingest(host, sources, reembed=reembed, progress=bar, on_report=on_report)
    finally:
        bar.close()
    if fmt == "json":
        echo_json([r.as_dict() for r in reports])
    if any(r.interrupted for r in reports):
        click.echo(
            "interrupted: what was written is kept; run the same command again to go on",
            err=True,
        )
        sys.exit(130)
    if any(r.failed for r in reports):
        click.echo("  hint: run the same command again to retry what failed", err=True)
    if not all(r.ok for r in reports):
        sys.exit(1)


@knowledge.command("search")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 100), help="How many chunks (default top_k).")
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source.")
@format_options("table", "json")
@global_options
def search_command(query: str, k: int | None, sources: tuple[str, ...], fmt: str) -> None:
    """The chunks closest to QUERY, best first, with source, path and score."""
    from ..knowledge.search import hit_dict, knowledge_of

    host = get_host()
    found = knowledge_of(host)
    try:
        hits = [hit_dict(h) for h in found.search(query, k, sources)]
    finally:
        found.close()
    if fmt == "json":
        echo_json(hits)
        return
    if not hits:
        warn("no chunk matched")
        return
    for number, hit in enumerate(hits, 1):
        where = hit.get("path") or hit.get("url") or hit["document"]
        click.echo(f"[{number}] {hit['source']}: {where}  score {hit['score']:.3f}")
        text = " ".join(hit["text"].split())
        click.echo("    " + (text if len(text) <= 300 else text[:297] + "..."))


@knowledge.command("sources")
@format_options("table", "json")
@global_options
def sources_command(fmt: str) -> None:
    """Each source: documents, chunks, embeddings model and last ingest."""
    from ..knowledge.search import knowledge_of

    host = get_host()
    found = knowledge_of(host)
    try:
        rows = found.sources()
        store = found.store().display_url
    finally:
        found.close()
    if fmt == "json":
        echo_json({"store": store, "sources": rows})
        return
    table = [
        (
            r["source"] + ("" if r["configured"] else " (not in settings)"),
            r["ingestor"] or "-",
            r["embeddings"],
            r["dimension"] or "-",
            r["documents"],
            r["chunks"],
            r["last_ingest"] or "never",
        )
        for r in rows
    ]
    headers = ["SOURCE", "INGESTOR", "EMBEDDINGS", "DIM", "DOCUMENTS", "CHUNKS", "LAST INGEST"]
    if table:
        click.echo(render_table(headers, table))
    else:
        warn(
            "no knowledge sources: add [default.knowledge.sources.docs] with "
            'ingestor = "files" and paths = ["docs"] to settings.toml'
        )
    click.echo(f"store: {store}", err=True)
