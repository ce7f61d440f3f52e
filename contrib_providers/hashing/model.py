"""HashingEmbeddings: a deterministic, offline LangChain ``Embeddings`` by feature hashing of words.

Each lower-cased word (``\\w+``) is hashed with BLAKE2b, a hash that is the same in every
process (Python's ``hash()`` of a string is not); the hash picks one of ``dimension`` slots and a
sign, the word's count is added there, and the vector is scaled to length 1. Texts that share
words get a high cosine; an empty text (no word) is the zero vector.
"""

from __future__ import annotations

import re
from hashlib import blake2b

from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"\w+")
# words remembered with their slot; past this many (a corpus of ids and numbers) start over
_CACHE_LIMIT = 500_000


class HashingEmbeddings(Embeddings):
    """Feature hashing of words into ``dimension`` slots, L2-normalised."""

    def __init__(self, dimension: int = 384) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
            raise ValueError(f"dimension must be a whole number of at least 1, not {dimension!r}")
        self.dimension = dimension
        self._codes: dict[str, int] = {}  # word -> its slot (see _code)

    def __repr__(self) -> str:
        return f"HashingEmbeddings(dimension={self.dimension})"

    def _code(self, word: str) -> int:
        """The word's slot as one number, remembered: ``index + 1``, negated for a negative
        sign. From one 64-bit BLAKE2b digest, the low bits pick the index and the top bit the
        sign (so colliding words cancel as often as they add up)."""
        digest = int.from_bytes(blake2b(word.encode(), digest_size=8).digest(), "little")
        code = digest % self.dimension + 1
        if digest >> 63:
            code = -code
        if len(self._codes) >= _CACHE_LIMIT:
            self._codes.clear()
        self._codes[word] = code
        return code

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import numpy as np  # imported on first use, like any provider's SDK

        known = self._codes.get
        codes: list[int] = []
        counts: list[int] = []
        for text in texts:
            words = _WORD.findall(text.lower())
            found = list(map(known, words))
            if None in found:
                found = [c or self._code(w) for w, c in zip(words, found, strict=True)]
            codes.extend(found)
            counts.append(len(found))
        dimension = self.dimension
        code = np.array(codes, dtype=np.int64)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        matrix = np.bincount(
            rows * dimension + np.abs(code) - 1,
            weights=np.sign(code).astype(np.float64),
            minlength=len(texts) * dimension,
        ).reshape(len(texts), dimension)
        # whole numbers until here, so the sums and the norm are exact on every machine
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
        norms[norms == 0] = 1.0
        return (matrix / norms[:, None]).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
