"""What a user may look at and change of what personas keep about them: their memories
(list, search, remember, forget, pin) and the personas' traits as seen in their
sessions. The chat service owns one; transports call it through
``ChatService.inspection``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.traits import DriftReport, ObservedProfile
from memory import MemoryFilter, MemoryKind, MemoryPage, MemoryRecord, ScoredMemory
from memory.record.transcripts import Session
from memory.service import NewMemory
from personas import Persona
from runtime.errors import ChatError
from runtime.infra.auth import Principal, speaker_name
from runtime.infra.ratelimit import RateLimited, RateLimiter
from runtime.services import Services

_REMEMBERED = uuid.UUID("0c5e9a52-7d1b-4d8e-b0a4-3f2e6c1d9a77")


@dataclass(frozen=True, slots=True)
class TraitsView:
    persona: Persona
    observed: ObservedProfile
    turns: int
    drift: DriftReport


class Inspection:
    def __init__(
        self,
        services: Services,
        session_for: Callable[[Principal, uuid.UUID], Awaitable[Session]],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.services = services
        self.session_for = session_for
        self._limiter = limiter
        self._searches = asyncio.Semaphore(services.settings.max_concurrent_searches)

    async def _scope(self, principal: Principal, persona: str, user: str | None) -> tuple[str, str]:
        p = await self.services.personas.get(persona)
        if user is not None and user != principal.user_id and not principal.is_admin:
            raise ChatError("forbidden", "only an admin may inspect another user's memories")
        return str(p.id), user or principal.user_id

    async def list_memories(
        self,
        principal: Principal,
        persona: str,
        *,
        session_id: uuid.UUID | None = None,
        kind: MemoryKind | None = None,
        user: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MemoryPage:
        persona_id, user_id = await self._scope(principal, persona, user)
        where = MemoryFilter(
            persona_id=persona_id,
            user_id=user_id,
            session_id=str(session_id) if session_id else None,
            kinds=frozenset({kind}) if kind else None,
        )
        return await self.services.memory.list(where, limit=limit, cursor=cursor)

    async def search_memories(
        self,
        principal: Principal,
        persona: str,
        query: str,
        *,
        k: int = 10,
        session_id: uuid.UUID | None = None,
        user: str | None = None,
    ) -> list[ScoredMemory]:
        persona_id, user_id = await self._scope(principal, persona, user)
        if self._searches.locked():
            # each search embeds and scans: past a few at once, the rest only queue
            # behind them and slow every turn of the process
            raise RateLimited("too many memory searches at once", 1.0)
        async with self._searches:
            return await self.services.memory.search(
                persona_id=persona_id,
                user_id=user_id,
                text=query,
                k=k,
                session_id=str(session_id) if session_id else None,
            )

    async def remember(
        self, principal: Principal, persona: str, statement: str, *, user: str | None = None
    ) -> MemoryRecord:
        """Remember ``statement`` as said by the user, outside any session: every turn of
        the user with the persona may recall it. The same statement remembered again (in
        any case or spacing) is the same memory, stored once: refreshed, not repeated."""
        text = statement.strip()
        if not text:
            raise ChatError("invalid_payload", "statement: must not be blank")
        limit = self.services.settings.max_message_chars
        if len(text) > limit:
            raise ChatError("text_too_long", f"statement: longer than {limit} characters")
        persona_id, user_id = await self._scope(principal, persona, user)
        if self._limiter is not None:
            await self._limiter.admit_statement(user_id)
        said = " ".join(text.split()).casefold()
        memory_id = uuid.uuid5(_REMEMBERED, f"{persona_id}\x1f{user_id}\x1f{said}")
        memory = self.services.memory
        before = await memory.index.get(memory_id, persona_id=persona_id, user_id=user_id)
        (record,) = await memory.remember(
            [
                NewMemory(
                    persona_id=persona_id,
                    user_id=user_id,
                    session_id=None,
                    speaker_name=speaker_name(user_id),
                    speaker_role="user",
                    text=text,
                    pinned=before is not None and before.pinned,  # a pin outlives a refresh
                    metadata={"source": "remember"},
                    id=memory_id,
                )
            ]
        )
        return record

    async def delete_memory(
        self, principal: Principal, persona: str, memory_id: uuid.UUID, *, user: str | None = None
    ) -> None:
        persona_id, user_id = await self._scope(principal, persona, user)
        await self.services.memory.delete(memory_id, persona_id=persona_id, user_id=user_id)

    async def pin_memory(
        self,
        principal: Principal,
        persona: str,
        memory_id: uuid.UUID,
        pinned: bool,
        *,
        user: str | None = None,
    ) -> MemoryRecord:
        persona_id, user_id = await self._scope(principal, persona, user)
        return await self.services.memory.set_pinned(
            memory_id, pinned, persona_id=persona_id, user_id=user_id
        )

    async def traits(
        self, principal: Principal, persona: str, session_id: uuid.UUID | None = None
    ) -> TraitsView:
        p = await self.services.personas.get(persona)
        tracker = self.services.agents.tracker
        if session_id is None and not principal.is_admin:
            # the persona-wide profile is built from every user's chats: admins only
            empty = ObservedProfile()
            return TraitsView(p, empty, 0, tracker.drift_of(p, empty))
        if session_id is not None:
            await self.session_for(principal, session_id)
        observed, turns = await tracker.profile(p.id, session_id)
        return TraitsView(p, observed, turns, await tracker.drift(p, session_id))
