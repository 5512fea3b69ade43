"""A linguistic fingerprint of writing samples, measured with the instrument that
measures replies (:mod:`agents.traits.stylometry`), so a persona's source writing and
its replies can be compared value for value.

Pure and deterministic: the same samples give the same fingerprint."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from agents.errors import AgentError
from agents.traits.stylometry import (
    hedge_count,
    person_counts,
    prose_of,
    sentence_end,
    sentences_of,
    style_traits,
    stylometry,
    tokens_of,
)

MIN_WORDS = 150
MIN_SENTENCES = 5
MIN_LETTER_SHARE = 0.5
MTLD_THRESHOLD = 0.72
CONFIDENCE_HALF_WORDS = 600
"""Confidence is ``w / (w + 600)``: 150 words -> 0.2, 600 -> 0.5, 2,400 -> 0.8."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _words(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    even ever every few for from further get gets got had has have having he her here hers
    herself him himself his how however i if in into is it its itself just like made make
    many may me might more most much must my myself no nor not now of off often on once one
    only or other our ours ourselves out over own per rather really same say said see seem
    she should so some such than that the their theirs them themselves then there these they
    thing things this those though through thus to too under until up upon us very was way
    we well were what when where whether which while who whom whose why will with within
    without would yet you your yours yourself yourselves let lets it's i'm don't can't
    that's there's you're we're they're i've isn't doesn't didn't won't wouldn't
    great good new little big long small perhaps maybe always never again still something
    nothing everything anything someone everyone people time year years day days back
    know think want need going come came went take took give gave look looked
    """
)
_SUBORDINATORS = _words(
    "because although though while whereas since unless if when whenever where wherever "
    "which who whom whose that after before until once lest whether"
)
_COORDINATORS = _words("and but or yet so nor")
_LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S", re.MULTILINE)
_VOWELS = re.compile(r"[aeiouy]+")
_LETTER = re.compile(r"[^\W\d_]")


class FingerprintError(AgentError):
    """Writing samples that cannot be fingerprinted: none, too short, or not text."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What writing samples look like. Shares are 0..1; rates are per 100 words."""

    samples: int
    words: int
    sentences: int
    sentence_length: dict[str, float]
    sentence_types: dict[str, float]
    clause_complexity: dict[str, float]
    mtld: float
    sophistication: dict[str, float]
    word_length: dict[str, Any]
    characteristic_words: list[dict[str, Any]]
    rhetoric: dict[str, float]
    style: dict[str, float]
    words_per_sample: float
    confidence: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def check_samples(samples: Sequence[object]) -> list[str]:
    """The samples as texts; raises :class:`FingerprintError` saying what is wrong."""
    if not samples:
        raise FingerprintError("no samples: give at least one text of your writing")
    texts: list[str] = []
    for i, sample in enumerate(samples, start=1):
        if not isinstance(sample, str):
            raise FingerprintError(f"sample {i}: not text ({type(sample).__name__})")
        if "\x00" in sample:
            raise FingerprintError(f"sample {i}: not text (contains NUL bytes)")
        visible = [c for c in sample if not c.isspace()]
        letters = sum(1 for c in visible if _LETTER.match(c))
        if not visible:
            continue
        if letters / len(visible) < MIN_LETTER_SHARE:
            raise FingerprintError(
                f"sample {i}: not prose ({letters} letters in {len(visible)} characters)"
            )
        texts.append(sample)
    if not texts:
        raise FingerprintError("no samples: every sample is empty")
    return texts


def fingerprint(samples: Sequence[object]) -> Fingerprint:
    """The fingerprint of ``samples`` (each a text written by the same person).

    Raises :class:`FingerprintError` for no samples, non-text samples, or fewer than
    ``MIN_WORDS`` words or ``MIN_SENTENCES`` sentences in all."""
    texts = check_samples(samples)
    proses = [prose_of(t) for t in texts]
    tokens: list[str] = []
    sentences: list[str] = []
    for prose in proses:
        tokens.extend(tokens_of(prose))
        sentences.extend(sentences_of(prose))
    if len(tokens) < MIN_WORDS or len(sentences) < MIN_SENTENCES:
        raise FingerprintError(
            f"samples too short: {len(tokens)} words in {len(sentences)} sentences; a "
            f"fingerprint needs at least {MIN_WORDS} words and {MIN_SENTENCES} sentences"
        )
    per_sentence = [tokens_of(s) for s in sentences]
    lengths = [len(ws) for ws in per_sentence]
    ends = [sentence_end(s) for s in sentences]
    n_sent, n_words = len(sentences), len(tokens)
    questions = sum(e.endswith(("?", "？")) for e in ends) / n_sent
    exclamations = sum(e.endswith(("!", "！")) for e in ends) / n_sent
    content = [t for t in tokens if t not in _STOPWORDS and not t.isdigit() and len(t) > 2]
    first, second = person_counts(tokens)
    whole = stylometry("\n\n".join(texts))
    per_100 = 100.0 / n_words
    return Fingerprint(
        samples=len(texts),
        words=n_words,
        sentences=n_sent,
        sentence_length=_distribution(lengths),
        sentence_types={
            "declarative": round(1.0 - questions - exclamations, 4),
            "question": round(questions, 4),
            "exclamation": round(exclamations, 4),
        },
        clause_complexity=_clauses(per_sentence),
        mtld=round(mtld(tokens), 2),
        sophistication=_sophistication(content),
        word_length=_word_lengths(tokens),
        characteristic_words=_characteristic(content),
        rhetoric={
            "questions_per_100_words": round(questions * n_sent * per_100, 3),
            "exclamations_per_100_words": round(exclamations * n_sent * per_100, 3),
            "repetition": round(_repetition(per_sentence), 4),
            "list_lines_per_100_words": round(
                sum(len(_LIST_LINE.findall(p)) for p in proses) * per_100, 3
            ),
            "hedges_per_100_words": round(hedge_count(tokens) * per_100, 3),
            "first_person_per_100_words": round(first * per_100, 3),
            "second_person_per_100_words": round(second * per_100, 3),
            "contractions_per_100_words": round(whole.contraction_rate * 100, 3),
        },
        style={k: round(v, 4) for k, v in style_traits(whole).items() if k != "verbosity"},
        words_per_sample=round(n_words / len(texts), 1),
        confidence=round(n_words / (n_words + CONFIDENCE_HALF_WORDS), 4),
    )


