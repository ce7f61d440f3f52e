-- Knowledge in PostgreSQL: sources and their documents. The chunks of a source live in the
-- table of its vectors' dimension, knowledge_chunks_<dimension> (a pgvector column has one fixed
-- dimension, which its HNSW index needs), created on demand by the store when a source of a new
-- dimension is claimed; see storage/vectors/postgresql.py.
-- Timestamps are ISO 8601 text in UTC, as the core hands them over and the SQLite store keeps them.
CREATE TABLE knowledge_sources (
    name TEXT PRIMARY KEY,
    embeddings TEXT NOT NULL,
    dimension INTEGER NOT NULL CHECK (dimension > 0),
    last_ingest TEXT
);

CREATE TABLE knowledge_documents (
    source TEXT NOT NULL REFERENCES knowledge_sources (name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    hash TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    -- how many chunks the document has (written with them), so a source's count needs no scan
    chunks INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, id)
);
