from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory.errors import SessionExists, SessionNotFound
from memory.record.transcripts import Transcripts
from personas import Actor, PersonaStore
from tests.personas.factory import definition


@pytest.fixture
async def setup(store: PersonaStore, db: AsyncConnectionPool[Any]) -> tuple[Transcripts, uuid.UUID]:
    persona = await store.create(definition(), Actor("t"))
    return Transcripts(db), persona.id


async def test_user_message_is_stored_once_per_client_id(setup: Any) -> None:
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid])
    results = await asyncio.gather(
        *(
            transcripts.store_user_message(
                session.id, user_id="alice", speaker="Alice", text="hello", client_msg_id="c1"
            )
            for _ in range(5)
        )
    )
    assert sum(stored_now is not None for _, stored_now in results) == 1
    assert len({m.id for m, _ in results}) == 1
    assert await transcripts.count(session.id) == 1


async def test_storing_a_message_returns_its_session_as_it_is_now(setup: Any) -> None:
    """The turns that follow read the session's personas and policy from the statement
    that stored the message; a resend stores nothing and returns no session."""
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid])
    await transcripts.set_personas(session.id, [pid, pid], "round_robin")
    message, now = await transcripts.store_user_message(
        session.id, user_id="alice", speaker="Alice", text="hi", client_msg_id="c1"
    )
    assert now is not None and now.id == session.id and now.user_id == "alice"
    assert (now.persona_ids, now.policy) == ((pid, pid), "round_robin")
    assert now.updated_at >= session.updated_at and message.session_id == session.id
    again, none = await transcripts.store_user_message(
        session.id, user_id="alice", speaker="Alice", text="hi again", client_msg_id="c1"
    )
    assert none is None and again == message
    assert await transcripts.count(session.id) == 1


async def test_reply_is_stored_once_per_user_message_and_persona(setup: Any) -> None:
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid])
    user_msg, _ = await transcripts.store_user_message(
        session.id, user_id="alice", speaker="Alice", text="hi", client_msg_id="c1"
    )
    first, created = await transcripts.append_persona_message(
        session.id, persona_id=pid, speaker="Tutor", text="Hello!", reply_to=user_msg.id
    )
    again, created_again = await transcripts.append_persona_message(
        session.id, persona_id=pid, speaker="Tutor", text="Hello again!", reply_to=user_msg.id
    )
    assert created and not created_again and again.id == first.id and again.text == "Hello!"
    assert (await transcripts.reply_to(user_msg.id, pid)) == first


async def test_seq_counts_within_a_session_not_across_sessions(setup: Any) -> None:
    """A user learns nothing about other users' traffic from ``seq``: each session's
    messages are numbered from 1, whatever other sessions hold; concurrent writers to
    one session never share a number."""
    transcripts, pid = setup
    busy = await transcripts.create_session("alice", [pid])
    for i in range(5):
        await transcripts.store_user_message(
            busy.id, user_id="alice", speaker="Alice", text=f"a{i}", client_msg_id=f"a{i}"
        )
    quiet = await transcripts.create_session("bob", [pid])
    first, _ = await transcripts.store_user_message(
        quiet.id, user_id="bob", speaker="Bob", text="hello", client_msg_id="b0"
    )
    reply, _ = await transcripts.append_persona_message(
        quiet.id, persona_id=pid, speaker="Tutor", text="Hi Bob.", reply_to=first.id
    )
    assert (first.seq, reply.seq) == (1, 2)
    stored = await asyncio.gather(
        *(
            transcripts.store_user_message(
                busy.id, user_id="alice", speaker="Alice", text=f"c{i}", client_msg_id=f"c{i}"
            )
            for i in range(8)
        )
    )
    assert sorted(m.seq for m, _ in stored) == list(range(6, 14))
    page = await transcripts.history(busy.id, limit=50)
    assert [m.seq for m in page.items] == list(range(1, 14))


