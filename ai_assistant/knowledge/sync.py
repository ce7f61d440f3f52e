"""Ingestion: bring the vector store in line with each source, the same way for every ingestor.

For each document the ingestor yields, a hash of its content (and of the chunking settings)
decides: unchanged (nothing more is done), new or changed (chunked; only chunks whose text is new
are embedded; the document's rows are replaced in one transaction, trailing chunks of a document
that shrank included). Documents the store holds that the ingestor no longer yields are deleted,
but only after the ingestor finished without failing: an ingestor that breaks off deletes
nothing. Documents are written in batches, each one transaction, so an ingest that is interrupted
(Ctrl-C, a kill) leaves the index consistent and the next run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import Document, IngestSource, KnowledgeError
from .settings import KnowledgeSettings, SourceSettings, open_vector_store


@dataclass
class SourceReport:
    """What one source's ingest did."""

    name: str
    embeddings: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0  # chunks written (embedded or kept) this run
    embedded: int = 0  # chunks sent to the embeddings model this run
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (document id, why)
    error: str | None = None  # the ingestor broke off: nothing was deleted
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.error or self.interrupted)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "embeddings": self.embeddings,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": len(self.skipped),
            "chunks": self.chunks,
            "embedded": self.embedded,
            "failed": [{"document": d, "error": e} for d, e in self.failed],
            "skipped_documents": [{"document": d, "reason": r} for d, r in self.skipped],
            "warnings": [{"document": d, "warning": w} for d, w in self.warnings],
            "error": self.error,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
        }


