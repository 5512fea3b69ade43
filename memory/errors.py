"""Errors raised by the memory layer."""

from __future__ import annotations

from uuid import UUID


class MemoryLayerError(Exception):
    """Root of every error the memory layer raises."""


class InvalidMemory(MemoryLayerError):
    """A record, query or filter holds a value the memory layer cannot store or use."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid memory {field}: {reason}")
        self.field = field
        self.reason = reason


class MemoryNotFound(MemoryLayerError):
    def __init__(self, memory_id: UUID) -> None:
        super().__init__(f"memory '{memory_id}' not found")
        self.memory_id = memory_id


class DimensionMismatch(MemoryLayerError):
    """A vector's length differs from the index's (often: the embedding model changed)."""

    def __init__(self, where: str, expected: int, got: int) -> None:
        super().__init__(f"{where}: expected vectors of dimension {expected}, got {got}")
        self.where = where
        self.expected = expected
        self.got = got


class IndexUnavailable(MemoryLayerError):
    """The vector store could not be opened, reached or used."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} memory index unavailable: {reason}")
        self.backend = backend
        self.reason = reason


class IndexNotOpen(MemoryLayerError):
    def __init__(self, backend: str) -> None:
        super().__init__(f"{backend} memory index is not open: use 'async with'")
        self.backend = backend


class EmbedderError(MemoryLayerError):
    """The embedding model could not be loaded or failed to encode."""


class EmbedderNotOpen(EmbedderError):
    def __init__(self, model: str) -> None:
        super().__init__(f"embedder {model!r} is not open: use 'async with'")
        self.model = model


class EmbeddingTimeout(EmbedderError):
    def __init__(self, model: str, timeout_s: float) -> None:
        super().__init__(f"embedder {model!r} did not answer within {timeout_s:g} s")
        self.model = model
        self.timeout_s = timeout_s


class SessionNotFound(MemoryLayerError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} not found")
        self.session_id = session_id


class SessionExists(MemoryLayerError):
    """A session was to be created with the id of one that is already stored."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} already exists")
        self.session_id = session_id
