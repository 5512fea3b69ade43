from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from memory.errors import SessionNotFound
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
