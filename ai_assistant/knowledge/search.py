"""Retrieval: a query's closest chunks across the configured sources.

Sources embedded with different models are searched each with its own query vector (one
embeddings call per model), and the results merged by score. ``Knowledge`` keeps the store open
for a process (the gateway, a chat) so the embedded store's in-memory index is loaded once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from . import KnowledgeError
from .settings import KnowledgeSettings, open_vector_store


class Knowledge:
    """Search over one host's knowledge, with the store held open; thread-safe (one search at a
    time uses the store). ``asearch`` runs in a worker thread so an event loop never blocks."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.settings = KnowledgeSettings(host)
        self._store: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Knowledge({len(self.settings.sources)} sources)"

    def store(self) -> Any:
        if self._store is None:
            self._store = open_vector_store(self.host, self.settings)
        return self._store

    def search(
        self,
        query: str,
        k: int | None = None,
        sources: Sequence[str] = (),
        where: dict[str, Any] | None = None,
    ) -> list[Any]:
        """The ``k`` (``knowledge.top_k``) best chunks for ``query``, best first."""
        if not isinstance(query, str) or not query.strip():
            raise KnowledgeError("the query is empty", hint="give the words to search for")
        k = self.settings.top_k if k is None else int(k)
        if k < 1:
            raise KnowledgeError(f"k must be at least 1, not {k}")
        wanted = self.settings.select(sources)
        with self._lock:  # (the store is used by one thread at a time)
            held = {state.name: state for state in self.store().sources()}
        groups: dict[str, list[str]] = {}
        for source in wanted:
            state = held.get(source.name)
            if state is None or state.embeddings != source.embeddings:
                continue  # never ingested, or ingested with another model: nothing to match
            groups.setdefault(source.embeddings, []).append(source.name)
        if not groups:
            names = ", ".join(s.name for s in wanted)
            raise KnowledgeError(
                f"nothing is ingested yet for {names}",
                hint="run `ai-assistant knowledge ingest` first",
            )
        hits: list[Any] = []
        for embeddings_id, names in groups.items():
            # the query's embedding (a network call, for most models) holds no lock
            vector = self.host.embeddings.get(embeddings_id).get().embed_query(query)
            with self._lock:
                hits.extend(self.store().search(vector, k, names, where))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits[:k]

    async def asearch(
        self,
        query: str,
        k: int | None = None,
        sources: Sequence[str] = (),
        where: dict[str, Any] | None = None,
    ) -> list[Any]:
        return await asyncio.to_thread(self.search, query, k, sources, where)

    def sources(self) -> list[dict[str, Any]]:
        """Each configured source with what the store holds of it (``knowledge sources``)."""
        with self._lock:
            held = {state.name: state for state in self.store().sources()}
        rows = []
        for name, source in self.settings.sources.items():
            state = held.pop(name, None)
            rows.append(
                {
                    "source": name,
                    "ingestor": source.ingestor,
                    "embeddings": state.embeddings if state else source.embeddings,
                    "dimension": state.dimension if state else None,
                    "documents": state.documents if state else 0,
                    "chunks": state.chunks if state else 0,
                    "last_ingest": state.last_ingest if state else None,
                    "configured": True,
                }
            )
        for name, state in held.items():  # still stored, no longer in the settings
            rows.append(
                {
                    "source": name,
                    "ingestor": None,
                    "embeddings": state.embeddings,
                    "dimension": state.dimension,
                    "documents": state.documents,
                    "chunks": state.chunks,
                    "last_ingest": state.last_ingest,
                    "configured": False,
                }
            )
        return rows

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                store, self._store = self._store, None
                store.close()


def citation(hit: Any) -> dict[str, Any]:
    """Where a hit comes from, as a reply's cited source: source, document, path or url,
    title."""
    meta = hit.metadata or {}
    out: dict[str, Any] = {"source": hit.source, "document": hit.document_id}
    for key in ("path", "url", "title"):
        if meta.get(key):
            out[key] = meta[key]
    return out


def hit_dict(hit: Any) -> dict[str, Any]:
    """A hit as JSON (``knowledge search --format json``, the gateway)."""
    return {
        **citation(hit),
        "chunk": hit.seq,
        "score": round(float(hit.score), 6),
        "text": hit.text,
        "metadata": hit.metadata,
    }


def knowledge_of(host: Any) -> Knowledge:
    """The host's ``Knowledge``, made on first use and closed when the host stops."""
    found = getattr(host, "knowledge", None)
    if found is None:
        found = host.knowledge = Knowledge(host)
    return found
