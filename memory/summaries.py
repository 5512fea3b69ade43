"""Session summaries: what a conversation was about, written in the background once the
session goes quiet or ends.

A :class:`SessionSummarizer` claims due sessions (``memory.record.summaries``: quiet for
``quiet_s`` since their last message, or ended), reads each one's transcript, leaves out
the user's statements whose facts were all superseded since (and the persona's replies
to them), asks a :class:`Summarizer` for the summary and writes it twice: in
``session_summaries`` and, for each persona of the session, as a ``summary`` memory whose
id is derived from the session and the persona (:func:`summary_id`), so writing again
replaces it. A session in which the user stated nothing (only questions, greetings,
thanks) gets no summary memory.

:class:`LocalSummarizer`, the embedded default, writes no prose: the embedded 135M model
invents and repeats what it is shown, so it is not asked. It is extractive: when and how
long the conversation was, then up to four of the user's own statements, the most
informative first by :func:`memory.vector.importance.heuristic_importance`, in the order
they were said, then up to two of the user's questions. A language model
(``agents.summarizer``) writes prose when ``PERSONAE_MEMORY_LLM`` names one."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from memory.acts import act_of
from memory.record.facts import FactStore
from memory.record.summaries import (
    ClaimedSession,
    SessionLine,
    SummaryOrigin,
    SummaryStore,
)
from memory.service import MemoryService, NewMemory
from memory.types import JSONValue
from memory.vector.importance import heuristic_importance

log = logging.getLogger(__name__)

_SUMMARIES = uuid.UUID("0b7f3c1e-52a4-4d8e-9c6b-2e1a7f5d3b90")


def summary_id(session_id: uuid.UUID, persona_id: uuid.UUID) -> uuid.UUID:
    """The id of a session's summary memory for one persona: the same on every rewrite."""
    return uuid.uuid5(_SUMMARIES, f"{session_id}\x1f{persona_id}")


@dataclass(frozen=True, slots=True)
class Transcript:
    """A session as a summarizer reads it: its newest lines, oldest first, without the
    statements superseded since and the replies to them."""

    session_id: uuid.UUID
    user_name: str
    lines: tuple[SessionLine, ...]
    messages: int
    """How many messages the session holds (``lines`` may be fewer)."""
    first_at: dt.datetime
    last_at: dt.datetime

    def user_lines(self) -> list[SessionLine]:
        return [line for line in self.lines if line.role == "user"]

    def statements(self) -> list[SessionLine]:
        """The user's lines that tell something (not questions)."""
        return [line for line in self.user_lines() if act_of(line.text, "user") == "statement"]

    def questions(self) -> list[SessionLine]:
        return [line for line in self.user_lines() if act_of(line.text, "user") == "question"]


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    origin: SummaryOrigin


class Summarizer(Protocol):
    """Writes a session's summary; ``None`` when there is nothing worth keeping."""

    async def summarize(self, transcript: Transcript) -> Summary | None: ...


# ---- the local summarizer ---------------------------------------------------------

MAX_STATEMENTS = 4
MAX_QUESTIONS = 2
_MAX_LINE = 200


def day(value: dt.datetime) -> str:
    """``7 December 2026`` (UTC)."""
    utc = value.astimezone(dt.UTC)
    return f"{utc.day} {utc:%B %Y}"


def when(first: dt.datetime, last: dt.datetime) -> str:
    """``on 7 December 2026``, or ``from 6 December 2026 to 7 December 2026``."""
    start, end = day(first), day(last)
    return f"on {end}" if start == end else f"from {start} to {end}"


def _quoted(text: str) -> str:
    """A line as the summary quotes it: one line, at most ~200 characters, ending with a
    full stop (or its own ? or !)."""
    line = " ".join(text.split())
    if len(line) > _MAX_LINE:
        line = line[:_MAX_LINE].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return line if line[-1] in ".!?…" else line + "."


