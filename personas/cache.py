"""Two-level persona cache: in-process L1 and Redis L2, invalidated on every node.

Writers call :meth:`PersonaCache.invalidate` after their transaction commits: it drops the
local entry, raises the persona's version floor in Redis, deletes the L2 keys and
publishes on a channel every node listens to. L2 fills below the floor are refused and
L1 fills are dropped if any invalidation arrived during the load, so a load that raced a
write never puts the old version back. L1 is used only while the invalidation channel
is connected; when Redis is unreachable reads fall through to PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Self

from redis.asyncio import Redis
from redis.exceptions import RedisError

from personas.types import Belief, Channel, Mode, Persona, StyleConfig, Trait

log = logging.getLogger(__name__)

Loader = Callable[[str | uuid.UUID], Awaitable[Persona | None]]

# A load that raced a write must not put the old version back: writers raise a per-persona
# floor to the version they committed, and fills below the floor are dropped.
_FILL = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return 1
"""
_RAISE_FLOOR = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""
_GONE = 2**31 - 1


class PersonaCache:
    """Use through :class:`personas.store.PersonaStore`; one per process."""

    def __init__(
        self,
        redis: Redis,
        *,
        ttl_s: float = 300.0,
        l1_ttl_s: float = 30.0,
        l1_max: int = 2_048,
        namespace: str = "personae",
        op_timeout_s: float = 1.0,
    ) -> None:
        self._op_timeout = op_timeout_s
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._l1_ttl = l1_ttl_s
        self._l1_max = l1_max
        self._prefix = f"{namespace}:persona:"
        self._channel = f"{namespace}:persona-invalidate"
        self._l1: OrderedDict[str, tuple[Persona, float]] = OrderedDict()
        self._generation = 0  # bumped by every invalidation seen on this node
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fill = redis.register_script(_FILL)
        self.invalidations_seen = 0

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._listen(), name="persona-cache-invalidations")
        try:
            await asyncio.wait_for(self._listening.wait(), timeout=self._op_timeout * 3)
        except TimeoutError:
            log.warning("persona cache: invalidation channel not ready; L1 disabled until it is")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._listening.clear()
        self._l1.clear()

    async def get(self, key: str | uuid.UUID, loader: Loader) -> Persona | None:
        """The persona for an id or slug: L1, then L2, then ``loader`` (PostgreSQL)."""
        skey = _skey(key)
        if self._listening.is_set():
            hit = self._l1.get(skey)
            if hit is not None and hit[1] > time.monotonic():
                return hit[0]
        generation = self._generation
        persona, redis_ok = await self._l2_get(skey)
        if persona is None:
            persona = await loader(key)
            if persona is None:
                return None
            if redis_ok:
                await self._l2_fill(persona)
        if self._listening.is_set() and generation == self._generation:
            self._l1_put(persona)
        return persona

    async def invalidate(self, persona_id: uuid.UUID, slug: str, version: int | None) -> None:
        """Forget a persona here and on every node; call after the write committed with
        the version it wrote (None: the persona is gone)."""
        self._drop_local(persona_id, slug)
        floor = _GONE if version is None else version
        try:
            async with asyncio.timeout(self._op_timeout):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.eval(_RAISE_FLOOR, 1, self._prefix + f"floor:{persona_id}", floor)
                    pipe.delete(self._prefix + f"id:{persona_id}", self._prefix + f"slug:{slug}")
                    pipe.publish(self._channel, json.dumps({"id": str(persona_id), "slug": slug}))
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            # The L2 entry may now outlive the write until its TTL; say so loudly.
            log.error("persona cache: invalidation of %s failed: %s", persona_id, exc)

    # L2 -----------------------------------------------------------------------------

    async def _l2_get(self, skey: str) -> tuple[Persona | None, bool]:
        """The cached persona (or None), and whether Redis answered."""
        try:
            async with asyncio.timeout(self._op_timeout):
                if skey.startswith("slug:"):
                    pid = await self._redis.get(self._prefix + skey)
                    if pid is None:
                        return None, True
                    skey = f"id:{_text(pid)}"
                raw = await self._redis.get(self._prefix + skey)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("persona cache: redis unavailable, reading from the database: %s", exc)
            return None, False
        return (None if raw is None else _decode(raw)), True

    async def _l2_fill(self, persona: Persona) -> None:
        try:
            async with asyncio.timeout(self._op_timeout):
                await self._fill(
                    keys=[
                        self._prefix + f"floor:{persona.id}",
                        self._prefix + f"id:{persona.id}",
                        self._prefix + f"slug:{persona.slug}",
                    ],
                    args=[persona.version, _encode(persona), str(persona.id), self._ttl_ms],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("persona cache: fill of %s failed: %s", persona.id, exc)

    # L1 and invalidation channel --------------------------------------------------

    def _l1_put(self, persona: Persona) -> None:
        if self._l1_ttl <= 0:
            return
        expires = time.monotonic() + self._l1_ttl
        for k in (f"id:{persona.id}", f"slug:{persona.slug}"):
            self._l1[k] = (persona, expires)
            self._l1.move_to_end(k)
        while len(self._l1) > self._l1_max:
            self._l1.popitem(last=False)

    def _drop_local(self, persona_id: uuid.UUID, slug: str) -> None:
        self._generation += 1
        self._l1.pop(f"id:{persona_id}", None)
        self._l1.pop(f"slug:{slug}", None)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._listening.set()
                delay = 0.1
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        body = json.loads(message["data"])
                        self._drop_local(uuid.UUID(body["id"]), str(body["slug"]))
                        self.invalidations_seen += 1
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("persona cache: bad invalidation message: %s", exc)
            except (RedisError, OSError) as exc:
                log.warning("persona cache: invalidation channel lost (%s); retrying", exc)
            finally:
                # without the channel, L1 could miss another node's write: stop trusting it
                self._listening.clear()
                self._l1.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _skey(key: str | uuid.UUID) -> str:
    if isinstance(key, uuid.UUID):
        return f"id:{key}"
    try:
        return f"id:{uuid.UUID(key)}"
    except ValueError:
        return f"slug:{key}"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _encode(persona: Persona) -> str:
    return json.dumps(asdict(persona), default=_json_default, separators=(",", ":"))


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decode(raw: bytes | str) -> Persona:
    d: dict[str, Any] = json.loads(raw)
    return Persona(
        id=uuid.UUID(d["id"]),
        slug=d["slug"],
        name=d["name"],
        description=d["description"],
        role=d["role"],
        system_prompt=d["system_prompt"],
        domains=tuple(d["domains"]),
        is_real=d["is_real"],
        persona_type=d["persona_type"],
        birth_date=dt.date.fromisoformat(d["birth_date"]) if d["birth_date"] else None,
        avatar_url=d["avatar_url"],
        version=d["version"],
        active=d["active"],
        protected=d["protected"],
        traits=tuple(Trait(**t) for t in d["traits"]),
        beliefs=tuple(Belief(**b) for b in d["beliefs"]),
        modes=tuple(Mode(**m) for m in d["modes"]),
        style=StyleConfig(**d["style"]),
        created_at=dt.datetime.fromisoformat(d["created_at"]),
        updated_at=dt.datetime.fromisoformat(d["updated_at"]),
        channels=tuple(Channel(**c) for c in d.get("channels", ())),
    )
