""" "What you know about <user>": the user's facts as a prompt shows them.

Current facts come first, each with the date it became true, the most relevant to the
line being answered first. Facts that stopped being true are shown only when the line
asks about the past ("Where did I live before?"), marked with when they stopped, so the
model never takes them for current."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownFact:
    """A fact as the prompt shows it."""

    text: str
    since: dt.datetime
    until: dt.datetime | None = None
    """When it stopped being true; ``None`` while it is current."""
    found: bool = True
    """Whether the search found it for the line being answered (a small model is shown
    only those, and the one a question about the user asks for: ``agents.answers``)."""
    subject: str = ""
    """What it is about ("dog", "home", "likes:jazz"; ``memory.record.facts.Fact``)."""


_PAST = re.compile(
    r"\b(?:used to|before|previous(?:ly)?|formerly|former|old|earlier|originally|"
    r"at first|first|did i|was i|were|was my|had i|back then|anymore|any more|ex)\b",
    re.IGNORECASE,
)


def asks_about_past(text: str) -> bool:
    """Whether the line asks what was true before (then superseded facts are shown)."""
    return bool(_PAST.search(text))


def _date(when: dt.datetime) -> str:
    return f"{when.day} {when.strftime('%B %Y')}"


def known_facts_text(
    user_name: str, facts: Sequence[KnownFact], *, limit: int | None = None
) -> str:
    """The prompt's section on the user, or ``""`` when nothing is known. Current facts
    first (in the order given, up to ``limit``), then the superseded ones given."""
    current = [f for f in facts if f.until is None]
    past = [f for f in facts if f.until is not None]
    if limit is not None:
        current = current[:limit]
        past = past[: max(limit - len(current), 1)] if past else []
    if not current and not past:
        return ""
    lines = [f"What you know about {user_name} (true now):"]
    lines += [f"- {f.text.rstrip('.')} (since {_date(f.since)})." for f in current]
    if past:
        lines.append(f"No longer true about {user_name} (history only):")
        lines += [
            f"- {f.text.rstrip('.')} (from {_date(f.since)} until {_date(f.until)})."
            for f in past
            if f.until is not None
        ]
    return "\n".join(lines)


__all__ = ["KnownFact", "asks_about_past", "known_facts_text"]
