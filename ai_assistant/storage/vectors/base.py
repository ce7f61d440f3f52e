"""What every vector store offers the knowledge core (``ai_assistant.knowledge``).

The core does the synchronisation (which documents changed, which are gone, chunking and
embedding); a store only keeps, per *source*, documents with their content hash and their chunks
with vectors, and searches them. Every write of a document (its row, its chunks, and the removal of
the chunks past its new end) is one transaction, so an ingest that is killed leaves the index
consistent, and the next run, seeing the old hash, redoes just that document.

The interface is blocking: the CLI calls it directly, async callers through
``asyncio.to_thread``. A store may be used from one thread at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import AiAssistantError


class VectorStoreError(AiAssistantError):
    """A vector store could not be opened, read or written (message says which and how to fix)."""


@dataclass(slots=True)
class Chunk:
    """One chunk of a document as stored: its position, text, the text's hash (sha256 hex, so an
    unchanged chunk of a changed document can keep its vector), and its vector."""

    seq: int
    text: str
    hash: str
    vector: Sequence[float]


@dataclass(slots=True)
class DocumentRows:
    """Everything stored for one document: ``hash`` is of its whole content (an unchanged
    document is skipped by comparing it); ``metadata`` holds ``path`` or ``url``, ``title`` and
    ``updated`` (ISO 8601) when the ingestor knows them."""

    id: str
    hash: str
    metadata: dict[str, Any]
    chunks: list[Chunk]


@dataclass(slots=True)
class SourceState:
    """What a store holds for one source."""

    name: str
    embeddings: str  # the embeddings id its vectors come from
    dimension: int
    documents: int = 0
    chunks: int = 0
    last_ingest: str | None = None  # ISO 8601, UTC, of the last ingest that finished


@dataclass(slots=True)
class Hit:
    """One search result: the chunk, whose document it is, and its cosine similarity to the query
    (higher is closer, at most 1)."""

    source: str
    document_id: str
    seq: int
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)  # the document's metadata


class VectorStore(ABC):
    """A vector store for knowledge. ``url`` is how it was chosen (``knowledge.store``), for
    display with any password masked (``display_url``)."""

    kind = "vector store"

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def display_url(self) -> str:
        from ..base import mask_url

        return mask_url(self.url)

    # -- sources ---------------------------------------------------------------------------

    @abstractmethod
    def sources(self) -> list[SourceState]:
        """Every source the store holds, by name."""

    def source(self, name: str) -> SourceState | None:
        """One source's state, or None if the store has never held it."""
        return next((s for s in self.sources() if s.name == name), None)

    @abstractmethod
    def claim_source(self, name: str, embeddings: str, dimension: int) -> None:
        """Record that ``name``'s vectors come from ``embeddings`` with ``dimension`` (the core
        refuses a change unless asked to re-embed, and then calls ``drop_source`` first)."""

    @abstractmethod
    def drop_source(self, name: str) -> None:
        """Forget a source: its record, documents and chunks."""

    @abstractmethod
    def finish_ingest(self, name: str, when: str) -> None:
        """Record that an ingest of ``name`` finished at ``when`` (ISO 8601)."""

    # -- documents ---------------------------------------------------------------------------

    @abstractmethod
    def document_hashes(self, source: str) -> dict[str, str]:
        """``{document id: content hash}`` of every document of ``source`` (one query)."""

    @abstractmethod
    def chunk_vectors(self, source: str, document_id: str) -> dict[str, Sequence[float]]:
        """``{chunk text hash: vector}`` of one stored document, so that re-ingesting a changed
        document embeds only its new chunks."""

    @abstractmethod
    def write_documents(self, source: str, documents: Iterable[DocumentRows]) -> None:
        """Store each document and its chunks in one transaction, replacing what was stored
        under its id: chunks past its new end (a document that shrank) are deleted."""

    @abstractmethod
    def delete_documents(self, source: str, document_ids: Iterable[str]) -> int:
        """Delete documents and their chunks; how many were deleted."""

    # -- search ------------------------------------------------------------------------------

    @abstractmethod
    def search(
        self,
        vector: Sequence[float],
        k: int,
        sources: Sequence[str],
        where: dict[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` chunks closest to ``vector`` (cosine similarity, best first), among the
        chunks of ``sources`` (all of the same dimension as ``vector``), and whose document
        metadata has every key/value of ``where`` if given."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections and files."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
