"""``knowledge.*`` of one host, read once: the sources, their ingestors and embeddings, and the
vector store they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import KnowledgeError


class SourceSettings:
    """One ``[default.knowledge.sources.<name>]`` table."""

    def __init__(self, name: str, options: dict[str, Any], embeddings: str) -> None:
        self.name = name
        self.options = options
        self.ingestor = str(options.get("ingestor") or "")
        self.embeddings = str(options.get("embeddings") or embeddings)

    def __repr__(self) -> str:
        return f"SourceSettings({self.name!r}, ingestor={self.ingestor!r})"


class KnowledgeSettings:
    """The knowledge settings of one host."""

    def __init__(self, host: Any) -> None:
        config = host.config
        value = config.value
        self.root: Path = Path(config.root)
        self.embeddings = str(value("knowledge.embeddings"))
        self.store_url: str | None = value("knowledge.store")
        self.chunk_size = int(value("knowledge.chunk_size"))
        self.chunk_overlap = min(int(value("knowledge.chunk_overlap")), self.chunk_size // 2)
        self.batch_size = int(value("knowledge.batch_size"))
        self.retries = int(value("knowledge.retries"))
        self.top_k = int(value("knowledge.top_k"))
        self.max_document_chars = int(value("knowledge.max_document_chars"))
        self.sources: dict[str, SourceSettings] = {}
        for name, options in dict(value("knowledge.sources")).items():
            if not isinstance(options, Mapping):
                raise KnowledgeError(
                    f"knowledge.sources.{name} is not a table",
                    hint=f'write [default.knowledge.sources.{name}] with ingestor = "files"',
                )
            plain = {str(k).lower(): v for k, v in dict(options).items()}
            self.sources[str(name)] = SourceSettings(str(name), plain, self.embeddings)

    @property
    def configured(self) -> bool:
        return bool(self.sources)

    def select(self, names: Sequence[str] = ()) -> list[SourceSettings]:
        """The sources named (all when none are), each checked to exist."""
        from ..errors import did_you_mean

        if not self.sources:
            raise KnowledgeError(
                "no knowledge sources are configured",
                hint='add [default.knowledge.sources.docs] with ingestor = "files" and '
                'paths = ["docs"] to settings.toml',
            )
        for name in names:
            if name not in self.sources:
                raise KnowledgeError(
                    f"no knowledge source named {name!r}{did_you_mean(name, self.sources)}",
                    hint="configured: " + ", ".join(self.sources),
                )
        return [self.sources[n] for n in names] if names else list(self.sources.values())

    def resolved_store_url(self) -> str:
        """``knowledge.store`` with a relative file path taken from the settings file's folder;
        empty for the default store's own default location."""
        url = self.store_url
        if not url:
            return ""
        if "://" in url:
            return url
        path = Path(url).expanduser()
        return str(path if path.is_absolute() else self.root / path)


def open_vector_store(host: Any, settings: KnowledgeSettings | None = None) -> Any:
    """The vector store ``knowledge.store`` names (a ``VectorStore``), opened."""
    settings = settings or KnowledgeSettings(host)
    url = settings.resolved_store_url()
    return host.vector_stores.for_url(url).open(url)
