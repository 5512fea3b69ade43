"""Per-user limits held in Redis so they hold across server nodes: messages per minute
(a sliding window) and turns running at once. When Redis is unreachable the limiter
fails open or closed, by setting, and logs it."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from runtime.errors import RuntimeLayerError

log = logging.getLogger(__name__)

# One round trip admits a message: KEYS[1] is a sorted set of the user's send times
# (a sliding window over the last 60 s), KEYS[2] a counter of the user's running turns
# with a TTL, so a crashed node cannot hold slots forever. Returns {status, wait ms}:
# 1 admitted (a turn slot taken), 0 over the message rate, 2 all turn slots taken.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + 60000 - tonumber(ARGV[1])}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 61000)
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if n > tonumber(ARGV[4]) then
  redis.call('DECR', KEYS[2])
  return {2, 1000}
end
return {1, 0}
"""
_RELEASE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""


# KEYS[1]: a sorted set of event times; ARGV: now ms, limit, member, window ms.
# Returns 0 (counted) or the ms until the oldest event leaves the window.
_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[4])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + tonumber(ARGV[4]) - tonumber(ARGV[1]))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4] + 1000)
return 0
"""


class RateLimited(RuntimeLayerError):
    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(f"rate limited: {reason}; retry after {retry_after_s:.1f} s")
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Limits:
    messages_per_minute: int
    concurrent_turns: int
    fail_open: bool = True
    turn_slot_ttl_s: float = 300.0
    sessions_per_minute: int = 10


class RateLimiter:
    def __init__(
        self, redis: Redis, limits: Limits, *, namespace: str = "personae", timeout_s: float = 0.5
    ) -> None:
        self._redis = redis
        self.limits = limits
        self._prefix = f"{namespace}:rl:"
        self._timeout = timeout_s
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)
        self._window = redis.register_script(_WINDOW)

    async def admit(self, user_id: str) -> bool:
        """Count one message for ``user_id`` and take one of its concurrent turn slots;
        raises :class:`RateLimited` over either limit (a message refused for want of a
        slot still counts against the rate). Returns whether a slot is held (False:
        Redis down, failing open); pass that to :meth:`release_turn`."""
        now_ms = int(time.time() * 1000)
        limits = self.limits
        try:
            async with asyncio.timeout(self._timeout):
                status, wait_ms = await self._admit(
                    keys=[self._prefix + f"msg:{user_id}", self._prefix + f"turns:{user_id}"],
                    args=[
                        now_ms,
                        limits.messages_per_minute,
                        f"{now_ms}:{uuid.uuid4().hex}",
                        limits.concurrent_turns,
                        int(limits.turn_slot_ttl_s * 1000),
                    ],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._unavailable(user_id, exc)
            return False
        if status == 0:
            raise RateLimited(
                f"more than {limits.messages_per_minute} messages a minute",
                max(0.1, int(wait_ms) / 1000),
            )
        if status == 2:
            raise RateLimited(f"more than {limits.concurrent_turns} turns at once", 1.0)
        return True

    async def admit_session(self, user_id: str) -> None:
        """Count one new session for ``user_id``; raises :class:`RateLimited` past
        ``sessions_per_minute`` (each session is rows, a room and Redis keys)."""
        limit = self.limits.sessions_per_minute
        await self._count(user_id, f"sessions:{user_id}", limit, f"{limit} new sessions")

    async def admit_statement(self, user_id: str) -> None:
        """Count a statement stored for ``user_id`` without a turn (one it asked a
        persona to remember) as one of its messages; raises :class:`RateLimited` past
        ``messages_per_minute``. It takes no turn slot: nothing runs after it."""
        limit = self.limits.messages_per_minute
        await self._count(user_id, f"msg:{user_id}", limit, f"{limit} messages")

    async def _count(self, user_id: str, key: str, limit: int, what: str) -> None:
        now_ms = int(time.time() * 1000)
        try:
            async with asyncio.timeout(self._timeout):
                wait_ms = await self._window(
                    keys=[self._prefix + key],
                    args=[now_ms, limit, f"{now_ms}:{uuid.uuid4().hex}", 60_000],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self._unavailable(user_id, exc)
            return
        if int(wait_ms) > 0:
            raise RateLimited(f"more than {what} a minute", int(wait_ms) / 1000)

    async def release_turn(self, user_id: str, held: bool) -> None:
        if not held:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._release(keys=[self._prefix + f"turns:{user_id}"])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("rate limiter: releasing a turn slot of %s failed: %s", user_id, exc)

    def _unavailable(self, user_id: str, exc: BaseException) -> None:
        if self.limits.fail_open:
            log.warning(
                "rate limiter: redis unavailable, allowing %s (fail open): %s", user_id, exc
            )
            return
        log.warning("rate limiter: redis unavailable, refusing %s (fail closed): %s", user_id, exc)
        raise RateLimited("limits cannot be checked right now", 5.0) from None
