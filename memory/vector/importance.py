"""How worth remembering a text is, 0..1: a cheap deterministic heuristic by default.

Signals: length, proper names (capitalised words not starting a sentence), numbers and
dates, and first-person statements of facts or preferences ("my name is", "I love",
"remember that"). Chit-chat ("ok thanks!") scores low. An LLM rater can replace it
behind :class:`memory.types.ImportanceRater`.
"""

from __future__ import annotations

import re

from memory.types import MemoryKind, SpeakerRole

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NUMBER = re.compile(r"\b\d[\d.,:/-]*\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+|\n)\s*[\"'(]*([^\W\d_][\w'’-]*)")
_SELF_DISCLOSURE = re.compile(
    r"\b(?:my (?:name|birthday|wife|husband|partner|son|daughter|kid|kids|mother|mom|father|"
    r"dad|brother|sister|friend|dog|cat|job|favou?rite|goal|address|email|phone)\b"
    r"|i(?:'m| am) (?:a|an|from|allergic|married|vegan|vegetarian|\d)"
    r"|i (?:love|hate|like|dislike|prefer|live|work|was born|have|had|need|want|studied|grew up)\b"
    r"|call me\b|remember\b|don'?t forget\b|never forget\b|important\b|promise\b)",
    re.IGNORECASE,
)
_SMALL_TALK = frozenset(
    [
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "you",
        "ok",
        "okay",
        "cool",
        "nice",
        "lol",
        "haha",
        "yes",
        "no",
        "yeah",
        "yep",
        "nope",
        "sure",
        "bye",
        "good",
        "great",
        "fine",
        "morning",
        "evening",
        "night",
        "see",
        "ya",
    ]
)
_KIND_FLOOR: dict[MemoryKind, float] = {
    "turn": 0.0,
    "fact": 0.5,
    "summary": 0.4,
    "reflection": 0.45,
}


def heuristic_importance(
    text: str, *, kind: MemoryKind = "turn", speaker_role: SpeakerRole = "user"
) -> float:
    """Deterministic importance in 0..1 (see the module docstring for the signals)."""
    words = _WORD.findall(text)
    if not words:
        return 0.0
    if all(w.casefold() in _SMALL_TALK for w in words):
        return 0.05
    starts = {m.start(1) for m in _SENTENCE_START.finditer(text)}
    names = {
        m.group()
        for m in _WORD.finditer(text)
        if m.group()[0].isupper() and m.start() not in starts and m.group() != "I"
    }
    numbers = _NUMBER.findall(text)
    score = 0.1
    score += 0.2 * min(len(words) / 30.0, 1.0)
    score += min(0.08 * len(names), 0.24)
    score += min(0.06 * len(numbers), 0.12)
    if _SELF_DISCLOSURE.search(text):
        score += 0.3 if speaker_role == "user" else 0.15
    if speaker_role == "system":
        score += 0.1
    return round(min(max(score, _KIND_FLOOR[kind]), 1.0), 4)


class HeuristicImportance:
    """The default :class:`memory.types.ImportanceRater`."""

    async def rate(
        self, text: str, *, kind: MemoryKind = "turn", speaker_role: SpeakerRole = "user"
    ) -> float:
        return heuristic_importance(text, kind=kind, speaker_role=speaker_role)
