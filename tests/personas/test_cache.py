from __future__ import annotations

import asyncio
import uuid
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from personas import Actor, Persona, PersonaCache, PersonaRepository, PersonaStore
from tests.personas.factory import definition

USER = Actor("alice")


async def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_write_on_one_node_invalidates_the_other(
    db: AsyncConnectionPool[Any], redis: Redis, cache_namespace: str, redis_url: str
) -> None:
    other_redis: Redis = Redis.from_url(redis_url)
    repo = PersonaRepository(db)
    try:
        async with (
            PersonaCache(redis, namespace=cache_namespace) as cache_a,
            PersonaCache(other_redis, namespace=cache_namespace) as cache_b,
        ):
            node_a, node_b = PersonaStore(repo, cache_a), PersonaStore(repo, cache_b)
            created = await node_a.create(definition(), USER)
            # both nodes now hold version 1 in their L1
            assert (await node_a.get("test-tutor")).version == 1
            assert (await node_b.get("test-tutor")).version == 1
            seen = cache_b.invalidations_seen
            updated = await node_a.update(created.id, definition(name="New Name"), USER)
            # the writing node never sees the old version, not even for a moment
            assert (await node_a.get("test-tutor")).name == "New Name"
            await _wait_for(lambda: cache_b.invalidations_seen > seen)
            assert (await node_b.get(created.id)) == updated
            assert (await node_b.get("test-tutor")).name == "New Name"
            # deletes propagate the same way
            seen = cache_b.invalidations_seen
            await node_a.delete(created.id, USER)
            await _wait_for(lambda: cache_b.invalidations_seen > seen)
            assert await cache_b.get("test-tutor", repo.find) is None
    finally:
        await other_redis.aclose()


async def test_reads_are_served_from_cache(store: PersonaStore) -> None:
    created = await store.create(definition(), USER)
    calls = 0

    async def counting(key: str | uuid.UUID) -> Persona | None:
        nonlocal calls
        calls += 1
        return await store.repository.find(key)

    cache: PersonaCache = store._cache
    for _ in range(5):
        assert (await cache.get(created.id, counting)) == created
    assert calls <= 1


async def test_l2_survives_a_new_process(
    store: PersonaStore, redis: Redis, cache_namespace: str
) -> None:
    created = await store.create(definition(), USER)
    await store.get(created.id)  # fills L2

    async def no_db(key: str | uuid.UUID) -> Persona | None:
        raise AssertionError("should have come from Redis")

    async with PersonaCache(redis, namespace=cache_namespace) as fresh:
        assert await fresh.get("test-tutor", no_db) == created


async def test_a_load_that_raced_a_write_cannot_refill_the_old_version(
    store: PersonaStore, redis: Redis, cache_namespace: str
) -> None:
    created = await store.create(definition(), USER)
    stale = await store.repository.get(created.id)
    await store.update(created.id, definition(name="Fresh"), USER)
    release = asyncio.Event()

    async def slow_stale_loader(key: str | uuid.UUID) -> Persona | None:
        await release.wait()
        return stale  # what a load begun before the write would have read

    async with PersonaCache(redis, namespace=cache_namespace) as racer:
        task = asyncio.create_task(racer.get(created.id, slow_stale_loader))
        await asyncio.sleep(0)
        release.set()
        assert (await task).version == 1
    # neither L2 nor a fresh node serves version 1 afterwards
    async with PersonaCache(redis, namespace=cache_namespace) as fresh:
        got = await fresh.get(created.id, store.repository.find)
        assert got is not None and got.name == "Fresh" and got.version == 2


async def test_redis_down_falls_back_to_database(db: AsyncConnectionPool[Any]) -> None:
    dead: Redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        async with PersonaCache(dead, namespace="unused", op_timeout_s=0.5) as cache:
            store = PersonaStore(PersonaRepository(db), cache)
            created = await store.create(definition(), USER)
            assert (await store.get("test-tutor")) == created
            updated = await store.update(created.id, definition(name="Still Works"), USER)
            assert (await store.get("test-tutor")) == updated
    finally:
        await dead.aclose()
