"""Facts about the user: extraction by rule, supersession with history, the durable
consolidation queue (a crash between the turn and consolidation loses nothing), and how
facts, questions, corrected replies and superseded statements rank."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory import (
    Candidate,
    EdgeMemoryIndex,
    FakeEmbedder,
    MemoryQuery,
    ScoringWeights,
    rank,
)
from memory.acts import act_of, is_correction, is_question
from memory.consolidation import Consolidator, LocalExtractor, Said
from memory.record.facts import FactStore
from memory.record.summaries import SummaryStore
from memory.record.transcripts import Transcripts
from memory.service import MemoryService, NewMemory
from personas import Actor, PersonaStore
from tests.memory.helpers import DIM, NOW, record
from tests.personas.factory import definition

WHEN = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def facts_of(text: str) -> dict[str, str]:
    return {f.subject: f.text for f in LocalExtractor().extract_one(Said(text, "Ada", WHEN))}


def test_the_local_extractor_turns_first_person_statements_into_third_person_facts() -> None:
    assert facts_of("My dog is called Pixel.") == {"dog": "Ada's dog is called Pixel."}
    assert facts_of("I live in Lyon.") == {"home": "Ada lives in Lyon."}
    assert facts_of("I work as a nurse") == {"job": "Ada works as a nurse."}
    assert facts_of("I love jazz!") == {"likes:jazz": "Ada loves jazz."}
    assert facts_of("I have a cat named Miso and I live in Paris.") == {
        "cat": "Ada's cat is called Miso.",
        "home": "Ada lives in Paris.",
    }
    # the same subject whatever the wording, so that a change supersedes
    assert facts_of("I renamed my dog Biscuit") == {"dog": "Ada's dog is called Biscuit."}
    assert facts_of("My dog's name is now Rex") == {"dog": "Ada's dog is called Rex."}
    assert facts_of("Actually I moved to Berlin.") == {"home": "Ada lives in Berlin."}
    # a lead-in and a comma splice
    assert facts_of("Big news: I relocated to Oslo.") == {"home": "Ada lives in Oslo."}
    assert facts_of("We changed his name, my rabbit is called Pepper now.") == {
        "rabbit": "Ada's rabbit is called Pepper."
    }
    # a clause after the value is not part of it; a place's qualifier is
    assert facts_of("We renamed my tortoise Boulder, Atlas never suited him.") == {
        "tortoise": "Ada's tortoise is called Boulder."
    }
    assert facts_of("I live in Porto, Portugal.") == {"home": "Ada lives in Porto, Portugal."}
    # questions, chatter and pronouns are no facts
    for text in ("What is my dog's name?", "ok thanks", "I love it!", "Do I live in Lyon"):
        assert facts_of(text) == {}, text


def test_relative_dates_are_resolved_against_the_message_time() -> None:
    (fact,) = LocalExtractor().extract_one(Said("I moved to Berlin last month.", "Ada", WHEN))
    assert fact.text == "Ada lives in Berlin."
    assert fact.valid_from.date() == dt.date(2026, 2, 10)
    (fact,) = LocalExtractor().extract_one(
        Said("I got a new job as a pilot yesterday", "Ada", WHEN)
    )
    assert fact.text == "Ada works as a pilot."
    assert fact.valid_from.date() == dt.date(2026, 3, 9)


def test_acts() -> None:
    assert is_question("What is my dog's name?")
    assert is_question("where do I live")
    assert is_question("Thanks. Do you remember my cat")
    assert not is_question("My dog is called Pixel.")
    assert act_of("I live in Lyon.", "user") == "statement"
    assert act_of("Where do I live?", "user") == "question"
    assert act_of("Your dog is Luna.", "persona") == "reply"
    assert is_correction("No, my dog is Pixel")
    assert is_correction("That's wrong: it is Pixel.")
    assert not is_correction("Now I live in Berlin")


def test_questions_corrected_replies_and_superseded_lines_never_outrank_a_statement() -> None:
    weights = ScoringWeights(recency=0.0, importance=0.0)
    statement = Candidate(
        record("My dog is called Pixel.", metadata={"act": "statement"}), 0.5, 1.0
    )
    question = Candidate(record("What is my dog's name?", metadata={"act": "question"}), 0.99, 9.0)
    wrong = Candidate(
        record("Your dog is Luna.", metadata={"act": "reply", "contradicted": True}), 0.9, 8.0
    )
    stale = Candidate(record("I live in Lyon.", metadata={"superseded": True}), 0.9, 8.0)
    ranked = rank([question, wrong, stale, statement], weights, k=4, now=NOW)
    assert ranked[0].record.text == "My dog is called Pixel."
    # a persona's reply ranks below the user's statement it equals in every channel
    reply = Candidate(record("Your dog is Pixel.", metadata={"act": "answer"}), 0.5, 1.0)
    fact = Candidate(record("Ada's dog is called Pixel.", kind="fact"), 0.5, 1.0)
    ranked = rank([reply, statement, fact], weights, k=3, now=NOW)
    assert [r.record.text for r in ranked] == [
        "Ada's dog is called Pixel.",
        "My dog is called Pixel.",
        "Your dog is Pixel.",
    ]
    # imported lines (no act) are ranked as before
    plain = Candidate(record("What is my dog's name?"), 0.99, 9.0)
    assert rank([plain, statement], weights, k=1, now=NOW)[0].record is plain.record


@pytest.fixture
async def world(
    store: PersonaStore, db: AsyncConnectionPool[Any], tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    persona = await store.create(definition(), Actor("t"))
    async with EdgeMemoryIndex(tmp_path / "qdrant", dim=DIM) as index:
        embedder = FakeEmbedder(DIM, seed=7)
        transcripts = Transcripts(db)
        facts = FactStore(db)
        summaries = SummaryStore(db)
        memory = MemoryService(index, embedder, transcripts, facts=facts, summaries=summaries)
        yield {
            "summaries": summaries,
            "persona": persona,
            "memory": memory,
            "facts": facts,
            "transcripts": transcripts,
            "consolidator": Consolidator(facts, memory, LocalExtractor()),
        }
    async with db.connection() as conn:
        await conn.execute("DELETE FROM user_facts")


async def tell(w: dict[str, Any], session: Any, text: str) -> Any:
    message, _ = await w["transcripts"].store_user_message(
        session.id, user_id="ada", speaker="Ada", text=text, client_msg_id=uuid.uuid4().hex
    )
    return message


async def test_a_changed_fact_supersedes_the_current_one_and_stays_as_history(
    world: dict[str, Any],
) -> None:
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    await tell(w, session, "I live in Lyon.")
    await tell(w, session, "My dog is called Pixel.")
    await w["consolidator"].drain()
    await tell(w, session, "I moved to Berlin.")
    done = await w["consolidator"].drain()
    assert (done.messages, done.facts, done.superseded) == (1, 1, 1)

    current = {f.subject: f.text for f in await w["facts"].current(pid, "ada")}
    assert current == {"home": "Ada lives in Berlin.", "dog": "Ada's dog is called Pixel."}
    history = [f for f in await w["facts"].history(pid, "ada") if f.subject == "home"]
    old = next(f for f in history if f.text == "Ada lives in Lyon.")
    new = next(f for f in history if f.text == "Ada lives in Berlin.")
    assert old.valid_until == new.valid_from and old.superseded_by == new.id
    # only the current fact is in the vector index
    found = await w["memory"].search(
        persona_id=str(pid), user_id="ada", text="where does Ada live", k=10
    )
    fact_texts = [m.record.text for m in found if m.record.kind == "fact"]
    assert "Ada lives in Berlin." in fact_texts
    assert "Ada lives in Lyon." not in fact_texts


async def test_the_queue_is_durable_and_consolidation_idempotent(
    world: dict[str, Any], db: AsyncConnectionPool[Any], tmp_path: Path
) -> None:
    """The message is queued by the statement that stores it; a worker that claimed it
    and died before finishing loses nothing (its lease runs out and another takes it),
    and consolidating the same message twice records one fact."""
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    message = await tell(w, session, "My dog is called Pixel.")
    assert await w["facts"].pending() == 1

    claimed = await w["facts"].claim(10)  # a worker claims it ... and crashes
    assert [m.id for m in claimed] == [message.id]
    assert await w["facts"].claim(10) == []  # held while the lease runs
    assert await w["facts"].current(pid, "ada") == []

    # the process restarts: a new consolidator, the lease has run out
    restarted = Consolidator(FactStore(db), w["memory"], LocalExtractor(), lease_s=0.0)
    done = await restarted.drain()
    assert done.messages == 1
    assert [f.text for f in await w["facts"].current(pid, "ada")] == ["Ada's dog is called Pixel."]
    assert await w["facts"].pending() == 0

    # the same message consolidated again yields no second fact
    async with db.connection() as conn:
        await conn.execute("INSERT INTO fact_queue (message_id) VALUES (%s)", (message.id,))
    await restarted.drain()
    assert len(await w["facts"].history(pid, "ada")) == 1


async def test_a_superseded_statement_is_set_aside_by_the_search(world: dict[str, Any]) -> None:
    w, pid = world, world["persona"].id
    session = await w["transcripts"].create_session("ada", [pid])
    first = await tell(w, session, "I live in Lyon.")
    await w["memory"].remember(
        [
            NewMemory(
                persona_id=str(pid),
                user_id="ada",
                session_id=str(session.id),
                speaker_name="Ada",
                speaker_role="user",
                text="I live in Lyon.",
                metadata={"act": "statement"},
                id=first.id,
            )
        ]
    )
    await w["consolidator"].drain()
    await tell(w, session, "I moved to Berlin.")
    await w["consolidator"].drain()
    stored = await w["memory"].get(first.id, persona_id=str(pid))
    assert stored.metadata.get("superseded") is True
    found = await w["memory"].search(persona_id=str(pid), user_id="ada", text="I live in Lyon", k=3)
    assert found[0].record.text == "Ada lives in Berlin."


async def test_set_aside_lines_do_not_crowd_the_evidence_out_of_the_candidates(
    tmp_path: Path,
) -> None:
    """With room for three candidates per channel, three stored askings of the question
    would fill both lists; a search leaves questions out, so the statement that answers
    it is found."""
    weights = ScoringWeights(dense_candidates=3, keyword_candidates=3)
    embedder = FakeEmbedder(DIM, seed=7)
    async with EdgeMemoryIndex(tmp_path / "q", dim=DIM, weights=weights) as index:
        questions = [
            record(f"where is my dog Pixel {i}?", metadata={"act": "question"}) for i in range(3)
        ]
        statement = record("my dog Pixel lives with my sister", metadata={"act": "statement"})
        batch = [*questions, statement]
        await index.upsert(batch, await embedder.embed([r.text for r in batch]))
        text = "where is my dog Pixel?"
        found = await index.search(
            MemoryQuery(
                persona_id="einstein",
                user_id="ann",
                text=text,
                vector=await embedder.embed_one(text),
                k=4,
            ),
            weights,
        )
        assert found[0].record.text == statement.text
        # a search leaves questions out altogether (a listing still shows them)
        assert [m.record.text for m in found] == [statement.text]


async def say(w: dict[str, Any], session: Any, text: str, reply: str | None = None) -> Any:
    """A user message stored as a turn stores it (its memory has the message's id), with
    the persona's reply when given."""
    message = await tell(w, session, text)
    pid = w["persona"].id
    lines = [
        NewMemory(
            persona_id=str(pid),
            user_id="ada",
            session_id=str(session.id),
            speaker_name="Ada",
            speaker_role="user",
            text=text,
            metadata={"act": "statement"},
            id=message.id,
        )
    ]
    if reply is not None:
        answer, _ = await w["transcripts"].append_persona_message(
            session.id, persona_id=pid, speaker="Einstein", text=reply, reply_to=message.id
        )
        lines.append(
            NewMemory(
                persona_id=str(pid),
                user_id="ada",
                session_id=str(session.id),
                speaker_name="Einstein",
                speaker_role="persona",
                text=reply,
                metadata={"act": "reply"},
                id=answer.id,
            )
        )
    await w["memory"].remember(lines)
    await w["consolidator"].drain()
    return message


async def homes(w: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        (f.text, f.current)
        for f in await w["facts"].history(w["persona"].id, "ada")
        if f.subject == "home"
    ]


async def fact_memories(w: dict[str, Any], text: str) -> list[Any]:
    found = await w["memory"].search(
        persona_id=str(w["persona"].id), user_id="ada", text=text, k=10
    )
    return [m.record for m in found if m.record.kind == "fact"]


async def test_forgetting_the_session_of_a_change_makes_the_old_fact_current_again(
    world: dict[str, Any],
) -> None:
    w, pid = world, world["persona"].id
    first = await w["transcripts"].create_session("ada", [pid])
    lyon = await say(w, first, "I live in Lyon.", reply="Lyon is lovely!")
    await say(w, first, "My dog is called Pixel.")
    second = await w["transcripts"].create_session("ada", [pid])
    await say(w, second, "I moved to Berlin.")
    (reply_id,) = await w["transcripts"].reply_ids([lyon.id])
    for line in (lyon.id, reply_id):
        assert (await w["memory"].get(line, persona_id=str(pid))).metadata["superseded"] is True
    assert await homes(w) == [("Ada lives in Berlin.", True), ("Ada lives in Lyon.", False)]
    # the first session was summarised without the statement the move superseded
    await w["summaries"].end(first.id)
    read = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    await w["summaries"].write(
        first.id,
        summary="x",
        through_seq=99,
        through_at=None,
        messages=3,
        origin="local",
        read_at=read,
    )
    assert (await w["summaries"].get(first.id)).due_at is None

    await w["memory"].forget_session(second.id)
    # its summary is written again, with the Lyon statement true again
    assert (await w["summaries"].get(first.id)).due_at is not None
    # as if the move had never been said: Lyon is current, with no end and no successor
    assert await homes(w) == [("Ada lives in Lyon.", True)]
    (home,) = [f for f in await w["facts"].current(pid, "ada") if f.subject == "home"]
    assert home.valid_until is None and home.superseded_by is None
    assert home.source_ids == (lyon.id,)
    assert {f.text for f in await w["facts"].current(pid, "ada")} == {
        "Ada lives in Lyon.",
        "Ada's dog is called Pixel.",
    }
    # back in the index as a fact memory of its own session, found by a search
    found = await fact_memories(w, "where does Ada live")
    assert "Ada lives in Lyon." in [r.text for r in found]
    assert "Ada lives in Berlin." not in [r.text for r in found]
    memory = next(r for r in found if r.text == "Ada lives in Lyon.")
    assert memory.id == home.id and memory.session_id == str(first.id)
    assert memory.speaker_name == "Ada" and memory.metadata["subject"] == "home"
    # the statement it came from, and the reply to it, are true again
    for line in (lyon.id, reply_id):
        assert not (await w["memory"].get(line, persona_id=str(pid))).metadata["superseded"]


async def test_forgetting_the_session_of_the_old_fact_leaves_the_new_one_current(
    world: dict[str, Any],
) -> None:
    w, pid = world, world["persona"].id
    first = await w["transcripts"].create_session("ada", [pid])
    await say(w, first, "I live in Lyon.")
    second = await w["transcripts"].create_session("ada", [pid])
    await say(w, second, "I moved to Berlin.")

    await w["memory"].forget_session(first.id)
    assert await homes(w) == [("Ada lives in Berlin.", True)]  # Lyon is not even history
    found = [r.text for r in await fact_memories(w, "where does Ada live")]
    assert "Ada lives in Berlin." in found and "Ada lives in Lyon." not in found


async def test_a_fact_superseded_through_a_forgotten_one_is_superseded_by_the_next_kept(
    world: dict[str, Any],
) -> None:
    """Lyon, then Berlin, then Paris, each in its own session: forgetting Berlin's leaves
    Paris current and Lyon superseded by Paris, from when Paris became true."""
    w, pid = world, world["persona"].id
    sessions = [await w["transcripts"].create_session("ada", [pid]) for _ in range(3)]
    for session, text in zip(
        sessions, ("I live in Lyon.", "I moved to Berlin.", "I moved to Paris."), strict=True
    ):
        await say(w, session, text)

    await w["memory"].forget_session(sessions[1].id)
    history = {f.text: f for f in await w["facts"].history(pid, "ada")}
    assert set(history) == {"Ada lives in Lyon.", "Ada lives in Paris."}
    lyon, paris = history["Ada lives in Lyon."], history["Ada lives in Paris."]
    assert paris.current and not lyon.current
    assert lyon.superseded_by == paris.id and lyon.valid_until == paris.valid_from
    found = [r.text for r in await fact_memories(w, "where does Ada live")]
    assert "Ada lives in Paris." in found and "Ada lives in Lyon." not in found
    # forgetting Paris's session too: Lyon is all that was said, and current
    await w["memory"].forget_session(sessions[2].id)
    assert await homes(w) == [("Ada lives in Lyon.", True)]


async def test_deleting_a_fact_restores_nothing(world: dict[str, Any]) -> None:
    """The user said the fact is wrong: what it superseded stays history."""
    w, pid = world, world["persona"].id
    first = await w["transcripts"].create_session("ada", [pid])
    await say(w, first, "I live in Lyon.")
    second = await w["transcripts"].create_session("ada", [pid])
    await say(w, second, "I moved to Berlin.")
    (berlin,) = [f for f in await w["facts"].current(pid, "ada") if f.subject == "home"]
    assert await w["facts"].delete(berlin.id, pid, "ada")
    assert await homes(w) == [("Ada lives in Lyon.", False)]
