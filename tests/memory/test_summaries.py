"""Session summaries: which sessions are due (quiet, or ended; never imported lines), the
extractive local summary, one ``summary`` memory per session and persona rewritten in
place, the lease a crashed worker leaves, a superseded statement leaving its session's
summary, and how summaries rank."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory import Candidate, EdgeMemoryIndex, FakeEmbedder, MemoryFilter, ScoringWeights, rank
from memory.consolidation import Consolidator, LocalExtractor
from memory.record.facts import FactStore
from memory.record.summaries import SessionLine, SummaryStore
from memory.record.transcripts import Transcripts
from memory.service import MemoryService
from memory.summaries import (
    LocalSummarizer,
    SessionSummarizer,
    Transcript,
    summary_id,
)
from personas import Actor, PersonaStore
from runtime.cli.memory import ImportLine, import_memories
from tests.memory.helpers import DIM, NOW, record
from tests.personas.factory import definition

QUIET_S = 600.0
DAY = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


def line(seq: int, role: str, text: str, speaker: str = "Ada") -> SessionLine:
    return SessionLine(
        id=uuid.uuid4(),
        seq=seq,
        role=role,
        speaker=speaker if role == "user" else "Albert Einstein",
        text=text,
        status="complete",
        reply_to=None,
        created_at=DAY + dt.timedelta(minutes=seq),
    )


def transcript(*lines: SessionLine, messages: int | None = None) -> Transcript:
    return Transcript(
        session_id=uuid.uuid4(),
        user_name="Ada",
        lines=lines,
        messages=len(lines) if messages is None else messages,
        first_at=lines[0].created_at,
        last_at=lines[-1].created_at,
    )


async def test_the_local_summary_quotes_the_users_statements() -> None:
    said = transcript(
        line(1, "user", "Hello!"),
        line(2, "persona", "Good day! Your dog is surely called Luna."),
        line(3, "user", "My dog is called Pixel."),
        line(4, "persona", "A fine name."),
        line(5, "user", "What is my dog's name?"),
        line(6, "persona", "Pixel."),
        line(7, "user", "ok thanks"),
        line(8, "user", "I moved to Berlin last month."),
        messages=12,
    )
    summary = await LocalSummarizer().summarize(said)
    assert summary is not None and summary.origin == "local"
    assert summary.text == (
        "Conversation with Ada on 7 December 2026 (12 messages). Ada said: My dog is called"
        " Pixel. I moved to Berlin last month. Ada asked: What is my dog's name?"
    )
    # the persona's words are not in it
    assert "Luna" not in summary.text
    # at most four statements, the most informative, in the order they were said
    many = transcript(
        *(line(i, "user", f"I love {thing}.") for i, thing in enumerate(["jazz", "tea"], 1)),
        line(3, "user", "My sister Clara works as a nurse in Hamburg since 2019."),
        line(4, "user", "My dog is called Pixel."),
        line(5, "user", "I live in Berlin with my partner Sam."),
        line(6, "user", "nice"),
    )
    text = LocalSummarizer().summarize_now(many)
    assert text is not None
    assert text.text.count(".") - 1 == 4  # the opening sentence and four statements
    assert "I love jazz." not in text.text or "I love tea." not in text.text
    # over two days
    two_days = transcript(
        line(1, "user", "I live in Lyon."),
        SessionLine(
            uuid.uuid4(),
            2,
            "user",
            "Ada",
            "I love jazz.",
            "complete",
            None,
            DAY + dt.timedelta(days=1),
        ),
    )
    summary = LocalSummarizer().summarize_now(two_days)
    assert summary is not None
    assert summary.text.startswith("Conversation with Ada from 7 December 2026 to 8 December 2026")
    # chit-chat alone is nothing to keep
    assert LocalSummarizer().summarize_now(transcript(line(1, "user", "ok thanks"))) is None


def test_a_summary_ranks_below_the_users_statement_and_a_current_fact() -> None:
    """A summary retells the statements (the local one quotes them): as close to the query
    in both channels, it ranks below them, four points down like a persona's reply."""
    weights = ScoringWeights(recency=0.0, importance=0.0)
    statement = Candidate(
        record("My dog is called Pixel.", metadata={"act": "statement"}), 0.5, 1.0
    )
    fact = Candidate(record("Ada's dog is called Pixel.", kind="fact"), 0.5, 1.0)
    summary = Candidate(
        record(
            "Conversation with Ada on 7 December 2026 (4 messages). Ada said: My dog is"
            " called Pixel.",
            kind="summary",
            speaker_name="",
            speaker_role="system",
        ),
        0.5,
        1.0,
    )
    others = [
        Candidate(record(f"line {i}", metadata={"act": "statement"}), 0.1, 0.0) for i in range(5)
    ]
    ranked = rank([summary, statement, fact, *others], weights, k=8, now=NOW)
    assert [r.record.text for r in ranked[:2]] == [fact.record.text, statement.record.text]
    assert ranked[2].record.kind == "summary"
    assert ranked[1].score.total - ranked[2].score.total == pytest.approx(4.0)


