"""The ``search_knowledge`` tool: registered by the host when knowledge sources are configured,
run like any other tool (``chat.tools``, ``-T``, the gateway's ``server.tools``). Its result is
numbered passages the model can cite as ``[1]``; the sources travel as the tool's artifact, so
the chat shows them under the reply and the API returns them with it."""

from __future__ import annotations

from typing import Any

NAME = "search_knowledge"
PLUGIN = "knowledge"  # what ``tools list`` and ``plugins list`` attribute the tool to


def passages(hits: list[Any]) -> str:
    """Numbered passages with where each comes from: what the model reads."""
    if not hits:
        return "No passages matched."
    blocks = []
    for number, hit in enumerate(hits, 1):
        meta = hit.metadata or {}
        where = meta.get("path") or meta.get("url") or hit.document_id
        title = f" ({meta['title']})" if meta.get("title") else ""
        blocks.append(f"[{number}] {hit.source}: {where}{title}\n{hit.text.strip()}")
    return "\n\n".join(blocks)


def register(host: Any) -> None:
    """Register ``search_knowledge`` for ``host`` if it has knowledge sources."""
    from collections.abc import Mapping

    sources = host.config.value("knowledge.sources")
    if not isinstance(sources, Mapping) or not sources:
        return  # (a broken knowledge table is reported where it is used)
    names = ", ".join(str(name) for name in sources)
    top_k = int(host.config.value("knowledge.top_k"))

    async def search_knowledge(query: str, k: int = top_k, source: str | None = None) -> Any:
        """Search the organisation's documents and return the passages closest to the query,
        numbered, each with its source and path. Cite them as [1], [2] in the answer."""
        from .search import citation, knowledge_of

        hits = await knowledge_of(host).asearch(
            query, max(1, min(int(k), 20)), [source] if source else ()
        )
        return passages(hits), {"sources": [citation(h) for h in hits]}

    description = (
        "Search the organisation's documents (knowledge sources: "
        f"{names}) and return the passages closest to the query, numbered, each with its source "
        "and path. Cite the passages you use as [1], [2]. Arguments: query (what to look for), "
        f"k (how many passages, default {top_k}), source (only this source)."
    )
    host.tools.for_plugin(PLUGIN).register(
        search_knowledge, name=NAME, description=description, artifact=True
    )
