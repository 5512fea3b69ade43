"""Transcripts in PostgreSQL: chat sessions and their messages, the source of truth for
what was said. User messages are written idempotently by ``(session_id, client_msg_id)``
and persona replies by ``(reply_to, persona_id)``, so a retried turn never stores twice."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from memory.errors import SessionExists, SessionNotFound
from memory.record.turn_transaction import read_connection

Role = Literal["user", "persona", "system"]
MessageStatus = Literal["complete", "incomplete", "failed"]
MessageCut = Literal["length", "repetition", "speaker", "stopped"]

_MESSAGE_COLUMNS = (
    "id, session_id, seq, role, persona_id, user_id, speaker, text, client_msg_id,"
    " reply_to, status, extracted_traits, timings, created_at, cut"
)
_SESSION_COLUMNS = "id, user_id, title, policy, persona_ids, metadata, created_at, updated_at"

CREATE_SESSION_SQL = (
    "INSERT INTO sessions (id, user_id, title, policy, persona_ids, metadata)"
    f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_SESSION_COLUMNS}"
)
GET_SESSION_SQL = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = %s AND closed_at IS NULL"
LIST_SESSIONS_SQL = (
    f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = %s"
    " AND closed_at IS NULL ORDER BY updated_at DESC LIMIT %s"
)
# every open session (or one user's) with its personas' slugs and its message count
SESSION_SUMMARIES_SQL = (
    "SELECT s.id, s.user_id, s.title, s.policy, s.updated_at,"
    " (SELECT array_agg(p.slug ORDER BY p.slug) FROM personas p"
    "   WHERE p.id = ANY(s.persona_ids)) AS personas,"
    " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS messages"
    " FROM sessions s WHERE s.closed_at IS NULL"
    " AND (%(user)s::text IS NULL OR s.user_id = %(user)s)"
    " ORDER BY s.updated_at DESC LIMIT %(limit)s"
)
SET_PERSONAS_SQL = (
    "UPDATE sessions SET persona_ids = %s, policy = %s, updated_at = now()"
    f" WHERE id = %s AND closed_at IS NULL RETURNING {_SESSION_COLUMNS}"
)
SET_CHANNEL_SQL = (
    "UPDATE sessions SET metadata = CASE WHEN %s::text IS NULL"
    " THEN metadata - 'channel' ELSE jsonb_set(metadata, '{channel}', to_jsonb(%s::text))"
    " END, updated_at = now() WHERE id = %s"
)

# the message and, when it is new, its session: the insert's trigger (migration 0009)
# numbers the message and sets the session's updated_at to now(), and a statement's
# reads see the row as it was before the statement, so updated_at is read as now()
_SESSION_AS_NOW = ", ".join(
    f"{'now()' if c == 'updated_at' else c} AS s_{c}" for c in _SESSION_COLUMNS.split(", ")
)
STORE_USER_MESSAGE_SQL = (
    "WITH added AS ("
    " INSERT INTO messages (id, session_id, role, user_id, speaker, text, client_msg_id)"
    " SELECT %s, s.id, 'user', %s, %s, %s, %s FROM sessions s"
    " WHERE s.id = %s AND s.closed_at IS NULL"
    " ON CONFLICT (session_id, client_msg_id) WHERE client_msg_id IS NOT NULL"
    f" DO NOTHING RETURNING {_MESSAGE_COLUMNS}"
    # queued for consolidation into facts in the same statement: durable with the message
    "), queued AS ("
    " INSERT INTO fact_queue (message_id) SELECT id FROM added"
    "), touched AS ("
    f" SELECT {_SESSION_AS_NOW} FROM sessions"
    " WHERE id = %s AND EXISTS (SELECT 1 FROM added)"
    ") SELECT * FROM added, touched"
)
USER_MESSAGE_SQL = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = %s AND client_msg_id = %s"
)
APPEND_PERSONA_MESSAGE_SQL = (
    "INSERT INTO messages (id, session_id, role, persona_id, speaker, text,"
    " reply_to, status, timings, cut)"
    " VALUES (%s, %s, 'persona', %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (reply_to, persona_id) WHERE reply_to IS NOT NULL"
    f" DO NOTHING RETURNING {_MESSAGE_COLUMNS}"
)
REPLY_TO_SQL = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE reply_to = %s AND persona_id = %s"
REPLY_IDS_SQL = "SELECT id FROM messages WHERE reply_to = ANY(%s)"
MESSAGE_SQL = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = %s AND session_id = %s"
MESSAGE_EXISTS_SQL = "SELECT 1 FROM messages WHERE id = %s"
HISTORY_SQL = (
    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = %s"
    " AND (%s::bigint IS NULL OR seq < %s) ORDER BY seq DESC LIMIT %s"
)
# only the columns a prompt reads: this runs before every reply's first token
RECENT_LINES_SQL = (
    "SELECT id, persona_id, speaker, text, status FROM messages"
    " WHERE session_id = %s ORDER BY seq DESC LIMIT %s"
)
LATEST_REPLIES_SQL = (
    "SELECT text FROM messages WHERE persona_id = %s AND status = 'complete'"
    " ORDER BY created_at DESC LIMIT %s"
)
COUNT_MESSAGES_SQL = "SELECT count(*) FROM messages WHERE session_id = %s"
TOTALS_SQL = "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM messages)"
DELETE_SESSION_SQL = "DELETE FROM sessions WHERE id = %s"
DELETE_USER_SQL = "DELETE FROM sessions WHERE user_id = %s"
# a session nobody wrote in (at most a card's greeting); its messages go with it
DELETE_UNUSED_SESSION_SQL = (
    "DELETE FROM sessions s WHERE s.id = %s"
    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id AND m.role = 'user')"
)


@dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    user_id: str
    title: str
    policy: str
    persona_ids: tuple[uuid.UUID, ...]
    metadata: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Message:
    id: uuid.UUID
    session_id: uuid.UUID
    seq: int
    role: Role
    persona_id: uuid.UUID | None
    user_id: str | None
    speaker: str
    text: str
    client_msg_id: str | None
    reply_to: uuid.UUID | None
    status: MessageStatus
    extracted_traits: Mapping[str, Any]
    timings: Mapping[str, Any]
    created_at: dt.datetime
    cut: MessageCut | None = None
    """Why a reply was cut short (its token limit, a repetition, another speaker's
    line), or None when it ended by itself."""


@dataclass(frozen=True, slots=True)
class SpokenLine:
    """What a prompt needs of a message: who said it, what, and whether it stands."""

    id: uuid.UUID
    persona_id: uuid.UUID | None
    speaker: str
    text: str
    status: MessageStatus


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Messages oldest first; ``before`` is the cursor for the page before this one."""

    items: tuple[Message, ...]
    before: int | None


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session as listed for an operator: its personas' slugs and its message count."""

    id: uuid.UUID
    user_id: str
    title: str
    policy: str
    updated_at: dt.datetime
    personas: tuple[str, ...]
    messages: int