@pytest.fixture
async def world(
    store: PersonaStore, db: AsyncConnectionPool[Any], tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    persona = await store.create(definition(), Actor("t"))
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        facts = FactStore(db)
        memory = MemoryService(index, FakeEmbedder(DIM, seed=7), Transcripts(db), facts=facts)
        summaries = SummaryStore(db)
        yield {
            "persona": persona,
            "memory": memory,
            "transcripts": memory.transcripts,
            "facts": facts,
            "summaries": summaries,
            "consolidator": Consolidator(facts, memory, LocalExtractor(), summaries=summaries),
            "summarizer": SessionSummarizer(
                summaries, memory, LocalSummarizer(), facts=facts, quiet_s=QUIET_S
            ),
        }
    async with db.connection() as conn:
        await conn.execute("DELETE FROM user_facts")


async def tell(w: dict[str, Any], session: Any, text: str) -> Any:
    message, _ = await w["transcripts"].store_user_message(
        session.id, user_id="ada", speaker="Ada", text=text, client_msg_id=uuid.uuid4().hex
    )
    return message


async def age(db: AsyncConnectionPool[Any], session: Any, minutes: float = 60) -> None:
    """The session's messages as if said ``minutes`` ago (it went quiet)."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE messages SET created_at = created_at - make_interval(mins => %s)"
            " WHERE session_id = %s",
            (minutes, session.id),
        )


async def summaries_of(w: dict[str, Any]) -> list[Any]:
    page = await w["memory"].list(
        MemoryFilter(str(w["persona"].id), kinds=frozenset({"summary"})), limit=50
    )
    return list(page.records)


async def test_a_quiet_session_is_summarised_a_busy_one_not_an_ended_one_at_once(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    quiet = await w["transcripts"].create_session("ada", [pid])
    busy = await w["transcripts"].create_session("ada", [pid])
    ended = await w["transcripts"].create_session("ada", [pid])
    for session, text in (
        (quiet, "My dog is called Pixel."),
        (busy, "I live in Lyon."),
        (ended, "I love jazz."),
    ):
        await tell(w, session, text)
    await w["transcripts"].append_persona_message(
        quiet.id, persona_id=pid, speaker="Albert Einstein", text="Your dog is Luna.", reply_to=None
    )
    await age(db, quiet)
    await w["summaries"].end(ended.id)

    done = await w["summarizer"].drain()
    assert (done.sessions, done.written, done.empty) == (2, 2, 0)
    assert await w["summaries"].get(busy.id) is None

    row = await w["summaries"].get(quiet.id)
    assert row is not None and row.origin == "local" and row.messages == 2
    assert row.summary.startswith("Conversation with Ada on ")
    assert row.summary.endswith("(2 messages). Ada said: My dog is called Pixel.")
    assert row.through_seq == 2 and row.claimed_at is None and row.due_at is None

    memory = await w["memory"].get(summary_id(quiet.id, pid), persona_id=str(pid))
    assert memory.kind == "summary" and memory.text == row.summary
    assert memory.session_id == str(quiet.id) and memory.user_id == "ada"
    assert memory.created_at == row.through_at
    assert memory.metadata["origin"] == "local" and memory.metadata["through"] == 2
    assert memory.metadata["session_id"] == str(quiet.id)
    ended_row = await w["summaries"].get(ended.id)
    assert ended_row is not None and "I love jazz." in ended_row.summary

    # once the busy one goes quiet, it is summarised too
    await age(db, busy)
    assert (await w["summarizer"].drain()).sessions == 1
    assert len(await summaries_of(w)) == 3


async def test_imported_lines_and_sessions_of_questions_get_no_summary_memory(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    lines = [
        ImportLine(text="My dog is called Pixel.", speaker="Ada", session="s1", timestamp=NOW),
        ImportLine(text="A fine name.", role="persona", session="s1", timestamp=NOW),
    ]
    stored = await import_memories(
        w["memory"], persona_id=str(pid), persona_name="Albert Einstein", user="ada", lines=lines
    )
    assert stored == 2
    asked = await w["transcripts"].create_session("ada", [pid])
    await tell(w, asked, "What is my dog's name?")
    await tell(w, asked, "Where do I live?")
    greeted = await w["transcripts"].create_session("ada", [pid])  # a greeting, no word said
    await w["transcripts"].append_persona_message(
        greeted.id, persona_id=pid, speaker="Albert Einstein", text="Hello!", reply_to=None
    )
    await age(db, asked)
    await age(db, greeted)
    await w["summaries"].end(greeted.id)

    done = await w["summarizer"].drain()
    assert (done.sessions, done.written, done.empty) == (1, 0, 1)
    assert await summaries_of(w) == []
    row = await w["summaries"].get(asked.id)
    assert row is not None and row.summary == "" and row.origin is None and row.through_seq == 2
    assert await w["summaries"].get(greeted.id) is None
    # nothing more to do: the questions were read, the import is not a session
    assert (await w["summarizer"].drain()).sessions == 0


async def test_summarising_again_changes_nothing_and_new_messages_rewrite_it_in_place(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    await tell(w, session, "My dog is called Pixel.")
    await age(db, session)
    assert (await w["summarizer"].drain()).written == 1
    first = await w["summaries"].get(session.id)
    assert first is not None

    assert (await w["summarizer"].drain()).sessions == 0  # nothing new
    await w["summaries"].end(session.id)  # ended with nothing new: nothing to do either
    assert (await w["summarizer"].drain()).sessions == 0
    assert await w["summaries"].get(session.id) == first

    await tell(w, session, "I moved to Berlin.")
    assert (await w["summarizer"].drain()).sessions == 0  # not quiet yet
    await w["summaries"].end(session.id)
    assert (await w["summarizer"].drain()).written == 1
    found = await summaries_of(w)
    assert [m.id for m in found] == [summary_id(session.id, pid)]
    assert found[0].text.endswith("Ada said: My dog is called Pixel. I moved to Berlin.")
    assert found[0].metadata["through"] == 2


async def test_a_claim_held_by_a_crashed_worker_is_taken_again_after_its_lease(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    await tell(w, session, "My dog is called Pixel.")
    await w["summaries"].end(session.id)

    claimed = await w["summaries"].claim(10, quiet_s=QUIET_S)  # a worker claims ... and dies
    assert [c.session_id for c in claimed] == [session.id]
    assert (await w["summarizer"].drain()).sessions == 0  # held while the lease runs
    assert await summaries_of(w) == []

    restarted = SessionSummarizer(
        SummaryStore(db),
        w["memory"],
        LocalSummarizer(),
        facts=w["facts"],
        quiet_s=QUIET_S,
        lease_s=0.0,
    )
    done = await restarted.drain()
    assert (done.sessions, done.written) == (1, 1)
    row = await w["summaries"].get(session.id)
    assert row is not None and row.attempts == 2 and "Pixel" in row.summary


async def test_a_superseded_statement_leaves_its_sessions_summary(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    first = await w["transcripts"].create_session("ada", [pid])
    await tell(w, first, "I live in Lyon.")
    await tell(w, first, "My dog is called Pixel.")
    await w["consolidator"].drain()
    await age(db, first)
    await w["summarizer"].drain()
    before = await w["memory"].get(summary_id(first.id, pid), persona_id=str(pid))
    assert "I live in Lyon." in before.text

    later = await w["transcripts"].create_session("ada", [pid])
    await tell(w, later, "I moved to Berlin.")
    done = await w["consolidator"].drain()
    assert done.superseded == 1
    row = await w["summaries"].get(first.id)
    assert row is not None and row.due_at is not None  # asked again

    assert (await w["summarizer"].drain()).sessions == 1  # the first; the later one is busy
    after = await w["memory"].get(summary_id(first.id, pid), persona_id=str(pid))
    assert "Lyon" not in after.text
    assert after.text.endswith("Ada said: My dog is called Pixel.")
    assert after.metadata["messages"] == 2  # the session still holds both lines


class Unreachable:
    """A writer whose model never answers."""

    calls = 0

    async def summarize(self, transcript: Transcript) -> Any:
        self.calls += 1
        raise TimeoutError("the model did not answer")


async def test_a_writer_that_keeps_failing_gives_way_to_the_local_summary(
    world: dict[str, Any], db: AsyncConnectionPool[Any]
) -> None:
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    await tell(w, session, "My dog is called Pixel.")
    await w["summaries"].end(session.id)
    writer = Unreachable()
    summarizer = SessionSummarizer(
        w["summaries"], w["memory"], writer, facts=w["facts"], quiet_s=QUIET_S, lease_s=0.0
    )
    for attempt in (1, 2):
        done = await summarizer.run_once()  # failed: logged, taken again after the lease
        assert (done.sessions, done.failed) == (0, 1), attempt
        row = await w["summaries"].get(session.id)
        assert row is not None and row.summary == "" and row.attempts == attempt
    done = await summarizer.run_once()
    assert (done.sessions, done.written) == (1, 1) and writer.calls == 3
    row = await w["summaries"].get(session.id)
    assert row is not None and row.origin == "local" and "Pixel" in row.summary
