"""Per-turn trait observations from one reply: stylometry plus prototype similarity.

Runs after ``message.done`` (off the critical path) and reuses the reply embedding the
memory layer already computed; no model call happens here."""

from __future__ import annotations

from agents.traits.prototypes import PrototypeScorer, ocean
from agents.traits.stylometry import MATTR_WINDOW, Stylometry, style_traits, stylometry
from agents.traits.types import TraitObservation, Vector

STYLOMETRY_CONFIDENCE = 0.6
EMBEDDING_CONFIDENCE = 0.5
OCEAN_CONFIDENCE = 0.3
MIN_CONFIDENCE = 0.05
# Ratios over a handful of words are noise: full confidence from this many words on.
STYLE_FULL_WORDS = 20
EMBEDDING_FULL_WORDS = 8
# Styles people mirror from whoever they talk to (communication accommodation).
MIRRORED = ("enthusiasm", "formality", "verbosity")
MIRROR_LEVEL = 0.6
MIRROR_DISCOUNT = 0.5
_LEXICON_TRAITS = frozenset({"hedging", "confidence"})


def _style_confidence(name: str, s: Stylometry) -> float:
    if name == "verbosity":
        return STYLOMETRY_CONFIDENCE
    if name == "lexical_richness":
        return STYLOMETRY_CONFIDENCE * min(1.0, s.word_count / MATTR_WINDOW)
    reliability = min(1.0, s.word_count / STYLE_FULL_WORDS)
    if not s.english_like:
        reliability *= 0.0 if name in _LEXICON_TRAITS else 0.5
    return STYLOMETRY_CONFIDENCE * reliability


def extract(
    reply_text: str,
    reply_vector: Vector | None,
    user_text: str | None = None,
    *,
    scorer: PrototypeScorer | None,
) -> list[TraitObservation]:
    """Observations of one persona reply, ready for ``ObservedProfile.update``.

    - stylometry (confidence 0.6, less for short or non-English replies): verbosity,
      inquisitiveness, enthusiasm, hedging, confidence, formality, lexical_richness;
    - prototype similarity of ``reply_vector`` (0.5): the sixteen behavioural traits;
    - OCEAN approximations from those (0.3): agreeableness, extraversion, openness.

    ``user_text``, when given, halves the confidence of enthusiasm, formality and
    verbosity when both the user and the reply show them strongly: the persona may be
    mirroring its interlocutor rather than showing its own character. An empty reply (no
    words) gives no observations; ``reply_vector=None`` or ``scorer=None`` skips the
    embedding part."""
    s = stylometry(reply_text)
    if s.word_count == 0:
        return []
    style = style_traits(s)
    mirrored: set[str] = set()
    if user_text:
        theirs = style_traits(stylometry(user_text))
        mirrored = {n for n in MIRRORED if theirs[n] >= MIRROR_LEVEL and style[n] >= MIRROR_LEVEL}
    out: list[TraitObservation] = []
    for name, value in style.items():
        confidence = _style_confidence(name, s) * (MIRROR_DISCOUNT if name in mirrored else 1.0)
        if confidence >= MIN_CONFIDENCE:
            out.append(TraitObservation(name, value, "stylometry", confidence))
    if scorer is None or reply_vector is None:
        return out
    reliability = min(1.0, s.word_count / EMBEDDING_FULL_WORDS)
    scores = scorer.score(reply_vector)
    for name, value in scores.items():
        out.append(TraitObservation(name, value, "embedding", EMBEDDING_CONFIDENCE * reliability))
    for name, value in ocean(scores).items():
        out.append(TraitObservation(name, value, "embedding", OCEAN_CONFIDENCE * reliability))
    return out