def mtld(tokens: Sequence[str], threshold: float = MTLD_THRESHOLD) -> float:
    """Measure of textual lexical diversity (McCarthy & Jarvis, 2010): the mean length
    of runs of words that keep their type/token ratio above ``threshold``, averaged over
    a forward and a backward pass. Unlike the plain ratio it does not fall as a text
    grows longer."""
    if not tokens:
        return 0.0
    forward = _mtld_pass(tokens, threshold)
    backward = _mtld_pass(list(reversed(tokens)), threshold)
    return (forward + backward) / 2


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    factors = 0.0
    types: set[str] = set()
    count = 0
    for token in tokens:
        count += 1
        types.add(token)
        if len(types) / count <= threshold:
            factors += 1
            types, count = set(), 0
    if count:
        ttr = len(types) / count
        factors += (1 - ttr) / (1 - threshold)
    return len(tokens) / factors if factors > 0 else float(len(tokens))


def _distribution(values: Sequence[int]) -> dict[str, float]:
    ordered = sorted(values)

    def q(p: float) -> float:
        at = p * (len(ordered) - 1)
        low, high = math.floor(at), math.ceil(at)
        return ordered[low] + (ordered[high] - ordered[low]) * (at - low)

    return {
        "min": float(ordered[0]),
        "p10": round(q(0.10), 2),
        "p25": round(q(0.25), 2),
        "median": round(q(0.50), 2),
        "p75": round(q(0.75), 2),
        "p90": round(q(0.90), 2),
        "max": float(ordered[-1]),
        "mean": round(statistics.fmean(ordered), 2),
        "stdev": round(statistics.pstdev(ordered), 2),
    }


def _clauses(per_sentence: Sequence[list[str]]) -> dict[str, float]:
    clauses: list[int] = []
    complex_sentences = 0
    for words in per_sentence:
        subordinate = sum(w in _SUBORDINATORS for w in words[1:])
        coordinate = sum(w in _COORDINATORS for w in words[1:])
        clauses.append(1 + subordinate + coordinate)
        complex_sentences += subordinate > 0
    return {
        "clauses_per_sentence": round(statistics.fmean(clauses), 3),
        "complex_share": round(complex_sentences / len(per_sentence), 4),
    }


def syllables(word: str) -> int:
    """A dictionary-free syllable estimate: vowel groups, a silent final ``e`` dropped."""
    w = word.lower()
    groups = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(groups, 1)


def _sophistication(content: Sequence[str]) -> dict[str, float]:
    if not content:
        return {"long_word_share": 0.0, "polysyllabic_share": 0.0, "score": 0.0}
    long_share = sum(len(w) >= 8 for w in content) / len(content)
    poly_share = sum(syllables(w) >= 3 for w in content) / len(content)
    # 0 for plain prose (about 15 % long content words), 1 from about 45 %
    score = max(0.0, min(1.0, ((long_share + poly_share) / 2 - 0.15) / 0.30))
    return {
        "long_word_share": round(long_share, 4),
        "polysyllabic_share": round(poly_share, 4),
        "score": round(score, 4),
    }


def _word_lengths(tokens: Sequence[str]) -> dict[str, Any]:
    lengths = [len(t.replace("'", "")) for t in tokens]
    buckets = {"1-3": 0, "4-6": 0, "7-9": 0, "10+": 0}
    for n in lengths:
        key = "1-3" if n <= 3 else "4-6" if n <= 6 else "7-9" if n <= 9 else "10+"
        buckets[key] += 1
    return {
        "mean": round(statistics.fmean(lengths), 3),
        "shares": {k: round(v / len(lengths), 4) for k, v in buckets.items()},
    }


def _characteristic(content: Sequence[str], top: int = 12) -> list[dict[str, Any]]:
    """The most used content words (used at least twice), longer words first on ties."""
    counts = Counter(content)
    ranked = sorted(
        (item for item in counts.items() if item[1] >= 2),
        key=lambda item: (-item[1], -len(item[0]), item[0]),
    )
    total = len(content)
    return [
        {"word": w, "count": c, "per_1000": round(1000 * c / total, 2)} for w, c in ranked[:top]
    ]


def _repetition(per_sentence: Sequence[list[str]]) -> float:
    """Share of sentences that open like the one before (anaphora) or repeat one of its
    content-word pairs: a writer's habit of returning to a phrase."""
    if len(per_sentence) < 2:
        return 0.0
    repeats = 0
    for before, now in pairwise(per_sentence):
        same_start = bool(before) and bool(now) and before[0] == now[0]
        pairs_before = set(pairwise(before))
        shared = any(pair in pairs_before and pair[0] not in _STOPWORDS for pair in pairwise(now))
        repeats += same_start or shared
    return repeats / (len(per_sentence) - 1)
