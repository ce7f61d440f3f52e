"""Vector stores for knowledge: the interface (``base``) and the two bundled implementations,
each imported only when a source is ingested or searched: ``sqlite`` (the embedded default, a file
in the user's data directory) and ``postgresql`` (pgvector, for scale). Plugins register stores
through the ``register_vector_stores`` hook; the bundled ones are registered by
``contrib_providers/vector_stores.py``."""
