"""A deterministic stand-in for the embedding model, for fast tests.

Each token gets a fixed pseudo-random unit vector (seeded by the token and ``seed``);
a text's vector is the normalised sum of its tokens', so texts that share words are
similar and texts that share none are nearly orthogonal. No meaning, no model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from types import TracebackType
from typing import Self

import numpy as np

from memory.types import Matrix, Purpose, Vector
from memory.vector.keywords import tokenize


class FakeEmbedder:
    """Bag-of-words hashing embedder implementing :class:`memory.types.Embedder`."""

    def __init__(self, dim: int = 64, *, seed: int = 0) -> None:
        self._dim = dim
        self._seed = seed
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def embed(
        self, texts: Sequence[str], *, urgent: bool = False, purpose: Purpose = "other"
    ) -> Matrix:
        self.calls += 1
        matrix = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            matrix[row] = self.vector(text)
        return matrix

    async def embed_one(
        self, text: str, *, urgent: bool = True, purpose: Purpose = "query"
    ) -> Vector:
        vector: Vector = (await self.embed([text], urgent=urgent, purpose=purpose))[0]
        return vector

    def vector(self, text: str) -> Vector:
        """The embedding of ``text``, synchronously (for building fixtures)."""
        total = np.zeros(self._dim, dtype=np.float64)
        for token in tokenize(text) or ["\0empty"]:
            total += _token_vector(token, self._dim, self._seed)
        norm = np.linalg.norm(total)
        return (total / norm).astype(np.float32)


@lru_cache(maxsize=65_536)
def _token_vector(token: str, dim: int, seed: int) -> Vector:
    digest = hashlib.blake2b(f"{seed}:{token}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    vector = rng.standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)