async def test_history_pages_backwards_oldest_first(setup: Any) -> None:
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid])
    for i in range(7):
        await transcripts.store_user_message(
            session.id, user_id="alice", speaker="Alice", text=f"m{i}", client_msg_id=f"c{i}"
        )
    page = await transcripts.history(session.id, limit=3)
    assert [m.text for m in page.items] == ["m4", "m5", "m6"]
    page2 = await transcripts.history(session.id, before=page.before, limit=3)
    assert [m.text for m in page2.items] == ["m1", "m2", "m3"]
    page3 = await transcripts.history(session.id, before=page2.before, limit=3)
    assert [m.text for m in page3.items] == ["m0"] and page3.before is None


async def test_unknown_session_is_a_clear_error(setup: Any) -> None:
    transcripts, _ = setup
    with pytest.raises(SessionNotFound):
        await transcripts.get_session(uuid.uuid4())
    with pytest.raises(SessionNotFound):
        await transcripts.store_user_message(
            uuid.uuid4(), user_id="a", speaker="A", text="x", client_msg_id="c"
        )


async def test_forget_session_and_user(setup: Any) -> None:
    transcripts, pid = setup
    s1 = await transcripts.create_session("alice", [pid])
    s2 = await transcripts.create_session("alice", [pid])
    s3 = await transcripts.create_session("bob", [pid])
    for s in (s1, s2, s3):
        await transcripts.store_user_message(
            s.id, user_id=s.user_id, speaker="x", text="t", client_msg_id="c"
        )
    assert await transcripts.delete_session(s1.id) == 1
    assert [s.id for s in await transcripts.list_sessions("alice")] == [s2.id]
    assert await transcripts.delete_user("alice") == 1
    assert await transcripts.list_sessions("alice") == []
    assert await transcripts.count(s3.id) == 1


async def test_a_session_id_is_taken_once(setup: Any) -> None:
    transcripts, pid = setup
    chosen = uuid.uuid4()
    await transcripts.create_session("alice", [pid], session_id=chosen)
    with pytest.raises(SessionExists, match=str(chosen)):
        await transcripts.create_session("bob", [pid], session_id=chosen)
    assert (await transcripts.get_session(chosen)).user_id == "alice"


async def test_sessions_are_summarised_and_counted(setup: Any) -> None:
    """What ``personae sessions list`` and ``memory stats`` show: every user's sessions
    (or one user's), the latest first, with their personas' slugs and message counts."""
    transcripts, pid = setup
    sessions_before, messages_before = await transcripts.totals()
    older = await transcripts.create_session("alice", [pid], title="older")
    newer = await transcripts.create_session("bob", [pid], title="newer")
    for i in range(2):
        await transcripts.store_user_message(
            newer.id, user_id="bob", speaker="Bob", text=f"b{i}", client_msg_id=f"b{i}"
        )
    everyone = await transcripts.session_summaries(None)
    assert [s.id for s in everyone[:2]] == [newer.id, older.id]
    assert (everyone[0].messages, everyone[0].personas, everyone[0].title) == (
        2,
        ("test-tutor",),
        "newer",
    )
    assert [s.id for s in await transcripts.session_summaries("alice")] == [older.id]
    assert await transcripts.session_summaries("carol") == []
    assert await transcripts.totals() == (sessions_before + 2, messages_before + 2)


async def test_a_session_channel_is_set_and_cleared(setup: Any) -> None:
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid], metadata={"rounds": 2})
    await transcripts.set_channel(session.id, "sms")
    assert (await transcripts.get_session(session.id)).metadata == {"rounds": 2, "channel": "sms"}
    await transcripts.set_channel(session.id, None)
    assert (await transcripts.get_session(session.id)).metadata == {"rounds": 2}


async def test_latest_replies_are_a_personas_complete_ones_newest_first(setup: Any) -> None:
    transcripts, pid = setup
    session = await transcripts.create_session("alice", [pid])
    for i, status in enumerate(("complete", "failed", "complete")):
        asked, _ = await transcripts.store_user_message(
            session.id, user_id="alice", speaker="Alice", text=f"q{i}", client_msg_id=f"c{i}"
        )
        await transcripts.append_persona_message(
            session.id,
            persona_id=pid,
            speaker="Tutor",
            text=f"r{i}",
            reply_to=asked.id,
            status=status,  # type: ignore[arg-type]
        )
    assert await transcripts.latest_replies(pid, 10) == ["r2", "r0"]
    assert await transcripts.latest_replies(pid, 1) == ["r2"]
