"""Consolidation: the user's messages turned into facts about the user, in the background.

The statement that stores a user message also queues it (``fact_queue``). A
:class:`Consolidator` claims queued messages in batches, asks an :class:`Extractor` for
the facts each states, records them (``FactStore.record``: a fact on a subject that
already has a current one supersedes it) and writes each current fact to the vector
index as a ``fact`` memory (its id is the fact's), removing the superseded ones' there.
Recording is idempotent (a message consolidated twice yields one fact per subject) and a
claim is a lease, so work a crashed process held is taken again.

:class:`LocalExtractor` needs no language model: it reads the user's own first-person
declaratives ("My dog is called Pixel", "I moved to Berlin", "I work as a nurse",
"I love jazz") and says them in the third person ("Ada's dog is called Pixel"), with a
subject key from the pattern that matched. Relative dates in the message ("last month",
"yesterday") are resolved against the message's own time with ``dateparser`` and give
the fact its ``valid_from``."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from memory.acts import is_question
from memory.record.facts import Fact, FactStore, PendingMessage
from memory.record.summaries import SummaryStore
from memory.service import MemoryService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Said:
    """A user message as an extractor reads it."""

    text: str
    user_name: str
    said_at: dt.datetime
    message_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class ExtractedFact:
    """A fact an extractor found: its subject key, its text in the third person and
    when it became true."""

    subject: str
    text: str
    valid_from: dt.datetime


class Extractor(Protocol):
    """Finds the facts about the user in their messages (one list per message)."""

    async def extract(self, messages: Sequence[Said]) -> list[list[ExtractedFact]]: ...


# ---- the local extractor ----------------------------------------------------------

_LEAD = re.compile(
    r"^(?:(?:no|nope|yes|yeah|well|oh|so|also|and|but|actually|by the way|btw|anyway|"
    r"just so you know|fyi|guess what|news|update|ok|okay|hi|hey|hello)\b[,!:\s-]*)+",
    re.IGNORECASE,
)
_HEADLINE = re.compile(r"^(?:\w+\s+){0,2}\w+\s*[:!-]\s+(?=\S)")
"""A short lead-in ending in a colon ("Big news: I moved to Oslo")."""
_NOW = re.compile(
    r"\b(?:now|these days|currently|nowadays|anymore|any more)\b[,]?\s*", re.IGNORECASE
)
_DATEISH = re.compile(
    r"\b(?:yesterday|today|tonight|tomorrow|ago|last|next|this (?:week|month|year|morning|"
    r"evening|weekend)|since|in (?:a|an|one|two|three|four|five|six|\d+) (?:day|week|month|"
    r"year)s?|on (?:mon|tues|wednes|thurs|fri|satur|sun)day|in (?:january|february|march|"
    r"april|may|june|july|august|september|october|november|december|\d{4}))\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?;])\s+")
_VALUE_END = re.compile(
    r"\s*(?:,\s*(?:and|but|so|because|which)\b.*|\s+(?:because|but)\b.*)$", re.IGNORECASE
)
_PRONOUN_OBJECT = {"it", "that", "this", "them", "him", "her", "there", "so"}


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    subject: Callable[[re.Match[str]], str]
    text: Callable[[re.Match[str], str], str]


def _value(m: re.Match[str], group: str = "value") -> str:
    return m.group(group).strip()


def _noun(text: str) -> str:
    return " ".join(text.lower().replace("'s name", "").replace("’", "'").split())


_I = r"i(?:'ve| have)?(?: just| recently| finally)?"
_RULES: tuple[_Rule, ...] = (
    # where the user lives
    _Rule(
        re.compile(
            rf"^(?:{_I} (?:moved|relocated)|i(?:'m| am) (?:moving|relocating))"
            r" (?:to|into) (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "home",
        lambda m, u: f"{u} lives in {_value(m)}",
    ),
    _Rule(
        re.compile(
            r"^(?:i (?:live|stay)|i(?:'m| am) (?:living|staying|based)) in (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "home",
        lambda m, u: f"{u} lives in {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i(?:'m| am) from (?P<value>.+)$", re.IGNORECASE),
        lambda m: "origin",
        lambda m, u: f"{u} is from {_value(m)}",
    ),
    # work
    _Rule(
        re.compile(
            rf"^(?:i (?:work|worked)|i(?:'m| am) (?:working|employed)|{_I} (?:got|started|"
            r"taken|took) (?:a )?(?:new )?job) as (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "job",
        lambda m, u: f"{u} works as {_value(m)}",
    ),
    _Rule(
        re.compile(
            rf"^(?:i (?:work|worked)|i(?:'m| am) working|{_I} (?:got|started) (?:a )?(?:new )?"
            r"job) (?:at|for) (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "employer",
        lambda m, u: f"{u} works at {_value(m)}",
    ),
    _Rule(
        re.compile(
            r"^i(?:'m| am) (?:a|an) (?P<value>(?:\w+ ){0,2}(?:nurse|teacher|doctor|engineer|"
            r"developer|programmer|designer|lawyer|chef|cook|student|writer|artist|"
            r"accountant|architect|pilot|farmer|scientist|musician|journalist|manager|"
            r"baker|carpenter|electrician|plumber|pharmacist|dentist|vet|veterinarian|"
            r"librarian|photographer|translator|consultant|researcher|firefighter|"
            r"police officer|mechanic|paramedic|barista|waiter|waitress|cashier|"
            r"surgeon|therapist|psychologist|professor|lecturer|analyst|editor))$",
            re.IGNORECASE,
        ),
        lambda m: "job",
        lambda m, u: f"{u} works as a {_value(m)}",
    ),
    # pets, named
    _Rule(
        re.compile(
            r"^(?:i (?:have|got|adopted)|i've got|we (?:have|got|adopted))"
            r" (?:a|an|one|another)? ?(?:new )?(?P<thing>(?:\w+ )?\w+?)"
            r" (?:called|named) (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: _noun(m.group("thing")),
        lambda m, u: f"{u}'s {_noun(m.group('thing'))} is called {_value(m)}",
    ),
    _Rule(
        re.compile(
            r"^(?:i|we) (?:renamed|re-named) (?:my|our) (?P<thing>[\w ]+?) (?:to )?(?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: _noun(m.group("thing")),
        lambda m, u: f"{u}'s {_noun(m.group('thing'))} is called {_value(m)}",
    ),
    # names
    _Rule(
        re.compile(
            r"^(?:call me|i go by|i(?:'ve| have)? changed my name to|please call me)"
            r" (?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "name",
        lambda m, u: f"{u}'s name is {_value(m)}",
    ),
    # relationships
    _Rule(
        re.compile(
            r"^i(?:'m| am) (?:now )?(?P<rel>married|engaged|dating|seeing|going out with)"
            r" (?:to |with )?(?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: "partner",
        lambda m, u: (
            f"{u} is {m.group('rel').lower()}"
            + (" to " if m.group("rel").lower() in ("married", "engaged") else " ")
            + _value(m)
        ),
    ),
    _Rule(
        re.compile(r"^i(?:'ve| have)? (?:broke|broken) up with (?P<value>.+)$", re.IGNORECASE),
        lambda m: "partner",
        lambda m, u: f"{u} broke up with {_value(m)} and is single",
    ),
    _Rule(
        re.compile(r"^i(?:'m| am) (?:now )?(?P<value>single|divorced|widowed)$", re.IGNORECASE),
        lambda m: "partner",
        lambda m, u: f"{u} is {_value(m)}",
    ),
    # age
    _Rule(
        re.compile(
            r"^i(?:'m| am| just turned| turned) (?P<value>\d{1,3})(?: years old)?$", re.IGNORECASE
        ),
        lambda m: "age",
        lambda m, u: f"{u} is {_value(m)} years old",
    ),
    # preferences
    _Rule(
        re.compile(
            r"^i (?:no longer|don't|do not|dont) (?:like|love|enjoy) (?P<value>.+?)"
            r"(?: (?:anymore|any more))?$",
            re.IGNORECASE,
        ),
        lambda m: "likes:" + _noun(_value(m)),
        lambda m, u: f"{u} no longer likes {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i (?:hate|dislike|can't stand|cannot stand) (?P<value>.+)$", re.IGNORECASE),
        lambda m: "likes:" + _noun(_value(m)),
        lambda m, u: f"{u} dislikes {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i (?:really )?(?P<verb>love|like|enjoy|adore) (?P<value>.+)$", re.IGNORECASE),
        lambda m: "likes:" + _noun(_value(m)),
        lambda m, u: f"{u} {m.group('verb').lower()}s {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i(?:'m| am) allergic to (?P<value>.+)$", re.IGNORECASE),
        lambda m: "allergy:" + _noun(_value(m)),
        lambda m, u: f"{u} is allergic to {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i (?:drive|ride) (?:a|an) (?P<value>.+)$", re.IGNORECASE),
        lambda m: "vehicle",
        lambda m, u: f"{u} drives a {_value(m)}",
    ),
    _Rule(
        re.compile(r"^i(?:'m| am)? (?:study|studying) (?P<value>.+)$", re.IGNORECASE),
        lambda m: "studies",
        lambda m, u: f"{u} studies {_value(m)}",
    ),
    # "my X is (called) Y", "my X's name is Y", "my favourite X is Y"
    _Rule(
        re.compile(
            r"^my (?P<thing>(?:new |current )?[\w' -]{1,40}?)(?:'s name| name)?"
            r" (?:is|are|'s|was changed to|is now|are now) (?:now )?(?:called |named )?"
            r"(?P<value>.+)$",
            re.IGNORECASE,
        ),
        lambda m: _noun(re.sub(r"^(?:new|current) ", "", m.group("thing"), flags=re.IGNORECASE)),
        lambda m, u: _possessive(m, u),
    ),
)


def _possessive(m: re.Match[str], user: str) -> str:
    thing = _noun(re.sub(r"^(?:new|current) ", "", m.group("thing"), flags=re.IGNORECASE))
    whole = m.group(0)
    named = re.search(r"(?:'s name| name)\s+(?:is|are)", whole, re.IGNORECASE) or re.search(
        r"\b(?:called|named)\b", whole, re.IGNORECASE
    )
    verb = (
        "are"
        if re.search(r"\bare\b", whole[m.end("thing") : m.start("value")], re.IGNORECASE)
        else "is"
    )
    if thing == "name":
        return f"{user}'s name is {_value(m)}"
    if named:
        return f"{user}'s {thing} is called {_value(m)}"
    return f"{user}'s {thing} {verb} {_value(m)}"


def _clean_value(text: str) -> str:
    text = _VALUE_END.sub("", text).strip().rstrip(".!;,")
    head, comma, rest = text.partition(",")
    if comma and len(rest.split()) >= 3:
        # a clause of its own after the value ("Boulder, Atlas never suited him"), not a
        # qualifier of it ("Porto, Portugal")
        text = head
    return " ".join(text.split())


def _resolve_date(sentence: str, said_at: dt.datetime) -> tuple[str, dt.datetime]:
    """The sentence without its relative date phrase, and when it says the fact became
    true (the message's time when it names none)."""
    if not _DATEISH.search(sentence):
        return sentence, said_at
    from dateparser.search import search_dates  # imported on first use: it loads slowly

    base = said_at.astimezone(dt.UTC).replace(tzinfo=None)
    found = search_dates(
        sentence,
        languages=["en"],
        settings={
            "RELATIVE_BASE": base,
            "PREFER_DATES_FROM": "past",
            "RETURN_AS_TIMEZONE_AWARE": False,
        },
    )
    if not found:
        return sentence, said_at
    phrase, when = found[0]
    rest = re.sub(
        r"\s*(?:,\s*)?(?:since |from |as of |starting )?" + re.escape(phrase) + r"\s*,?",
        " ",
        sentence,
        count=1,
    )
    valid = when.replace(tzinfo=dt.UTC)
    return " ".join(rest.split()), min(valid, said_at)


class LocalExtractor:
    """Facts from the user's own first-person declaratives, by rule (see the module)."""

    async def extract(self, messages: Sequence[Said]) -> list[list[ExtractedFact]]:
        return [self.extract_one(m) for m in messages]

    def extract_one(self, said: Said) -> list[ExtractedFact]:
        found: dict[str, ExtractedFact] = {}
        for sentence in _SENTENCES.split(" ".join(said.text.split())):
            sentence = sentence.strip()
            if not sentence or is_question(sentence):
                continue
            for clause in re.split(
                r",\s*(?:and|but)\s+|\s+and\s+(?=i\b|my\b)|[,:]\s+(?=(?:i|i'm|i've|my)\b)",
                sentence,
                flags=re.IGNORECASE,
            ):
                fact = self._clause(clause, said)
                if fact is not None:
                    found[fact.subject] = fact  # the last word on a subject stands
        return list(found.values())

    def _clause(self, clause: str, said: Said) -> ExtractedFact | None:
        clause = _LEAD.sub("", _HEADLINE.sub("", clause.strip())).strip().rstrip(".!;")
        clause, valid_from = _resolve_date(clause, said.said_at)
        clause = _NOW.sub("", clause).strip().rstrip(",.!; ")
        if not clause:
            return None
        for rule in _RULES:
            m = rule.pattern.match(clause)
            if m is None:
                continue
            value = _clean_value(m.group("value"))
            if not value or value.lower() in _PRONOUN_OBJECT or len(value.split()) > 8:
                return None
            m = rule.pattern.match(clause.replace(m.group("value"), value, 1)) or m
            subject = rule.subject(m).strip()
            text = rule.text(m, said.user_name).strip()
            if not subject or len(subject) > 60:
                return None
            return ExtractedFact(subject, text[:1].upper() + text[1:] + ".", valid_from)
        return None


# ---- the consolidator -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consolidated:
    """What one batch did."""

    messages: int
    facts: int
    superseded: int
    cpu_ms: float

    def __add__(self, other: Consolidated) -> Consolidated:
        return Consolidated(
            self.messages + other.messages,
            self.facts + other.facts,
            self.superseded + other.superseded,
            self.cpu_ms + other.cpu_ms,
        )


class Consolidator:
    """Drains the consolidation queue: facts recorded, current ones in the vector index."""

    def __init__(
        self,
        facts: FactStore,
        memory: MemoryService,
        extractor: Extractor,
        *,
        batch: int = 64,
        lease_s: float = 300.0,
        summaries: SummaryStore | None = None,
    ) -> None:
        self.facts = facts
        self.summaries = summaries
        """Session summaries, asked again when a statement they quote is superseded."""
        self.memory = memory
        self.extractor = extractor
        self.batch = batch
        self.lease_s = lease_s
        self.totals = Consolidated(0, 0, 0, 0.0)
        """What this process consolidated so far (messages, facts, superseded, CPU)."""

    async def run_once(self) -> Consolidated:
        """Claim one batch, consolidate it, mark it done."""
        cpu0 = time.process_time()
        pending = await self.facts.claim(self.batch, lease_s=self.lease_s)
        if not pending:
            return Consolidated(0, 0, 0, 0.0)
        found = await self.extractor.extract(
            [Said(p.text, p.speaker, p.created_at, p.id) for p in pending]
        )
        facts = superseded = 0
        for message, extracted in zip(pending, found, strict=True):
            for persona_id in message.persona_ids:
                for item in extracted:
                    added, replaced = await self.record(message, persona_id, item)
                    facts += added
                    superseded += replaced
        await self.facts.done([p.id for p in pending])
        done = Consolidated(len(pending), facts, superseded, (time.process_time() - cpu0) * 1000)
        self.totals = self.totals + done
        return done

    async def record(
        self, message: PendingMessage, persona_id: uuid.UUID, item: ExtractedFact
    ) -> tuple[int, int]:
        recorded = await self.facts.record(
            persona_id=persona_id,
            user_id=message.user_id,
            subject=item.subject,
            text=item.text,
            valid_from=item.valid_from,
            source_ids=(message.id,),
        )
        if recorded.fact is None:
            return 0, 0
        await self.index_fact(recorded.fact, message.speaker, session_id=str(message.session_id))
        await self.unindex(recorded.superseded)
        return 1, len(recorded.superseded)

    async def index_fact(self, fact: Fact, user_name: str, *, session_id: str | None) -> None:
        """Write a current fact to the vector index as a ``fact`` memory (id = the fact's)."""
        await self.memory.index_fact(fact, user_name, session_id=session_id)

    async def unindex(self, facts: Sequence[Fact]) -> None:
        """Remove no-longer-current facts from the vector index (they stay as history),
        and set aside the statements they came from when those state nothing else
        still true, and the replies to them (their memories have the message's id); the
        summaries of those statements' sessions are due again, to be written without
        them."""
        if not facts:
            return
        persona_id = facts[0].persona_id
        await self.memory.index.delete([f.id for f in facts], persona_id=str(persona_id))
        sources = {s for f in facts for s in f.source_ids}
        stale = sources - await self.facts.still_true(persona_id, list(sources))
        if self.summaries is not None:
            # the summaries of their sessions are written again without them
            await self.summaries.requeue(list(stale))
        # the persona's replies to those statements said them back ("Lyon is lovely!")
        await self.memory.mark_superseded(persona_id, list(stale), True)

    async def drain(self, *, max_batches: int | None = None) -> Consolidated:
        """Run batches until the queue is empty (or ``max_batches``); the sums."""
        total = Consolidated(0, 0, 0, 0.0)
        runs = 0
        while max_batches is None or runs < max_batches:
            done = await self.run_once()
            runs += 1
            if done.messages == 0:
                break
            total = total + done
        return total

    async def run_forever(self, *, idle_s: float = 1.0) -> None:
        """The background task: drain, sleep once the queue is drained, repeat. A batch
        short of ``batch`` took all there was, so the next waits ``idle_s``: under load,
        messages gather into full batches (two statements for up to ``batch`` messages)
        instead of a claim per turn. A failed batch is logged; its claim runs out and it
        is taken again."""
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged; the claimed work returns after its lease
                log.warning(
                    "consolidation batch failed: %s: %s", type(exc).__name__, exc, exc_info=exc
                )
                done = Consolidated(0, 0, 0, 0.0)
            if done.messages < self.batch:
                await asyncio.sleep(idle_s)
            else:
                await asyncio.sleep(0)


__all__ = [
    "Consolidated",
    "Consolidator",
    "ExtractedFact",
    "Extractor",
    "LocalExtractor",
    "Said",
]
