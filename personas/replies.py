"""What the studio records about replies: the channel each was written for and whether
it met that channel's measurable constraints (``reply_channels``)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from personas.channels import ChannelCheck, check_reply
from personas.types import Channel

RECORD_CHANNEL_SQL = (
    "INSERT INTO reply_channels (message_id, persona_id, channel, compliant, checks)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING"
)
CHANNEL_CHECKS_SQL = (
    "SELECT channel, compliant, checks->'checks' FROM reply_channels"
    " WHERE persona_id = %s AND (%s::timestamptz IS NULL OR created_at >= %s)"
    " AND (%s::timestamptz IS NULL OR created_at < %s)"
)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """Replies per channel and how many met their overlay, with the failed checks."""

    channel: str
    replies: int
    compliant: int
    failed_checks: dict[str, int]


async def record_channel(
    pool: AsyncConnectionPool[Any],
    message_id: uuid.UUID,
    persona_id: uuid.UUID,
    channel: Channel,
    text: str,
) -> ChannelCheck:
    """Check a stored reply against its channel and record the result (once a reply)."""
    check = check_reply(text, channel)
    async with pool.connection() as conn:
        await conn.execute(
            RECORD_CHANNEL_SQL,
            (message_id, persona_id, check.channel, check.compliant, Jsonb(check.as_json())),
        )
    return check


async def channel_stats(
    pool: AsyncConnectionPool[Any],
    persona_id: uuid.UUID,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[ChannelStats]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            CHANNEL_CHECKS_SQL,
            (persona_id, since, since, until, until),
        )
        rows = await cur.fetchall()
    stats: dict[str, ChannelStats] = {}
    for channel, compliant, checks in rows:
        s = stats.setdefault(channel, ChannelStats(channel, 0, 0, {}))
        failed = dict(s.failed_checks)
        for name, ok in (checks or {}).items():
            if not ok:
                failed[name] = failed.get(name, 0) + 1
        stats[channel] = ChannelStats(channel, s.replies + 1, s.compliant + bool(compliant), failed)
    return [stats[name] for name in sorted(stats)]
