"""Prompt composition: a persona's stored traits, beliefs, mode and style, what it
remembers and the recent transcript, turned into chat messages within a token budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from personas import Persona, Trait

# (low, high) phrases for the Big Five, so intensities read as behaviour, not numbers
_OCEAN = {
    "openness": (
        "prefer the familiar and practical over the novel",
        "are open to new ideas, imaginative and curious",
    ),
    "conscientiousness": (
        "are spontaneous and loose about structure",
        "are organised, careful and thorough",
    ),
    "extraversion": (
        "are reserved and measured in conversation",
        "are outgoing, energetic and talkative",
    ),
    "agreeableness": (
        "are challenging and unafraid to disagree",
        "are warm, cooperative and considerate",
    ),
    "neuroticism": (
        "are calm and emotionally steady",
        "are sensitive and quick to feel worry or frustration",
    ),
}
_MODES = {
    "educator": "teach: explain step by step, use examples and check understanding",
    "critic": "critique: find weaknesses precisely and say how to fix them",
    "mentor": "mentor: draw on experience, ask about goals and give guidance",
    "debater": "debate: take a clear position, argue it and answer objections",
    "companion": "keep company: listen, respond with warmth and remember what matters",
    "storyteller": "tell stories: vivid, concrete and paced",
    "coach": "coach: set small concrete steps and hold the person to them",
    "analyst": "analyse: break the problem down, weigh evidence, state conclusions",
}


def intensity_word(value: float) -> str:
    """A trait intensity in words: what the prompt says instead of a number."""
    if value < 0.15:
        return "hardly at all"
    if value < 0.35:
        return "a little"
    if value < 0.65:
        return "moderately"
    if value < 0.85:
        return "strongly"
    return "extremely"


@dataclass(frozen=True, slots=True)
class Recollection:
    """A retrieved memory as the prompt shows it."""

    text: str
    speaker: str
    created_at: dt.datetime
    kind: str = "turn"
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Line:
    """One transcript line: who said it and whether it was this persona."""

    speaker: str
    text: str
    own: bool


@dataclass(frozen=True, slots=True)
class PromptInput:
    persona: Persona
    user_name: str
    user_text: str
    memories: Sequence[Recollection] = ()
    transcript: Sequence[Line] = ()
    others: Sequence[str] = ()
    mode: str | None = None
    reinforcement: Sequence[str] = ()
    speaker: str | None = None
    """Who said ``user_text`` when it was not the user (personas talking among themselves)."""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    card_sections: Sequence[str] = ()
    """An imported character card's scenario, lore and examples (``personas.cards``)."""
    card_closing: Sequence[str] = ()
    """The card's post-history instructions: the system text's last words."""


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: tuple[BaseMessage, ...]
    stop: tuple[str, ...]
    estimated_tokens: int
    dropped_lines: int
    dropped_memories: int

    def render(self) -> str:
        """The prompt as a person reads it (``personae prompt``)."""
        parts = []
        for m in self.messages:
            parts.append(f"--- {m.type} ---\n{m.content}")
        return "\n".join(parts)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters a token for English; errs high)."""
    return len(text) // 4 + 1


def compose(data: PromptInput, *, budget_tokens: int = 1536) -> Prompt:
    """Chat messages for one turn. When over ``budget_tokens``, the oldest transcript
    lines go first, then the least relevant memories; the persona itself always stays."""
    persona = data.persona
    system = _system_text(data)
    memories = sorted(data.memories, key=lambda m: m.score, reverse=True)
    lines = list(data.transcript)
    user = HumanMessage(content=_said(data.speaker or data.user_name, data.user_text, data.others))
    fixed = estimate_tokens(system) + estimate_tokens(str(user.content)) + 8
    dropped_lines = dropped_memories = 0

    def total() -> int:
        return (
            fixed
            + sum(estimate_tokens(m.text) + 12 for m in memories)
            + sum(estimate_tokens(ln.text) + 6 for ln in lines)
        )

    while total() > budget_tokens and lines:
        lines.pop(0)
        dropped_lines += 1
    while total() > budget_tokens and memories:
        memories.pop()
        dropped_memories += 1

    system_full = system + _memories_text(memories, data.now)
    messages: list[BaseMessage] = [SystemMessage(content=system_full)]
    for ln in lines:
        if ln.own:
            messages.append(AIMessage(content=ln.text))
        else:
            messages.append(HumanMessage(content=_said(ln.speaker, ln.text, data.others)))
    messages.append(user)
    stop = tuple(f"\n{name}:" for name in (*data.others, data.user_name)) + (f"\n{persona.name}:",)
    return Prompt(
        messages=tuple(messages),
        stop=stop,
        estimated_tokens=total(),
        dropped_lines=dropped_lines,
        dropped_memories=dropped_memories,
    )


def _said(speaker: str, text: str, others: Sequence[str]) -> str:
    # with several speakers the model must know who said what; alone, plain text reads best
    return f"{speaker}: {text}" if others else text


def _system_text(data: PromptInput) -> str:
    p = data.persona
    out = [p.system_prompt.strip() or f"You are {p.name}, {p.role or 'a conversational persona'}."]
    if p.description:
        out.append(p.description.strip())
    out.extend(data.card_sections)
    if p.is_real:
        out.append(
            f"You speak as {p.name}, drawing on their recorded work and views; say so "
            "plainly if asked about events after their lifetime or things they never addressed."
        )
    own = [t for t in p.traits if not t.inherited]
    if own:
        out.append("Your personality:\n" + "\n".join(f"- {_trait_line(t)}" for t in own))
    if p.beliefs:
        out.append(
            "Your convictions:\n"
            + "\n".join(f"- {b.text}" + (f" ({b.source})" if b.source else "") for b in p.beliefs)
        )
    mode = data.mode or p.style.default_mode
    if mode and mode in p.enabled_modes:
        out.append(f"Current mode: {_MODES.get(mode, mode)}.")
    out.append(_style_text(p))
    core = [t for t in p.traits if t.inherited]
    if core:
        out.append(
            "Always: "
            + "; ".join(f"{t.description or t.name}" for t in core if t.value >= 0.5)
            + "."
        )
    if data.reinforcement:
        out.append("Stay in character:\n" + "\n".join(f"- {r}" for r in data.reinforcement))
    if data.others:
        out.append(
            f"This is a group conversation with {data.user_name} and "
            f"{', '.join(data.others)}. Messages are prefixed with the speaker's name. "
            f"Speak only as {p.name}, without a name prefix, and never write lines for anyone else."
        )
    out.extend(data.card_closing)
    return "\n\n".join(out)


def _trait_line(t: Trait) -> str:
    if t.type == "ocean" and t.name in _OCEAN:
        low, high = _OCEAN[t.name]
        if t.value >= 0.65:
            return f"You {high}" + (" to an extreme." if t.value >= 0.85 else ".")
        if t.value <= 0.35:
            return f"You {low}" + (" to an extreme." if t.value < 0.15 else ".")
        return f"You are balanced between those who {low} and those who {high}."
    name = t.name.replace("_", " ")
    detail = f": {t.description}" if t.description else ""
    return f"{name.capitalize()} — {intensity_word(t.value)}{detail}."


def _style_text(p: Persona) -> str:
    s = p.style
    humour = (
        "Avoid jokes."
        if s.humour_usage < 0.15
        else "Use humour sparingly."
        if s.humour_usage < 0.4
        else "Use humour now and then."
        if s.humour_usage < 0.7
        else "Use humour freely."
    )
    length = (
        "Keep replies short."
        if s.max_tokens <= 256
        else "Keep replies focused; expand only when asked."
    )
    return (
        f"Style: {s.emotional_style} emotionally, {s.language_style} in language. {humour} {length}"
    )


def _memories_text(memories: Sequence[Recollection], now: dt.datetime) -> str:
    if not memories:
        return ""
    lines = [
        f"- ({_ago(m.created_at, now)}, {m.speaker}{'' if m.kind == 'turn' else ', ' + m.kind}) {m.text}"
        for m in sorted(memories, key=lambda m: m.created_at)
    ]
    return "\n\nWhat you remember from earlier conversations:\n" + "\n".join(lines)


def _ago(when: dt.datetime, now: dt.datetime) -> str:
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 90:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes ago"
    if seconds < 86_400:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours > 1 else ''} ago"
    days = int(seconds // 86_400)
    if days < 60:
        return f"{days} day{'s' if days > 1 else ''} ago"
    return when.strftime("%Y-%m-%d")
