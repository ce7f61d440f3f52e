"""Knowledge: documents from ingestors, chunked and embedded into a vector store, searched by the
``search_knowledge`` tool, ``chat --knowledge``, ``knowledge search`` and the gateway.

    [default.knowledge]
    embeddings = "hashing"          # an id from `ai-assistant embeddings list`
    store = "postgresql://..."      # optional: the embedded file in the data directory otherwise
    [default.knowledge.sources.handbook]
    ingestor = "files"
    paths = ["docs"]                # relative to the settings file

The core does what every ingestor needs (``sync``): content hashes so an unchanged document costs
a hash check, chunking, batched embedding with retries, and deleting what a source no longer has.
Ingestors, embeddings models and vector stores come from plugins. Nothing here is imported by a
command that does not use knowledge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AiAssistantError


class KnowledgeError(AiAssistantError):
    """Knowledge is not configured, or a source cannot be ingested or searched as asked."""


class Document:
    """What an ingestor yields: ``id`` unique within its source (a relative path, a URL),
    ``content`` as text, and ``metadata`` (``path`` or ``url``, ``title``, ``updated``).
    (A plain class: this module is imported by every command of a host with knowledge.)"""

    __slots__ = ("id", "content", "metadata")

    def __init__(self, id: str, content: str, metadata: dict[str, Any] | None = None) -> None:
        self.id = id
        self.content = content
        self.metadata = metadata if metadata is not None else {}

    def __repr__(self) -> str:
        return f"Document({self.id!r}, {len(self.content)} characters)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return (self.id, self.content, self.metadata) == (other.id, other.content, other.metadata)


class IngestSource:
    """One configured source as its ingestor sees it: ``name``, its settings table ``options``,
    the folder relative paths start from (``root``), and ways to report documents left out
    (``skip``) or read imperfectly (``warn``). ``expect(n)`` tells the progress bar how many
    documents are coming, when the ingestor knows."""

    def __init__(self, name: str, options: dict[str, Any], root: Path) -> None:
        self.name = name
        self.options = options
        self.root = root
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []
        self.expected: int | None = None

    def __repr__(self) -> str:
        return f"IngestSource({self.name!r})"

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((str(what), str(why)))

    def warn(self, what: str, why: str) -> None:
        self.warnings.append((str(what), str(why)))

    def expect(self, count: int) -> None:
        self.expected = count

    def path(self, value: str) -> Path:
        """A path from this source's settings, relative to the settings file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.root / path)


__all__ = ["Document", "IngestSource", "KnowledgeError"]
