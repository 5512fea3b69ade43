"""Channel overlays: one persona, several platforms.

A channel says how long a reply should be, in what tone and with what structure
(paragraphs, lists, hashtags, emoji, a call to action). Four are built in (``chat``,
``linkedin``, ``facebook``, ``blog``); a persona may change them or add its own, stored
with it and versioned with it. :func:`channel_lines` is what a prompt says about the
channel; :func:`check_reply` measures whether a reply met the overlay's constraints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from types import MappingProxyType
from typing import Any

from personas.types import Channel, Persona

BUILTIN: Mapping[str, Channel] = MappingProxyType(
    {
        "chat": Channel(
            "chat",
            min_words=3,
            max_words=150,
            tone="conversational",
            hashtags=False,
            instructions="Answer the person directly, as in a conversation.",
        ),
        "linkedin": Channel(
            "linkedin",
            min_words=120,
            max_words=300,
            tone="professional and warm",
            paragraphs=True,
            hashtags=True,
            call_to_action=True,
            instructions="Open with a strong first line; end with a question or an invitation.",
        ),
        "facebook": Channel(
            "facebook",
            min_words=40,
            max_words=150,
            tone="friendly and personal",
            emoji=True,
            call_to_action=True,
            instructions="Write as to friends and followers; invite replies.",
        ),
        "blog": Channel(
            "blog",
            min_words=300,
            max_words=900,
            tone="engaging and informative",
            paragraphs=True,
            lists=True,
            hashtags=False,
            emoji=False,
            instructions="Give the post a clear arc: an opening, developed points, a close.",
        ),
    }
)
DEFAULT_CHANNEL = "chat"
STRUCTURES: tuple[str, ...] = ("paragraphs", "lists", "hashtags", "emoji", "call_to_action")

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S", re.MULTILINE)
_HASHTAG = re.compile(r"(?<![\w#])#[^\W\d_][\w]*")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_CTA = re.compile(
    r"\b(let me know|tell me|share|comment|follow|subscribe|join|sign up|read more|click|"
    r"reach out|get in touch|what do you think|try it|try this|contact|learn more|"
    r"check out|visit|register|download|reply|drop a|send me)\b",
    re.IGNORECASE,
)


def effective_channels(persona: Persona) -> dict[str, Channel]:
    """The built-in channels with the persona's own overlays over them, by name."""
    channels = dict(BUILTIN)
    for own in persona.channels:
        channels[own.name] = own
    return channels


def channel_of(persona: Persona, name: str | None) -> Channel | None:
    """The persona's overlay called ``name`` (None: no channel asked for, or unknown)."""
    if name is None:
        return None
    return effective_channels(persona).get(name)


def channel_lines(channel: Channel) -> list[str]:
    """What a prompt says about writing for ``channel``: plain instructions."""
    lines = [f"You are writing for {channel.name}."]
    if channel.min_words is not None and channel.max_words is not None:
        lines.append(f"Length: {channel.min_words} to {channel.max_words} words.")
    elif channel.max_words is not None:
        lines.append(f"Length: at most {channel.max_words} words.")
    elif channel.min_words is not None:
        lines.append(f"Length: at least {channel.min_words} words.")
    if channel.tone:
        lines.append(f"Tone: {channel.tone}.")
    wanted = {
        "paragraphs": ("Use several short paragraphs.", "Write one block, no paragraph breaks."),
        "lists": ("Include a bulleted list.", "Do not use lists."),
        "hashtags": ("End with two or three relevant hashtags.", "Do not use hashtags."),
        "emoji": ("Use an emoji or two.", "Do not use emoji."),
        "call_to_action": (
            "Close with a call to action (a question or an invitation).",
            "Do not ask the reader to do anything.",
        ),
    }
    for name, (yes, no) in wanted.items():
        flag = getattr(channel, name)
        if flag is not None:
            lines.append(yes if flag else no)
    if channel.instructions:
        lines.append(channel.instructions)
    return lines


def channel_text(channel: Channel) -> str:
    """The prompt's channel section as one block."""
    return "Channel:\n" + "\n".join(f"- {line}" for line in channel_lines(channel))


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    """Whether a reply met its channel's measurable constraints: length in range and
    each required structure present (each forbidden one absent)."""

    channel: str
    words: int
    compliant: bool
    checks: Mapping[str, bool]
    found: Mapping[str, bool]

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "words": self.words,
            "compliant": self.compliant,
            "checks": dict(self.checks),
            "found": dict(self.found),
        }


def structure_of(text: str) -> dict[str, bool]:
    """Which structures a text has: paragraphs, lists, hashtags, emoji, a call to action."""
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if _WORD.search(p)]
    sentences = [s for s in _SENTENCE.split(text.strip()) if _WORD.search(s)]
    tail = " ".join(sentences[-2:])
    return {
        "paragraphs": len(paragraphs) >= 2,
        "lists": len(_LIST_ITEM.findall(text)) >= 2,
        "hashtags": bool(_HASHTAG.search(text)),
        "emoji": bool(_EMOJI.search(text)),
        "call_to_action": bool(_CTA.search(tail)) or tail.rstrip().endswith("?"),
    }


def check_reply(text: str, channel: Channel) -> ChannelCheck:
    """Measure ``text`` against ``channel``'s constraints."""
    words = len(_WORD.findall(_HASHTAG.sub(" ", text)))
    found = structure_of(text)
    checks: dict[str, bool] = {}
    if channel.min_words is not None or channel.max_words is not None:
        low = channel.min_words or 0
        high = channel.max_words if channel.max_words is not None else 1 << 30
        checks["length"] = low <= words <= high
    for name in STRUCTURES:
        flag = getattr(channel, name)
        if flag is not None:
            checks[name] = found[name] == flag
    return ChannelCheck(
        channel=channel.name,
        words=words,
        compliant=all(checks.values()),
        checks=MappingProxyType(checks),
        found=MappingProxyType(found),
    )


def channel_view(channel: Channel, *, builtin: bool, overridden: bool) -> dict[str, Any]:
    return {**asdict(channel), "builtin": builtin, "overridden": overridden}


def with_channel(channels: tuple[Channel, ...], channel: Channel) -> tuple[Channel, ...]:
    """``channels`` with ``channel`` added or replacing the one of its name."""
    kept = tuple(c for c in channels if c.name != channel.name)
    return (*kept, replace(channel))