class LocalSummarizer:
    """An extractive summary of the user's own words (see the module): no language
    model, so nothing in it was not said."""

    async def summarize(self, transcript: Transcript) -> Summary | None:
        return self.summarize_now(transcript)

    def summarize_now(self, transcript: Transcript) -> Summary | None:
        rated = [
            (heuristic_importance(line.text, speaker_role="user"), line)
            for line in transcript.statements()
        ]
        # chit-chat ("ok thanks", "hello") rates 0.05 to 0.1: nothing to keep
        informative = [(score, line) for score, line in rated if score > 0.1]
        if not informative:
            return None
        best = sorted(informative, key=lambda pair: (-pair[0], pair[1].seq))[:MAX_STATEMENTS]
        chosen = sorted((line for _, line in best), key=lambda line: line.seq)
        user = transcript.user_name
        count = transcript.messages
        span = when(transcript.first_at, transcript.last_at)
        parts = [
            f"Conversation with {user} {span} ({count} message{'' if count == 1 else 's'}).",
            f"{user} said: " + " ".join(_quoted(line.text) for line in chosen),
        ]
        asked: list[str] = []
        for line in reversed(transcript.questions()):
            quoted = _quoted(line.text)
            if quoted not in asked:
                asked.insert(0, quoted)
            if len(asked) == MAX_QUESTIONS:
                break
        if asked:
            parts.append(f"{user} asked: " + " ".join(asked))
        return Summary(" ".join(parts), "local")


# ---- the background worker --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summarized:
    """What one batch did: sessions summarised, summary memories written, sessions left
    without one (nothing to say), sessions that failed (taken again after their lease),
    CPU time."""

    sessions: int
    written: int
    empty: int
    failed: int
    cpu_ms: float

    def __add__(self, other: Summarized) -> Summarized:
        return Summarized(
            self.sessions + other.sessions,
            self.written + other.written,
            self.empty + other.empty,
            self.failed + other.failed,
            self.cpu_ms + other.cpu_ms,
        )


_NOTHING = Summarized(0, 0, 0, 0, 0.0)


