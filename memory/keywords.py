"""BM25 sparse vectors, so names, numbers and rare words are found by keyword.

Documents get BM25 term-frequency weights; queries get 1.0 per distinct term. The
inverse document frequency is left to Qdrant (sparse vector ``modifier=IDF``), which
knows the collection's statistics. Both backends use these same vectors, so they
score keywords identically.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)

# Function words only: pronouns and verbs like "love" or "remember" carry meaning here.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "i'm",
        "it's",
        "that's",
        "what's",
        "don't",
        "doesn't",
        "didn't",
        "just",
        "also",
        "very",
        "really",
        "about",
        "okay",
        "ok",
        "oh",
        "um",
        "uh",
        "yes",
        "no",
        "not",
    ]
)

BM25_K1 = 1.2
BM25_B = 0.75
AVERAGE_TOKENS = 12.0
"""Typical tokens per memory after stop-word removal; BM25 length normalisation pivot."""


@dataclass(frozen=True, slots=True)
class SparseTerms:
    """A sparse vector: sorted unique term indices and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


def tokenize(text: str) -> list[str]:
    """Lower-cased word and number tokens with function words removed.

    A trailing possessive is dropped and a plain plural 's' stripped, so "Anna's" finds
    "Anna" and "dogs" finds "dog"; numbers are kept whole ("4471", "2024").
    """
    normal = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN.finditer(normal):
        token = match.group().replace("’", "'")
        if token in STOPWORDS:
            continue
        token = token.removesuffix("'s")
        token = token.replace("'", "")
        if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
            token = token[:-1]
        if len(token) < 2 and not token.isdigit():
            continue
        tokens.append(token)
    return tokens


def term_index(token: str) -> int:
    """A stable 32-bit index for a token (the same in every process and backend)."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def document_terms(text: str, *, k1: float = BM25_K1, b: float = BM25_B) -> SparseTerms:
    """BM25 term weights of a stored text: ``tf*(k1+1) / (tf + k1*(1-b+b*len/avg))``."""
    tokens = tokenize(text)
    if not tokens:
        return SparseTerms((), ())
    counts = Counter(term_index(t) for t in tokens)
    norm = k1 * (1.0 - b + b * len(tokens) / AVERAGE_TOKENS)
    ordered = sorted(counts.items())
    return SparseTerms(
        tuple(i for i, _ in ordered),
        tuple(tf * (k1 + 1.0) / (tf + norm) for _, tf in ordered),
    )


def query_terms(text: str) -> SparseTerms:
    """One unit weight per distinct query term; Qdrant multiplies in each term's IDF."""
    indices = sorted({term_index(t) for t in tokenize(text)})
    return SparseTerms(tuple(indices), tuple(1.0 for _ in indices))