# progress(source name, documents done, documents expected or None)
Progress = Callable[[str, int, "int | None"], None]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def document_hash(doc: Document, settings: KnowledgeSettings) -> str:
    """What decides whether a document changed: its text, its metadata (but for its ``updated``
    time) and how it is chunked."""
    meta = {k: v for k, v in doc.metadata.items() if k != "updated"}
    digest = hashlib.sha256()
    digest.update(f"{settings.chunk_size}:{settings.chunk_overlap}\0".encode())
    digest.update(doc.content.encode("utf-8", "surrogatepass"))
    digest.update(b"\0" + json.dumps(meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Splitter:
    """LangChain's ``RecursiveCharacterTextSplitter`` with the source's sizes, made on first
    use (a run with nothing changed imports no LangChain)."""

    def __init__(self, settings: KnowledgeSettings) -> None:
        self.settings = settings
        self._splitter: Any = None

    def split(self, text: str) -> list[str]:
        if self._splitter is None:
            from langchain_text_splitters import RecursiveCharacterTextSplitter

            self._splitter = RecursiveCharacterTextSplitter(
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
            )
        return [c for c in self._splitter.split_text(text) if c.strip()]


def _as_document(item: Any) -> Document | None:
    """An ingestor's item as a ``Document`` (a dict with the same keys is taken too)."""
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, dict) and "id" in item and "content" in item:
        doc = Document(item["id"], item["content"], dict(item.get("metadata") or {}))
    else:
        return None
    if not isinstance(doc.id, str) or not doc.id or not isinstance(doc.content, str):
        return None
    if not isinstance(doc.metadata, dict):
        doc.metadata = {}
    return doc


class _Pending:
    """Changed documents waiting to be embedded and written, one batch at a time."""

    def __init__(self) -> None:
        self.docs: list[tuple[Document, str, list[str], bool]] = []  # doc, hash, chunks, is new
        self.chunks = 0

    def add(self, doc: Document, digest: str, chunks: list[str], is_new: bool) -> None:
        self.docs.append((doc, digest, chunks, is_new))
        self.chunks += len(chunks)

    def clear(self) -> None:
        self.docs, self.chunks = [], 0


class SourceSync:
    """One source's ingest into an open store."""

    def __init__(
        self,
        host: Any,
        store: Any,
        source: SourceSettings,
        settings: KnowledgeSettings,
        reembed: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.host = host
        self.store = store
        self.source = source
        self.settings = settings
        self.reembed = reembed
        self.progress = progress
        self.report = SourceReport(source.name, embeddings=source.embeddings)
        self.splitter = Splitter(settings)
        self._embeddings: Any = None
        self._dimension: int | None = None

    # -- the parts a source is made of ----------------------------------------------------

    def _ingestor(self) -> Callable[[IngestSource], Iterable[Any]]:
        if not self.source.ingestor:
            raise KnowledgeError(
                f"knowledge.sources.{self.source.name}: no ingestor is named",
                hint='add ingestor = "files" (or another id: ' + self._known_ingestors() + ")",
            )
        try:
            return self.host.ingestors.get(self.source.ingestor).get()
        except KnowledgeError:
            raise
        except Exception as exc:
            raise KnowledgeError(
                f"knowledge.sources.{self.source.name}.ingestor: {exc}",
                hint=getattr(exc, "hint", None),
            ) from None

    def _known_ingestors(self) -> str:
        return ", ".join(repr(i) for i in self.host.ingestors.ids()) or "none registered"

    def embeddings(self) -> Any:
        if self._embeddings is None:
            item = self.host.embeddings.get(self.source.embeddings)
            self._embeddings = item.get()
        return self._embeddings

    def _check_claim(self) -> dict[str, str]:
        """The stored hashes, once the source's embeddings are checked against what the store
        holds: another model's vectors are never mixed in."""
        state = self.store.source(self.source.name)
        if state is not None and self.reembed:
            self.store.drop_source(self.source.name)
            state = None
        if state is not None:
            self._dimension = state.dimension
            if state.embeddings != self.source.embeddings:
                raise KnowledgeError(
                    f"knowledge source {self.source.name!r} holds vectors from embeddings "
                    f"{state.embeddings!r} ({state.dimension} dimensions); its settings now name "
                    f"{self.source.embeddings!r}, whose vectors cannot be mixed with them",
                    hint=f"run `ai-assistant knowledge ingest {self.source.name} --reembed` to "
                    "embed it again with the new model, or set its embeddings back",
                )
            return self.store.document_hashes(self.source.name)
        return {}

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> SourceReport:
        started = time.perf_counter()
        try:
            self._run()
        finally:
            self.report.seconds = time.perf_counter() - started
        return self.report

    def _run(self) -> None:
        report, settings = self.report, self.settings
        ingest = self._ingestor()
        self.host.embeddings.get(self.source.embeddings)  # unknown id: say so before any work
        known = self._check_claim()
        seen: set[str] = set()
        target = IngestSource(self.source.name, dict(self.source.options), settings.root)
        pending = _Pending()
        done = 0
        try:
            for item in ingest(target) or ():
                doc = _as_document(item)
                if doc is None:
                    target.warn(repr(item)[:80], "not a Document (id, content, metadata): left out")
                    continue
                if doc.id in seen:
                    target.warn(doc.id, "yielded twice: the first one is kept")
                    continue
                seen.add(doc.id)
                done += 1
                self._take(doc, known, pending)
                if pending.chunks >= settings.batch_size:
                    self._flush(pending)
                if self.progress is not None:
                    self.progress(self.source.name, done, target.expected)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        except KnowledgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - an ingestor's failure is reported, not a crash
            report.error = self.host.config.redact(
                f"the ingestor {self.source.ingestor!r} failed: {type(exc).__name__}: {exc}"
            )
        finally:
            report.skipped.extend(target.skipped)
            report.warnings.extend(target.warnings)
        self._flush(pending)  # what was read before an ingestor broke off is kept too
        if report.error is None:
            gone = [doc_id for doc_id in known if doc_id not in seen]
            if gone:
                report.deleted = self.store.delete_documents(self.source.name, gone)
            if self.store.source(self.source.name) is not None:
                self.store.finish_ingest(self.source.name, now())

    def _take(self, doc: Document, known: dict[str, str], pending: _Pending) -> None:
        if "\x00" in doc.content:
            doc.content = doc.content.replace("\x00", "")
            self.report.warnings.append((doc.id, "NUL bytes were removed"))
        limit = self.settings.max_document_chars
        if len(doc.content) > limit:
            self.report.warnings.append(
                (doc.id, f"cut at knowledge.max_document_chars ({limit} characters)")
            )
            doc.content = doc.content[:limit]
        doc.metadata = {**doc.metadata, "source": self.source.name}
        digest = document_hash(doc, self.settings)
        old = known.get(doc.id)
        if old == digest:
            self.report.unchanged += 1
            return
        pending.add(doc, digest, self.splitter.split(doc.content), old is None)

    def _flush(self, pending: _Pending) -> None:
        """Embed the pending documents' new chunks and write them, one transaction per batch."""
        if not pending.docs:
            return
        from ..storage.vectors.base import Chunk, DocumentRows

        name = self.source.name
        rows: list[DocumentRows] = []
        wanted: dict[str, str] = {}  # text hash -> text still to embed
        kept: dict[str, Any] = {}  # text hash -> vector already stored
        for doc, _digest, chunks, is_new in pending.docs:
            if not is_new:
                kept.update(self.store.chunk_vectors(name, doc.id))
            for text in chunks:
                key = text_hash(text)
                if key not in kept:
                    wanted[key] = text
        vectors, failed = self._embed(wanted)
        for doc, digest, chunks, is_new in pending.docs:
            keys = [text_hash(t) for t in chunks]
            missing = [k for k in keys if k in failed]
            if missing:
                self.report.failed.append((doc.id, failed[missing[0]]))
                continue
            found = [vectors.get(k) if k in vectors else kept[k] for k in keys]
            parts = zip(chunks, keys, found, strict=True)
            stored = [Chunk(i, t, k, v) for i, (t, k, v) in enumerate(parts)]
            rows.append(DocumentRows(doc.id, digest, doc.metadata, stored))
            if is_new:
                self.report.added += 1
            else:
                self.report.updated += 1
            self.report.chunks += len(stored)
        pending.clear()
        if rows:
            self._claim(rows)
            self.store.write_documents(name, rows)

    def _claim(self, rows: Sequence[Any]) -> None:
        vector = next((c.vector for r in rows for c in r.chunks), None)
        if vector is None:
            if self._dimension is not None:
                return
            # only empty documents so far: the model's dimension, from one short query
            vector = self.embeddings().embed_query("dimension")
        dimension = len(vector)
        if self._dimension is None:
            self.store.claim_source(self.source.name, self.source.embeddings, dimension)
            self._dimension = dimension
        elif dimension != self._dimension:
            raise KnowledgeError(
                f"knowledge source {self.source.name!r} holds {self._dimension}-dimension "
                f"vectors; embeddings {self.source.embeddings!r} now gives {dimension}",
                hint=f"run `ai-assistant knowledge ingest {self.source.name} --reembed`",
            )

    def _embed(self, wanted: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        """Vectors for ``wanted`` texts, in batches; a batch that still fails after
        ``knowledge.retries`` retries is reported (its documents are left for the next run),
        the other batches go on. ``(vectors by hash, why by hash for the failed ones)``."""
        vectors: dict[str, Any] = {}
        failed: dict[str, str] = {}
        items = list(wanted.items())
        size = self.settings.batch_size
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            texts = [text for _key, text in batch]
            try:
                result = self._embed_batch(texts)
            except KnowledgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per document, the rest goes on
                why = self.host.config.redact(
                    f"embeddings {self.source.embeddings!r} failed: {type(exc).__name__}: {exc}"
                )
                failed.update((key, why) for key, _text in batch)
                continue
            self.report.embedded += len(texts)
            vectors.update((key, vector) for (key, _t), vector in zip(batch, result, strict=True))
        return vectors, failed

    def _embed_batch(self, texts: list[str]) -> list[Any]:
        model = self.embeddings()
        attempt = 0
        while True:
            try:
                result = model.embed_documents(texts)
                if len(result) != len(texts):
                    raise ValueError(f"{len(result)} vectors for {len(texts)} texts")
                return result
            except Exception:
                if attempt >= self.settings.retries:
                    raise
                time.sleep(min(0.25 * 2**attempt, 4.0))
                attempt += 1


def ingest(
    host: Any,
    names: Sequence[str] = (),
    reembed: bool = False,
    progress: Progress | None = None,
    on_report: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Ingest the named sources (all when none are named), one after another. A Ctrl-C stops
    after the batch being written; the reports so far are returned, the last one marked
    ``interrupted``."""
    settings = KnowledgeSettings(host)
    sources = settings.select(names)
    reports: list[SourceReport] = []
    store = open_vector_store(host, settings)
    try:
        for source in sources:
            sync = SourceSync(host, store, source, settings, reembed, progress)
            try:
                report = sync.run()
            except KeyboardInterrupt:
                sync.report.interrupted = True
                reports.append(sync.report)
                if on_report is not None:
                    on_report(sync.report)
                break
            reports.append(report)
            if on_report is not None:
                on_report(report)
    finally:
        store.close()
    return reports