class SessionSummarizer:
    """Summarises sessions that went quiet or ended (see the module)."""

    def __init__(
        self,
        store: SummaryStore,
        memory: MemoryService,
        writer: Summarizer,
        *,
        facts: FactStore | None = None,
        quiet_s: float = 900.0,
        batch: int = 16,
        lease_s: float = 300.0,
        max_lines: int = 200,
        max_attempts: int = 3,
    ) -> None:
        self.store = store
        self.memory = memory
        self.writer = writer
        self.facts = facts
        self.quiet_s = quiet_s
        self.batch = batch
        self.lease_s = lease_s
        self.max_lines = max_lines
        self.max_attempts = max_attempts
        """After this many failed attempts at a session (the model unreachable), the
        local summary is written instead."""
        self.fallback = LocalSummarizer()
        self.totals = _NOTHING

    async def run_once(self) -> Summarized:
        """Claim one batch of due sessions and summarise each. A session that fails is
        logged; its claim runs out and it is taken again."""
        cpu0 = time.process_time()
        claimed = await self.store.claim(self.batch, quiet_s=self.quiet_s, lease_s=self.lease_s)
        if not claimed:
            return _NOTHING
        written = empty = failed = 0
        for session in claimed:
            try:
                memories = await self.summarize(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged; the claim runs out and it is taken again
                log.warning(
                    "summary of session %s failed: %s: %s",
                    session.session_id,
                    type(exc).__name__,
                    exc,
                    exc_info=exc,
                )
                failed += 1
                continue
            written += memories
            empty += memories == 0
        done = Summarized(
            len(claimed) - failed, written, empty, failed, (time.process_time() - cpu0) * 1000
        )
        self.totals = self.totals + done
        return done

    async def transcript(self, session: ClaimedSession) -> tuple[Transcript, int]:
        """The session as the summarizer reads it, and the seq of its last message."""
        read = await self.store.lines(session.session_id, self.max_lines)
        users = [line for line in read.lines if line.role == "user"]
        stale: set[uuid.UUID] = set()
        if self.facts is not None and users:
            stale = await self.facts.stale_sources(session.user_id, [u.id for u in users])
        kept = tuple(
            line
            for line in read.lines
            if line.status != "failed" and line.id not in stale and line.reply_to not in stale
        )
        last = read.lines[-1] if read.lines else None
        now = dt.datetime.now(dt.UTC)
        transcript = Transcript(
            session_id=session.session_id,
            user_name=users[-1].speaker if users else session.user_id,
            lines=kept,
            messages=read.messages,
            first_at=read.first_at or now,
            last_at=last.created_at if last is not None else now,
        )
        return transcript, last.seq if last is not None else 0

    async def summarize(self, session: ClaimedSession) -> int:
        """Summarise one claimed session; returns how many summary memories were written
        (0: nothing to say, and any earlier summary memory removed)."""
        transcript, through = await self.transcript(session)
        summary = await self._summary(transcript, session.attempts)
        ids = [summary_id(session.session_id, p) for p in session.persona_ids]
        if summary is None:
            for persona_id, memory_id in zip(session.persona_ids, ids, strict=True):
                await self.memory.index.delete([memory_id], persona_id=str(persona_id))
        else:
            metadata: dict[str, JSONValue] = {
                "session_id": str(session.session_id),
                "origin": summary.origin,
                "through": through,
                "messages": transcript.messages,
                "first_at": transcript.first_at.astimezone(dt.UTC).isoformat(),
                "last_at": transcript.last_at.astimezone(dt.UTC).isoformat(),
            }
            await self.memory.remember(
                [
                    NewMemory(
                        persona_id=str(persona_id),
                        user_id=session.user_id,
                        session_id=str(session.session_id),
                        speaker_name="",
                        speaker_role="system",
                        text=summary.text,
                        kind="summary",
                        created_at=transcript.last_at,
                        metadata=dict(metadata),
                        id=memory_id,
                    )
                    for persona_id, memory_id in zip(session.persona_ids, ids, strict=True)
                ],
                purpose="memory",  # background work: not one of a turn's own texts
            )
        await self.store.write(
            session.session_id,
            summary=summary.text if summary is not None else "",
            through_seq=through,
            through_at=transcript.last_at,
            messages=transcript.messages,
            origin=summary.origin if summary is not None else None,
            read_at=session.claimed_at,
        )
        return 0 if summary is None else len(ids)

    async def _summary(self, transcript: Transcript, attempts: int) -> Summary | None:
        if not transcript.statements():
            return None  # only questions (or nothing): nothing to keep
        try:
            return await self.writer.summarize(transcript)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(self.writer, LocalSummarizer) or attempts < self.max_attempts:
                raise
            log.warning(
                "summary of session %s failed %d times (%s: %s): the local summary instead",
                transcript.session_id,
                attempts,
                type(exc).__name__,
                exc,
            )
            return self.fallback.summarize_now(transcript)

    async def drain(self, *, max_batches: int | None = None) -> Summarized:
        """Run batches until nothing is due or summarised (or ``max_batches``); the sums."""
        total = _NOTHING
        runs = 0
        while max_batches is None or runs < max_batches:
            done = await self.run_once()
            runs += 1
            if done.sessions == 0:
                break
            total = total + done
        return total

    async def run_forever(self, *, idle_s: float = 30.0) -> None:
        """The background task: summarise what is due, sleep while nothing is, repeat."""
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged (the database away); tried again later
                log.warning("summary batch failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
                done = _NOTHING
            await asyncio.sleep(idle_s if done.sessions == 0 else 0)


__all__ = [
    "LocalSummarizer",
    "SessionSummarizer",
    "Summarized",
    "Summarizer",
    "Summary",
    "Transcript",
    "day",
    "summary_id",
    "when",
]
