"""Personae memory: embeddings, vector memory (Qdrant Edge or server), retrieval scoring."""

from memory.edge import EdgeMemoryIndex
from memory.embedder import (
    DEFAULT_MODEL,
    BatchStats,
    MicroBatcher,
    SentenceTransformerEmbedder,
    resolve_model,
)
from memory.errors import (
    DimensionMismatch,
    EmbedderError,
    EmbedderNotOpen,
    EmbeddingTimeout,
    IndexNotOpen,
    IndexUnavailable,
    InvalidMemory,
    MemoryLayerError,
    MemoryNotFound,
    SessionNotFound,
)
from memory.fake_embedder import FakeEmbedder
from memory.importance import HeuristicImportance, heuristic_importance
from memory.index import VectorIndex
from memory.keywords import SparseTerms, document_terms, query_terms, tokenize
from memory.qdrant_server import ServerMemoryIndex
from memory.scoring import Candidate, ScoringWeights, named_speaker, rank, recency
from memory.types import (
    MEMORY_KINDS,
    SPEAKER_ROLES,
    Embedder,
    ImportanceRater,
    JSONValue,
    Matrix,
    MemoryFilter,
    MemoryKind,
    MemoryPage,
    MemoryQuery,
    MemoryRecord,
    ScoreBreakdown,
    ScoredMemory,
    SpeakerRole,
    Vector,
)

__all__ = [
    "DEFAULT_MODEL",
    "MEMORY_KINDS",
    "SPEAKER_ROLES",
    "BatchStats",
    "Candidate",
    "DimensionMismatch",
    "EdgeMemoryIndex",
    "Embedder",
    "EmbedderError",
    "EmbedderNotOpen",
    "EmbeddingTimeout",
    "FakeEmbedder",
    "HeuristicImportance",
    "ImportanceRater",
    "IndexNotOpen",
    "IndexUnavailable",
    "InvalidMemory",
    "JSONValue",
    "Matrix",
    "MemoryFilter",
    "MemoryKind",
    "MemoryLayerError",
    "MemoryNotFound",
    "MemoryPage",
    "MemoryQuery",
    "MemoryRecord",
    "MicroBatcher",
    "ScoreBreakdown",
    "ScoredMemory",
    "ScoringWeights",
    "SentenceTransformerEmbedder",
    "ServerMemoryIndex",
    "SessionNotFound",
    "SparseTerms",
    "SpeakerRole",
    "Vector",
    "VectorIndex",
    "document_terms",
    "heuristic_importance",
    "named_speaker",
    "query_terms",
    "rank",
    "recency",
    "resolve_model",
    "tokenize",
]