class Transcripts:
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    # sessions -----------------------------------------------------------------------

    async def create_session(
        self,
        user_id: str,
        persona_ids: Sequence[uuid.UUID],
        *,
        policy: str = "mention",
        title: str = "",
        session_id: uuid.UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """A new session; raises :class:`SessionExists` when ``session_id`` is taken."""
        session_id = session_id or uuid.uuid4()
        try:
            async with self._pool.connection() as conn:
                cur = await conn.cursor(row_factory=dict_row).execute(
                    CREATE_SESSION_SQL,
                    (
                        session_id,
                        user_id,
                        title,
                        policy,
                        list(persona_ids),
                        Jsonb(dict(metadata or {})),
                    ),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation:
            raise SessionExists(str(session_id)) from None
        assert row is not None
        return _session(row)

    async def get_session(self, session_id: uuid.UUID) -> Session:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(GET_SESSION_SQL, (session_id,))
            row = await cur.fetchone()
        if row is None:
            raise SessionNotFound(str(session_id))
        return _session(row)

    async def list_sessions(self, user_id: str, *, limit: int = 50) -> list[Session]:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                LIST_SESSIONS_SQL, (user_id, limit)
            )
            rows = await cur.fetchall()
        return [_session(r) for r in rows]

    async def session_summaries(
        self, user_id: str | None, *, limit: int = 50
    ) -> list[SessionSummary]:
        """Open sessions, the latest first: one user's, or (None) everyone's."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                SESSION_SUMMARIES_SQL, {"user": user_id, "limit": limit}
            )
            rows = await cur.fetchall()
        return [
            SessionSummary(
                id=r["id"],
                user_id=r["user_id"],
                title=r["title"],
                policy=r["policy"],
                updated_at=r["updated_at"],
                personas=tuple(r["personas"] or ()),
                messages=int(r["messages"]),
            )
            for r in rows
        ]

    async def set_personas(
        self, session_id: uuid.UUID, persona_ids: Sequence[uuid.UUID], policy: str
    ) -> Session:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                SET_PERSONAS_SQL, (list(persona_ids), policy, session_id)
            )
            row = await cur.fetchone()
        if row is None:
            raise SessionNotFound(str(session_id))
        return _session(row)

    async def set_channel(self, session_id: uuid.UUID, channel: str | None) -> None:
        """Write the session's replies for ``channel`` (its ``metadata.channel``), or
        (None) for none in particular."""
        async with self._pool.connection() as conn:
            await conn.execute(SET_CHANNEL_SQL, (channel, channel, session_id))

    async def totals(self) -> tuple[int, int]:
        """How many sessions and messages are stored, in all."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(TOTALS_SQL)
            sessions, messages = await cur.fetchone() or (0, 0)
        return int(sessions), int(messages)

    async def reply_ids(self, message_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """The ids of the replies to these messages."""
        if not message_ids:
            return []
        async with self._pool.connection() as conn:
            cur = await conn.execute(REPLY_IDS_SQL, (list(message_ids),))
            return [r[0] for r in await cur.fetchall()]

    async def delete_session(self, session_id: uuid.UUID) -> int:
        """Delete a session and its messages; returns the number of messages removed."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(COUNT_MESSAGES_SQL, (session_id,))
            row = await cur.fetchone()
            await conn.execute(DELETE_SESSION_SQL, (session_id,))
        return int(row[0]) if row else 0

    async def delete_if_unused(self, session_id: uuid.UUID) -> bool:
        """Delete a session that holds no user message (a greeting at most); whether it
        was deleted."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(DELETE_UNUSED_SESSION_SQL, (session_id,))
            return bool(cur.rowcount > 0)

    async def delete_user(self, user_id: str) -> int:
        """Delete every session of a user; returns the number of sessions removed."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(DELETE_USER_SQL, (user_id,))
            return int(cur.rowcount)

    # messages -----------------------------------------------------------------------

    async def store_user_message(
        self,
        session_id: uuid.UUID,
        *,
        user_id: str,
        speaker: str,
        text: str,
        client_msg_id: str,
    ) -> tuple[Message, Session | None]:
        """Store a user message once, in one statement that also returns its session as
        it is now (its personas and policy for the turns to come). A retry with the same
        ``client_msg_id`` returns the stored message and ``None``."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                STORE_USER_MESSAGE_SQL,
                (uuid.uuid4(), user_id, speaker, text, client_msg_id, session_id, session_id),
            )
            row = await cur.fetchone()
            if row is not None:
                message = {k: v for k, v in row.items() if not k.startswith("s_")}
                session = {k[2:]: v for k, v in row.items() if k.startswith("s_")}
                return _message(message), _session(session)
        existing = await self.user_message(session_id, client_msg_id)
        if existing is None:
            raise SessionNotFound(str(session_id))
        return existing, None

    async def user_message(self, session_id: uuid.UUID, client_msg_id: str) -> Message | None:
        """The stored user message with this ``client_msg_id``, if any."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                USER_MESSAGE_SQL, (session_id, client_msg_id)
            )
            row = await cur.fetchone()
        return None if row is None else _message(row)

    async def append_persona_message(
        self,
        session_id: uuid.UUID,
        *,
        persona_id: uuid.UUID,
        speaker: str,
        text: str,
        reply_to: uuid.UUID | None,
        status: MessageStatus = "complete",
        timings: Mapping[str, Any] | None = None,
        message_id: uuid.UUID | None = None,
        cut: MessageCut | None = None,
    ) -> tuple[Message, bool]:
        """Store a persona's reply once per (``reply_to``, persona)."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                APPEND_PERSONA_MESSAGE_SQL,
                (
                    message_id or uuid.uuid4(),
                    session_id,
                    persona_id,
                    speaker,
                    text,
                    reply_to,
                    status,
                    Jsonb(dict(timings or {})),
                    cut,
                ),
            )
            row = await cur.fetchone()
            if row is not None:
                return _message(row), True
            cur = await conn.cursor(row_factory=dict_row).execute(
                REPLY_TO_SQL, (reply_to, persona_id)
            )
            existing = await cur.fetchone()
        assert existing is not None
        return _message(existing), False

    async def reply_to(self, message_id: uuid.UUID, persona_id: uuid.UUID) -> Message | None:
        """The stored reply of a persona to a user message, if any (for retried turns)."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                REPLY_TO_SQL, (message_id, persona_id)
            )
            row = await cur.fetchone()
        return None if row is None else _message(row)

    async def message(self, session_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        """One message of the session, if it is there."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                MESSAGE_SQL, (message_id, session_id)
            )
            row = await cur.fetchone()
        return None if row is None else _message(row)

    async def message_exists(self, message_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(MESSAGE_EXISTS_SQL, (message_id,))
            return await cur.fetchone() is not None

    async def history(
        self, session_id: uuid.UUID, *, before: int | None = None, limit: int = 50
    ) -> MessagePage:
        """Up to ``limit`` messages before the cursor ``before`` (a ``seq``), oldest first."""
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                HISTORY_SQL, (session_id, before, before, limit + 1)
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        items = tuple(_message(r) for r in reversed(rows[:limit]))
        return MessagePage(items, items[0].seq if more and items else None)

    async def recent(self, session_id: uuid.UUID, limit: int) -> tuple[Message, ...]:
        return (await self.history(session_id, limit=limit)).items

    async def recent_lines(self, session_id: uuid.UUID, limit: int) -> tuple[SpokenLine, ...]:
        """The last ``limit`` messages, oldest first, as prompt lines: only the columns
        a prompt reads (this runs before every reply's first token). Inside a turn, in
        the transaction that holds the session's turn lock."""
        async with read_connection(self._pool) as conn:
            cur = await conn.execute(RECENT_LINES_SQL, (session_id, limit))
            rows = await cur.fetchall()
        return tuple(SpokenLine(*row) for row in reversed(rows))

    async def latest_replies(self, persona_id: uuid.UUID, limit: int) -> list[str]:
        """The texts of the persona's last ``limit`` complete replies, newest first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(LATEST_REPLIES_SQL, (persona_id, limit))
            rows = await cur.fetchall()
        return [r[0] for r in rows]

    async def count(self, session_id: uuid.UUID) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(COUNT_MESSAGES_SQL, (session_id,))
            row = await cur.fetchone()
        return int(row[0]) if row else 0


def _session(row: dict[str, Any]) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        policy=row["policy"],
        persona_ids=tuple(row["persona_ids"]),
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _message(row: dict[str, Any]) -> Message:
    return Message(**row)
