"""PersonaStore: the persona API the rest of Personae uses — cached reads, writes that
invalidate the cache on every node once they commit."""

from __future__ import annotations

import builtins
import uuid

from personas.cache import PersonaCache
from personas.channels import ChannelCheck
from personas.definitions import PersonaDef, PersonaPatch, SettingsPatch
from personas.errors import PersonaNotFound
from personas.replies import record_channel
from personas.repository import PersonaRepository
from personas.types import (
    Actor,
    Analysis,
    Channel,
    ImportResult,
    Persona,
    PersonaPage,
    PersonaVersion,
    SearchHit,
)


class PersonaStore:
    def __init__(self, repository: PersonaRepository, cache: PersonaCache) -> None:
        self.repository = repository
        self._cache = cache

    async def get(self, key: str | uuid.UUID) -> Persona:
        """A live persona by id or slug, from the cache when it can be."""
        persona = await self._cache.get(key, self.repository.find)
        if persona is None:
            raise PersonaNotFound(str(key))
        return persona

    async def list(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        domain: str | None = None,
        persona_type: str | None = None,
        active: bool | None = None,
    ) -> PersonaPage:
        return await self.repository.list(
            offset=offset, limit=limit, domain=domain, persona_type=persona_type, active=active
        )

    async def search(self, query: str, *, limit: int = 20) -> builtins.list[SearchHit]:
        return await self.repository.search(query, limit=limit)

    async def live_versions(self) -> dict[uuid.UUID, int]:
        """Every live persona's current version, by id (read from PostgreSQL)."""
        return await self.repository.live_versions()

    async def versions(self, key: str | uuid.UUID) -> builtins.list[PersonaVersion]:
        return await self.repository.versions(key)

    async def analyses(self, key: str | uuid.UUID) -> builtins.list[Analysis]:
        return await self.repository.analyses(key)

    async def create(
        self,
        definition: PersonaDef,
        actor: Actor,
        *,
        reason: str = "created",
        analysis: Analysis | None = None,
    ) -> Persona:
        persona = await self.repository.create(definition, actor, reason=reason, analysis=analysis)
        # a soft-deleted persona may have held this slug in the cache
        await self._cache.invalidate(persona.id, persona.slug, persona.version)
        return persona

    async def update(
        self, key: str | uuid.UUID, definition: PersonaDef, actor: Actor, *, reason: str = "updated"
    ) -> Persona:
        return await self._changed(
            await self.repository.update(key, definition, actor, reason=reason)
        )

    async def patch_settings(
        self, key: str | uuid.UUID, patch: SettingsPatch, actor: Actor, *, reason: str = ""
    ) -> Persona:
        return await self._changed(
            await self.repository.patch_settings(key, patch, actor, reason=reason)
        )

    async def edit(
        self, key: str | uuid.UUID, patch: PersonaPatch, actor: Actor, *, reason: str = ""
    ) -> Persona:
        return await self._changed(await self.repository.edit(key, patch, actor, reason=reason))

    async def version(self, key: str | uuid.UUID, version: int) -> PersonaVersion:
        return await self.repository.version(key, version)

    async def restore(self, key: str | uuid.UUID, version: int, actor: Actor) -> Persona:
        return await self._changed(await self.repository.restore(key, version, actor))

    async def delete(self, key: str | uuid.UUID, actor: Actor) -> None:
        gone = await self.repository.delete(key, actor)
        await self._cache.invalidate(gone.id, gone.slug, None)

    async def upsert(
        self, definition: PersonaDef, actor: Actor, *, force: bool = False
    ) -> ImportResult:
        """Import ``definition``: see :meth:`PersonaRepository.upsert` (a persona a user
        changed since its import is ``kept`` unless ``force``)."""
        result = await self.repository.upsert(definition, actor, force=force)
        if result.outcome in ("created", "updated"):
            persona = await self.repository.get(result.slug)
            await self._cache.invalidate(persona.id, persona.slug, persona.version)
        return result

    async def record_channel(
        self, message_id: uuid.UUID, persona_id: uuid.UUID, channel: Channel, text: str
    ) -> ChannelCheck:
        """Record the channel a reply was written for and whether it met its overlay."""
        return await record_channel(self.repository.pool, message_id, persona_id, channel, text)

    async def _changed(self, persona: Persona) -> Persona:
        await self._cache.invalidate(persona.id, persona.slug, persona.version)
        return persona
