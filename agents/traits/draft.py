"""A draft persona from a linguistic fingerprint: deterministic, so the embedded
default gives the same useful result every time.

Trait intensities are the reply measures of :mod:`agents.traits.stylometry` taken on the
samples (``formality``, ``inquisitiveness``, ``enthusiasm``, ``confidence``,
``lexical_richness``, ``verbosity``), so drift later compares replies with the writing
by one instrument; OCEAN intensities are rough proxies, said so in their descriptions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.traits.fingerprint import Fingerprint
from agents.traits.stylometry import prose_of, sentence_end, sentences_of, tokens_of, verbosity_of

_BELIEF = re.compile(
    r"\b(i believe|i think|we should|you should|should|must|never|always|the key|matters|"
    r"the point is|the truth is|what counts)\b",
    re.IGNORECASE,
)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")

# archetype -> (modes, what the description says)
_ARCHETYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "Socratic Questioner": (("educator", "debater"), "thinks aloud in questions"),
    "Scholar": (("educator", "analyst"), "builds careful, learned arguments"),
    "Enthusiast": (("companion", "coach"), "writes with energy and exclamation"),
    "Analyst": (("analyst", "educator"), "organises ideas into lists and steps"),
    "Coach": (("coach", "mentor"), "speaks straight to the reader"),
    "Storyteller": (("storyteller", "companion"), "writes from personal experience"),
    "Straight Talker": (("mentor", "critic"), "gets straight to the point"),
    "Essayist": (("analyst", "educator"), "develops ideas in measured prose"),
}


@dataclass(frozen=True, slots=True)
class Draft:
    """A persona definition (inactive) and why it looks the way it does."""

    definition: dict[str, Any]
    archetype: str
    confidence: float


def archetype_of(f: Fingerprint) -> str:
    r, s = f.rhetoric, f.style
    if f.sentence_types["question"] >= 0.25:
        return "Socratic Questioner"
    if f.sophistication["score"] >= 0.55 and s.get("formality", 0.0) >= 0.6:
        return "Scholar"
    if f.sentence_types["exclamation"] >= 0.12:
        return "Enthusiast"
    if r["list_lines_per_100_words"] >= 1.5:
        return "Analyst"
    if r["second_person_per_100_words"] >= 4.0:
        return "Coach"
    if r["first_person_per_100_words"] >= 5.0:
        return "Storyteller"
    if f.sentence_length["median"] <= 12:
        return "Straight Talker"
    return "Essayist"


def slugify(name: str) -> str:
    slug = _SLUG_JUNK.sub("-", name.lower()).strip("-")[:60].strip("-")
    return slug if len(slug) >= 2 else f"persona-{slug or 'x'}"


def draft_persona(
    fp: Fingerprint, samples: Sequence[str], *, name: str, slug: str | None = None
) -> Draft:
    """The draft persona for ``fp`` (measured on ``samples``), called ``name``."""
    archetype = archetype_of(fp)
    modes, gist = _ARCHETYPES[archetype]
    s, r = fp.style, fp.rhetoric
    words = [w["word"] for w in fp.characteristic_words]
    measured = f"measured in {fp.words} words of writing"
    traits = [
        _trait("formality", s["formality"], f"formality {measured}", evolves=True),
        _trait("inquisitiveness", s["inquisitiveness"], f"questions asked, {measured}"),
        _trait("enthusiasm", s["enthusiasm"], f"exclamations, {measured}"),
        _trait("confidence", s["confidence"], f"few hedges, {measured}", evolves=True),
        _trait("lexical_richness", s["lexical_richness"], f"vocabulary variety, {measured}"),
        _trait(
            "verbosity",
            verbosity_of(round(fp.words_per_sample)),
            f"about {fp.words_per_sample:.0f} words a piece, {measured}",
            evolves=True,
        ),
        *_ocean(fp),
    ]
    sl = fp.sentence_length
    length_phrase = (
        "short sentences"
        if sl["median"] <= 12
        else "long sentences"
        if sl["median"] >= 22
        else "medium-length sentences"
    )
    vocabulary = (
        "a learned vocabulary"
        if fp.sophistication["score"] >= 0.55
        else "plain words"
        if fp.sophistication["score"] <= 0.2
        else "an everyday vocabulary"
    )
    about = f" Often writes about {_join(words[:3])}." if len(words) >= 3 else ""
    description = (
        f"{name} {gist}: {length_phrase}, {vocabulary}. Generated from {fp.samples} writing "
        f"sample{'s' if fp.samples != 1 else ''} ({fp.words} words).{about}"
    )
    style = {
        "humour_usage": 0.45 if fp.sentence_types["exclamation"] >= 0.12 else 0.25,
        "emotional_style": (
            "expressive"
            if fp.sentence_types["exclamation"] >= 0.1
            else "warm"
            if r["second_person_per_100_words"] >= 3.0
            else "calm"
        ),
        "language_style": (
            "academic"
            if fp.sophistication["score"] >= 0.55 and s["formality"] >= 0.6
            else "formal"
            if s["formality"] >= 0.65
            else "conversational"
            if s["formality"] < 0.45
            else "plain"
        ),
        "default_mode": modes[0],
        "temperature": round(0.5 + 0.4 * s["lexical_richness"], 2),
        "max_tokens": max(128, min(1024, round(fp.words_per_sample * 1.5 / 32) * 32)),
    }
    system_prompt = (
        f"You are {name}, a voice drawn from their own writing. Write as they do: "
        f"{length_phrase} (typically {sl['median']:.0f} words, from {sl['p10']:.0f} to "
        f"{sl['p90']:.0f}), {vocabulary}"
        + (
            f", questions in about {fp.sentence_types['question']:.0%} of sentences"
            if fp.sentence_types["question"] >= 0.05
            else ""
        )
        + (", speaking to the reader as 'you'" if r["second_person_per_100_words"] >= 3 else "")
        + (", from your own experience" if r["first_person_per_100_words"] >= 4 else "")
        + "."
        + (f" Words you often use: {', '.join(words[:6])}." if words else "")
    )
    definition: dict[str, Any] = {
        "slug": slug or slugify(name),
        "name": name,
        "description": description[:2000],
        "role": f"{archetype} (generated from writing)",
        "system_prompt": system_prompt[:8000],
        "domains": [w.replace("'", "") for w in words[:3]],
        "persona_type": "synthetic",
        "is_real": False,
        "active": False,
        "protected": False,
        "traits": traits,
        "beliefs": _beliefs(samples),
        "modes": [{"mode": m} for m in modes],
        "style": style,
    }
    return Draft(definition, archetype, fp.confidence)


def _trait(
    name: str, value: float, description: str, *, type_: str = "style", evolves: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "value": round(max(0.0, min(1.0, value)), 3),
        "description": description,
        "source": "writing samples",
        "evolves": evolves,
    }


def _ocean(fp: Fingerprint) -> list[dict[str, Any]]:
    s, r = fp.style, fp.rhetoric

    def share(x: float, full: float) -> float:
        return max(0.0, min(1.0, x / full))

    proxy = "a rough proxy from writing style"
    return [
        _trait(
            "openness",
            0.35 + 0.4 * fp.sophistication["score"] + 0.25 * s["lexical_richness"],
            f"{proxy}: vocabulary range and variety",
            type_="ocean",
        ),
        _trait(
            "extraversion",
            0.3
            + 0.35 * s["enthusiasm"]
            + 0.2 * share(r["first_person_per_100_words"], 6)
            + 0.15 * share(r["second_person_per_100_words"], 4),
            f"{proxy}: exclamations and personal address",
            type_="ocean",
        ),
        _trait(
            "agreeableness",
            0.45
            + 0.25 * share(r["second_person_per_100_words"], 4)
            + 0.2 * share(r["hedges_per_100_words"], 2),
            f"{proxy}: addressing the reader and softening claims",
            type_="ocean",
        ),
        _trait(
            "conscientiousness",
            0.4
            + 0.3 * share(r["list_lines_per_100_words"], 2)
            + 0.3 * share(fp.clause_complexity["clauses_per_sentence"] - 1, 2),
            f"{proxy}: structure and sentence complexity",
            type_="ocean",
        ),
    ]


def _beliefs(samples: Sequence[str], limit: int = 3) -> list[dict[str, str]]:
    """Up to ``limit`` declarative sentences that state a conviction, with the sample
    they came from as their source."""
    found: list[dict[str, str]] = []
    for i, sample in enumerate(samples, start=1):
        for sentence in sentences_of(prose_of(sample)):
            end = sentence_end(sentence)
            if end.endswith("?") or not _BELIEF.search(sentence):
                continue
            if not 6 <= len(tokens_of(sentence)) <= 40:
                continue
            text = " ".join(sentence.split())
            if all(b["text"] != text for b in found):
                found.append({"text": text[:2000], "source": f"writing sample {i}"})
            if len(found) >= limit:
                return found
    return found


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
