"""Prompt composition: a persona's stored traits, beliefs, mode and style, what it
remembers and the recent transcript, turned into chat messages within a token budget.

The model's profile decides the shape. A capable model gets the full card (every trait,
belief and style rule) with the memories in the system message. A small local model gets
a short card (who the persona is, how it speaks, two or three beliefs), the two things
the user told it before that matter most, said plainly as an earlier turn that it
acknowledged in its own words ("My cat is called Miso." - "I will remember that, Sam:
Your cat is called Miso."), and the last few lines the others said. Either way the
system message starts with what is fixed for the persona, so a local model reuses its
evaluation across sessions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agents.answers import Expected, expected_answer
from agents.decoding import CAPABLE, ModelProfile
from agents.facts_prompt import KnownFact, known_facts_text
from agents.guards import Speakers, UserFacts
from personas import Persona, Trait
from personas.channels import channel_text
from personas.types import Channel

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
    role: str = "user"
    """Who said it: ``user``, ``persona`` (this or another persona) or ``system``."""


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
    handles: Sequence[str] = ()
    """The other participants' ``@`` handles (slugs)."""
    channel: Channel | None = None
    """The channel overlay the reply is written for (length, tone, structure)."""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    card_sections: Sequence[str] = ()
    """An imported character card's scenario, lore and examples (``personas.cards``)."""
    card_closing: Sequence[str] = ()
    """The card's post-history instructions: the system text's last words."""
    replies: Sequence[Line] = ()
    """What the other personas already answered to ``user_text`` in this turn (a room):
    shown after it, as the others' lines."""
    facts: Sequence[KnownFact] = ()
    """What is known about the user, most relevant first (``agents.facts_prompt``)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: tuple[BaseMessage, ...]
    stop: tuple[str, ...]
    estimated_tokens: int
    dropped_lines: int
    dropped_memories: int
    speakers: Speakers = field(default_factory=lambda: Speakers.of(""))
    """Whose labels end the reply (the guard's), and the persona's own."""
    card: str = "full"
    profile: str = CAPABLE.name
    facts: UserFacts = field(default_factory=UserFacts)
    """What the user told about themselves, which the reply must not claim."""
    replies: tuple[str, ...] = ()
    """The others' replies of this turn, which the reply must not copy."""
    expected: Expected | None = None
    """On the small model: the user's fact that the user's question asks for, which the
    reply must name (``agents.answers``)."""

    def render(self) -> str:
        """The prompt as a person reads it (``personae prompt``)."""
        parts = [f"--- {self.card} card for the {self.profile} model profile ---"]
        for m in self.messages:
            parts.append(f"--- {m.type} ---\n{m.content}")
        return "\n".join(parts)


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters a token for English; errs high)."""
    return len(text) // 4 + 1


def compose(
    data: PromptInput, *, budget_tokens: int = 1536, profile: ModelProfile = CAPABLE
) -> Prompt:
    """Chat messages for one turn. When over the budget (``budget_tokens``, or the
    profile's own when smaller), the oldest transcript lines go first, then the least
    relevant memories; the persona itself always stays."""
    persona = data.persona
    short = profile.card == "short"
    expected: Expected | None = None
    if profile.prompt_tokens is not None:
        budget_tokens = min(budget_tokens, profile.prompt_tokens)
    system = _short_card(data) if short else _system_text(data)
    known = known_facts_text(data.user_name, data.facts, limit=profile.memories)
    if known and not short:
        system = f"{system}\n\n{known}"
    memories = sorted(_usable(data.memories, short), key=lambda m: m.score, reverse=True)
    if profile.memories is not None:
        memories = memories[: profile.memories]
    lines = [ln for ln in data.transcript if profile.own_lines or not ln.own]
    if profile.transcript_lines is not None:
        lines = lines[len(lines) - min(len(lines), profile.transcript_lines) :]
    said = (
        _quoted(data.speaker, data.user_text, data.user_name)
        if short
        else _said(data.speaker or data.user_name, data.user_text, data.others)
    )
    fixed = (
        estimate_tokens(system)
        + estimate_tokens(said)
        + 8
        + (estimate_tokens(known) if short else 0)
        + sum(estimate_tokens(ln.text) + 6 for ln in data.replies)
    )
    dropped_lines = len(data.transcript) - len(lines)
    dropped_memories = len(data.memories) - len(memories)

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

    if short:
        # what is known about the user follows the card in a message of its own, so the
        # card stays the same prefix for every user and turn. Current facts are said in
        # the same plain sentences as what the user told (their dates and a list format
        # draw a 135M model away from the answer); with history, the dated list is shown.
        # Only facts the search found for this line are shown: the most recent ones
        # otherwise would crowd out the memories that answer it.
        history = any(f.until is not None for f in data.facts)
        current = [] if history else [f.text for f in data.facts if f.until is None and f.found]
        if data.speaker in (None, data.user_name):
            expected = expected_answer(data.user_text, data.user_name, data.facts)
        if expected is not None and not history:
            # the fact asked for is shown, found by the search or not, as the most
            # relevant (said last)
            current = [expected.fact, *(f for f in current if f != expected.fact)]
        told = memories
        if profile.memories is not None:
            current = current[: profile.memories]
            told = memories[: max(profile.memories - len(current), 0)]
        about = [SystemMessage(content=known)] if history and known else []
        messages: list[BaseMessage] = [
            SystemMessage(content=system),
            *about,
            *_told(told, data, current),
        ]
        user = HumanMessage(content=said)
    else:
        messages = [SystemMessage(content=system + _memories_text(memories, data.now))]
        user = HumanMessage(content=said)
    for ln in lines:
        if ln.own:
            messages.append(AIMessage(content=ln.text))
        else:
            text = (
                _quoted(ln.speaker, ln.text, data.user_name)
                if short and data.others
                else _said(ln.speaker, ln.text, data.others)
            )
            messages.append(HumanMessage(content=text))
    messages.append(user)
    for ln in data.replies:
        reply = (
            _quoted(ln.speaker, ln.text, data.user_name) if short else f"{ln.speaker}: {ln.text}"
        )
        messages.append(HumanMessage(content=reply))
    stop = tuple(f"\n{name}:" for name in (*data.others, data.user_name)) + (f"\n{persona.name}:",)
    return Prompt(
        messages=tuple(messages),
        stop=stop,
        estimated_tokens=total(),
        dropped_lines=dropped_lines,
        dropped_memories=dropped_memories,
        speakers=Speakers.of(persona.name, (*data.others, data.user_name), data.handles),
        card=profile.card,
        profile=profile.name,
        facts=_facts(data, memories),
        replies=tuple(ln.text for ln in data.replies),
        expected=expected,
    )


def _facts(data: PromptInput, memories: Sequence[Recollection]) -> UserFacts:
    """What the reply must not claim: what the user told before, and what they tell now
    about themselves (a statement in the first person, not a question)."""
    if data.speaker not in (None, data.user_name):
        return UserFacts()
    text = data.user_text.strip()
    lines = [m.text.strip() for m in memories if m.role == "user"] + [text]
    told = [line for line in lines if _about_themselves(line)]
    # the user's current facts, without the user's name (which a reply may well say)
    name = re.compile(rf"\b{re.escape(data.user_name)}(?:'s)?\b", re.IGNORECASE)
    told += [name.sub("", f.text) for f in data.facts if f.until is None]
    return UserFacts.of(text, told)


_THEMSELVES = re.compile(r"\b(?:i|i'm|i've|my|me|mine|our)\b", re.IGNORECASE)


def _about_themselves(line: str) -> bool:
    """A statement the user made about themselves ("My cat is called Miso."), not a
    question ("What should I read?")."""
    return bool(line) and "?" not in line and _THEMSELVES.search(line) is not None


def _usable(memories: Sequence[Recollection], short: bool) -> list[Recollection]:
    """A small model is shown what the user told it about themselves: not its own
    earlier replies (which it would take for facts and repeat), nor the user's questions
    (which it would take for facts about the user)."""
    return [m for m in memories if not short or (m.role == "user" and _about_themselves(m.text))]


def _told(
    memories: Sequence[Recollection], data: PromptInput, facts: Sequence[str] = ()
) -> list[BaseMessage]:
    """What the user told the persona before, as facts about the user in a system message
    of their own after the fixed card (so the card stays a reusable prefix), said in the
    third person ("Sam's cat is called Miso."): never as a turn the persona did not say,
    and never in the first person a small model would take for its own. ``facts`` (the
    user's current facts, most relevant first) come last, the most relevant next to the
    question, after the memories (least relevant first)."""
    user = data.user_name
    sentences = [
        _about(m.text.strip(), user)
        for m in sorted(memories, key=lambda m: m.score)
        if m.text.strip()
    ]
    sentences += [f"{fact.strip().rstrip('.')}." for fact in reversed(facts) if fact.strip()]
    if not sentences:
        return []
    # measured on the embedded model: an added rule ("answer with 'your'") made it
    # answer fewer of these questions, not more
    told = " ".join(sentences)
    return [SystemMessage(content=f"What you know about {user}, from what {user} told you: {told}")]


# the user's own words about themselves, told about them ("My cat" -> "Sam's cat")
_PRONOUNS = {
    "my": "{u}'s",
    "mine": "{u}'s",
    "me": "{u}",
    "myself": "{u}",
    "our": "{u}'s",
    "ours": "{u}'s",
    "us": "{u}",
    "i'm": "{u} is",
    "i've": "{u} has",
    "i'll": "{u} will",
    "i'd": "{u} would",
}
_AS_IS = frozenset(
    [
        "was",
        "will",
        "would",
        "can",
        "could",
        "should",
        "might",
        "must",
        "did",
        "had",
        "never",
        "also",
        "still",
        "just",
        "really",
        "always",
        "often",
        "usually",
        "once",
        "used",
        "got",
        "grew",
        "went",
        "met",
        "saw",
        "made",
        "took",
        "came",
        "left",
        "lost",
        "found",
        "bought",
        "began",
        "wrote",
        "ran",
        "became",
        "knew",
        "told",
        "said",
        "felt",
        "fell",
        "thought",
        "kept",
        "sold",
        "spent",
        "won",
        "broke",
        "chose",
        "drove",
        "flew",
        "gave",
        "heard",
        "hurt",
        "rode",
        "sang",
        "sat",
        "slept",
        "spoke",
        "stood",
        "swam",
        "taught",
        "understood",
        "woke",
        "wore",
    ]
)
_VERBS = {
    "am": "is",
    "have": "has",
    "do": "does",
    "go": "goes",
    "don't": "doesn't",
    "haven't": "hasn't",
    "were": "was",
}
_SUBJECT = re.compile(
    r"\b(?:I|we)\b(\s+)([A-Za-z']+)|\b(my|mine|me|myself|our|ours|us|i'm|i've|i'll|i'd)\b",
    re.IGNORECASE,
)


def _about(text: str, user: str) -> str:
    """First person turned into third, about ``user``: what the user said, told about
    them ("I live in Lisbon." -> "Sam lives in Lisbon.")."""

    def swap(m: re.Match[str]) -> str:
        if m.group(3):
            return _PRONOUNS[m.group(3).lower()].format(u=user)
        verb = m.group(2)
        low = verb.lower()
        if low in _VERBS:
            said = _VERBS[low]
        elif low in _AS_IS or low.endswith(("ed", "ly")) or not low.isalpha():
            said = verb
        elif low.endswith(("s", "sh", "ch", "x", "z", "o")):
            said = verb + "es"
        elif low.endswith("y") and low[-2:-1] not in "aeiou":
            said = verb[:-1] + "ies"
        else:
            said = verb + "s"
        return f"{user}{m.group(1)}{said}"

    out = _SUBJECT.sub(swap, text)
    return out[:1].upper() + out[1:]


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]).rstrip(",;:-") + "..."


def _short_card(data: PromptInput) -> str:
    """Who the persona is, how it speaks and what it believes, in a few lines."""
    p = data.persona
    role = p.role.strip()
    out = [f"You are {p.name}" + (f", {role[0].lower()}{role[1:]}" if role else "") + "."]
    described = _sentences(p.description)
    if described:
        out.append(_clip(described[0], 30))
    guidance = [s for s in _sentences(p.system_prompt) if not s.lower().startswith("you are")]
    if guidance:
        out.append(_clip(guidance[0], 30))
    out.append(_speech(p))
    beliefs = [_clip(_sentences(b.text)[0], 25) for b in p.beliefs[:3] if b.text.strip()]
    if beliefs:
        out.append("You believe:\n" + "\n".join(f"- {b}" for b in beliefs))
    if data.reinforcement:
        out.append("Stay in character: " + " ".join(data.reinforcement[:2]))
    # a character card's scenario, examples and triggered lore, kept short
    out.extend(_clip(section, 60) for section in data.card_sections if section.strip())
    if data.channel is not None:
        out.append(channel_text(data.channel))
    # what varies per user and room comes last: the persona's part is a shared prefix
    if data.others:
        out.append(
            f"You are in a group chat with {data.user_name} and {', '.join(data.others)}. "
            f"Speak only as {p.name}; never write what the others say. "
            "Give your own answer: never repeat what the others said."
        )
    out.append(
        f"You are talking with {data.user_name}. Call them {data.user_name}. "
        "Reply in two to four sentences."
    )
    out.extend(data.card_closing)
    return "\n".join(out)


def _speech(p: Persona) -> str:
    s = p.style
    humour = (
        ""
        if s.humour_usage < 0.4
        else ", with a touch of humour"
        if s.humour_usage < 0.7
        else ", with plenty of humour"
    )
    return f"You speak in a {s.emotional_style}, {s.language_style} way{humour}."


def _quoted(speaker: str | None, text: str, user: str) -> str:
    """A line for a small model: the user's own plainly; another's as what they said
    ('Marie Curie said: "..."'), never as a ``Name:`` label, which the model takes up and
    goes on writing that speaker's line (measured: every try of a room reply began
    "Sam:" or with the other persona's label)."""
    if speaker in (None, user):
        return text
    return f'{speaker} said: "{text}"'


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
    if data.channel is not None:
        out.append(channel_text(data.channel))
    core = [t for t in p.traits if t.inherited]
    if core:
        out.append(
            "Always: "
            + "; ".join(f"{t.description or t.name}" for t in core if t.value >= 0.5)
            + "."
        )
    if data.reinforcement:
        out.append("Stay in character:\n" + "\n".join(f"- {r}" for r in data.reinforcement))
    out.append(f"You are talking with {data.user_name}; address them as {data.user_name}.")
    if data.others:
        out.append(
            f"This is a group conversation with {data.user_name} and "
            f"{', '.join(data.others)}. Messages are prefixed with the speaker's name. "
            f"Speak only as {p.name}, without a name prefix, and never write lines for anyone "
            "else. Give your own answer: never repeat what the others said."
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
        f"- ({', '.join(_memory_label(m, now))}) {m.text}"
        for m in sorted(memories, key=lambda m: m.created_at)
    ]
    return "\n\nWhat you remember from earlier conversations:\n" + "\n".join(lines)


def _memory_label(m: Recollection, now: dt.datetime) -> list[str]:
    """When, who (a session summary has no speaker) and, unless a line, what it is."""
    return [
        part
        for part in (_ago(m.created_at, now), m.speaker, "" if m.kind == "turn" else m.kind)
        if part
    ]


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
