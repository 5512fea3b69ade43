"""BM25 sparse vectors, so names, numbers and rare words are found by keyword.

Documents get BM25 term-frequency weights; queries get 1.0 per distinct term. The
inverse document frequency is left to Qdrant (sparse vector ``modifier=IDF``), which
knows the collection's statistics. Both backends use these same vectors, so they
score keywords identically.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass

import Stemmer

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)

# English function words: pronouns, auxiliaries, determiners, prepositions, conjunctions
# and fillers. Content verbs ("love", "remember", "visit") stay: they carry meaning here.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during
    each either else even ever every few for from further get gets getting got had has
    have having he her here hers herself him himself his how i if in into is it its
    itself just let me might mine more most much must my myself neither no nor not now
    of off oh ok okay on once only or other others our ours ourselves out over own
    quite rather really same shall she should so some such than that the their theirs
    them themselves then there these they this those though through thus to too um uh
    under until up upon us very was we well were what whatever when whenever where
    whether which while who whom whose why will with would yeah yes yet you your yours
    yourself yourselves
    i'm i've i'd i'll you're you've you'd you'll he's she's it's we're we've we'd we'll
    they're they've they'd they'll that's there's what's who's how's let's isn't aren't
    wasn't weren't don't doesn't didn't haven't hasn't hadn't won't wouldn't can't
    couldn't shouldn't
    """.split()  # noqa: SIM905 - a word list reads better as words
)

BM25_K1 = 1.2
BM25_B = 0.75
AVERAGE_TOKENS = 60.0
"""Typical tokens of a keyword document (a line with the lines around it) after
stop-word removal: BM25's length-normalisation pivot (LoCoMo's turns with two lines
either side average 65)."""


@dataclass(frozen=True, slots=True)
class SparseTerms:
    """A sparse vector: sorted unique term indices and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed word tokens and whole numbers, function words removed.

    A trailing possessive is dropped ("Anna's" finds "Anna"); words go through the
    Snowball English stemmer, so "painted", "painting" and "paints" meet at "paint";
    numbers are kept whole ("4471", "2024").
    """
    normal = unicodedata.normalize("NFKC", text).casefold()
    stem = _stemmer().stemWord
    tokens: list[str] = []
    for match in _TOKEN.finditer(normal):
        token = match.group().replace("’", "'")
        if token in STOPWORDS:
            continue
        token = token.removesuffix("'s").replace("'", "")
        if token.isdigit():
            tokens.append(token)
        elif len(token) >= 2:
            tokens.append(stem(token))
    return tokens


def _stemmer() -> Stemmer.Stemmer:
    """This thread's stemmer: a ``Stemmer`` object must not be shared between threads."""
    stemmer: Stemmer.Stemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


_local = threading.local()


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
