"""Knowledge's bundled parts: the ``files`` ingestor and the two vector stores.

    [default.knowledge.sources.handbook]
    ingestor = "files"
    paths = ["docs"]                          # relative to the settings file
    include = ["**/*.md", "**/*.txt"]         # the default: text formats (see files.py)
    exclude = ["drafts/**"]

    [default.knowledge]
    store = "postgresql://user@db/assistant"  # pgvector; unset: a file in the data directory

Nothing heavy is imported here: the stores' drivers load when a store is opened.
"""

from ai_assistant import hookimpl


def open_embedded(url):
    from ai_assistant.storage.vectors.sqlite import SQLiteVectorStore, default_knowledge_path

    return SQLiteVectorStore(url or str(default_knowledge_path()))


def open_postgresql(url):
    from ai_assistant.storage.vectors.postgresql import PostgresVectorStore

    return PostgresVectorStore(url)


def ingest_files(source):
    from .files import ingest_files as ingest

    return ingest(source)


@hookimpl
def register_ingestors(config, registry):
    registry.register("files", ingest_files, description="text files from local folders")


@hookimpl
def register_vector_stores(config, registry):
    registry.register(
        "embedded",
        open_embedded,
        schemes=["sqlite"],
        default=True,
        description="a SQLite file with an in-memory numpy index (the default)",
    )
    registry.register(
        "pgvector",
        open_postgresql,
        schemes=["postgresql", "postgres"],
        description="PostgreSQL with pgvector: fixed-dimension columns, HNSW index",
    )
