"""PostgreSQL persona repository: the source of truth for personas and their versions.

Every write runs in one transaction that locks the persona row, writes the child tables,
bumps ``version`` and stores a full snapshot in ``persona_versions``."""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from personas.definitions import (
    PersonaDef,
    PersonaPatch,
    SettingsPatch,
    apply_patch,
    apply_persona_patch,
    to_definition,
)
from personas.errors import (
    InvalidPersonaChange,
    PersonaExists,
    PersonaNotFound,
    PersonaProtected,
    PersonaReadOnly,
    VersionNotFound,
)
from personas.types import (
    Actor,
    Analysis,
    Belief,
    Channel,
    ImportResult,
    Mode,
    Persona,
    PersonaPage,
    PersonaVersion,
    SearchHit,
    StyleConfig,
    Trait,
)

_COLUMNS = """
p.id, p.slug, p.name, p.description, p.role, p.system_prompt, p.domains, p.is_real,
       p.persona_type, p.birth_date, p.avatar_url, p.version, p.active, p.protected,
       p.created_at, p.updated_at, p.channels,
       (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.name), '[]')
          FROM traits t WHERE t.persona_id = p.id OR t.persona_id IS NULL) AS traits,
       (SELECT coalesce(jsonb_agg(to_jsonb(b) ORDER BY b.position), '[]')
          FROM beliefs b WHERE b.persona_id = p.id) AS beliefs,
       (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.position), '[]')
          FROM modes m WHERE m.persona_id = p.id) AS modes,
       (SELECT to_jsonb(s) FROM style_config s WHERE s.persona_id = p.id) AS style
"""
_PERSONA_SELECT = f"SELECT {_COLUMNS} FROM personas p"

FIND_BY_ID_SQL = _PERSONA_SELECT + " WHERE p.id = %s AND p.deleted_at IS NULL"
FIND_BY_SLUG_SQL = _PERSONA_SELECT + " WHERE p.slug = %s AND p.deleted_at IS NULL"
# a page of personas: {where} is _LIVE and the filters asked for, joined with AND
COUNT_PERSONAS_SQL = "SELECT count(*) FROM personas p WHERE {where}"
LIST_PERSONAS_SQL = _PERSONA_SELECT + " WHERE {where} ORDER BY p.name, p.slug OFFSET %s LIMIT %s"
_LIVE = "p.deleted_at IS NULL"
_WITH_DOMAIN = "p.domains @> ARRAY[%s]::text[]"
_OF_TYPE = "p.persona_type = %s"
_ACTIVE = "p.active = %s"
SEARCH_SQL = (
    f"SELECT ts_rank_cd(p.search_tsv, q.q) AS rank, {_COLUMNS}"
    " FROM personas p, websearch_to_tsquery('english', %s) AS q(q)"
    " WHERE p.deleted_at IS NULL AND p.search_tsv @@ q.q"
    " ORDER BY rank DESC, p.name LIMIT %s"
)
LIVE_VERSIONS_SQL = "SELECT id, version FROM personas WHERE deleted_at IS NULL"
VERSION_SQL = (
    "SELECT persona_id, version, reason, created_by, created_at, snapshot"
    " FROM persona_versions WHERE persona_id = %s AND version = %s"
)
VERSIONS_SQL = (
    "SELECT persona_id, version, reason, created_by, created_at, snapshot"
    " FROM persona_versions WHERE persona_id = %s ORDER BY version"
)
SNAPSHOT_SQL = "SELECT snapshot FROM persona_versions WHERE persona_id = %s AND version = %s"
CORE_TRAITS_SQL = "SELECT to_jsonb(t) AS t FROM traits t WHERE persona_id IS NULL ORDER BY name"
ANALYSES_SQL = (
    "SELECT kind, samples, words, confidence, fingerprint, created_by, created_at"
    " FROM persona_analyses WHERE persona_id = %s ORDER BY created_at DESC, id DESC"
)

SLUG_TAKEN_SQL = "SELECT 1 FROM personas WHERE slug = %s AND deleted_at IS NULL FOR UPDATE"
CREATE_PERSONA_SQL = "INSERT INTO personas (id, slug, name) VALUES (%s, %s, %s)"
CREATE_ANALYSIS_SQL = (
    "INSERT INTO persona_analyses (persona_id, kind, samples, words,"
    " confidence, fingerprint, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
LOCK_VERSION_SQL = "SELECT version FROM personas WHERE id = %s AND deleted_at IS NULL FOR UPDATE"
SOFT_DELETE_SQL = (
    "UPDATE personas SET deleted_at = now(), active = false WHERE id = %s AND deleted_at IS NULL"
)
WRITE_PERSONA_SQL = (
    "UPDATE personas SET name = %s, description = %s, role = %s, system_prompt = %s,"
    " domains = %s, is_real = %s, persona_type = %s, birth_date = %s, avatar_url = %s,"
    " active = %s, protected = %s, version = %s, channels = %s, updated_at = now()"
    " WHERE id = %s"
)
# a new version replaces the persona's rows in these tables
CLEAR_DEFINITION_SQL = tuple(
    f"DELETE FROM {table} WHERE persona_id = %s"
    for table in ("traits", "beliefs", "modes", "style_config")
)
INSERT_TRAIT_SQL = (
    "INSERT INTO traits (persona_id, name, type, value, description, source,"
    " evolves, locked) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_BELIEF_SQL = (
    "INSERT INTO beliefs (persona_id, position, text, source) VALUES (%s, %s, %s, %s)"
)
INSERT_MODE_SQL = "INSERT INTO modes (persona_id, position, mode, enabled) VALUES (%s, %s, %s, %s)"
INSERT_STYLE_SQL = (
    "INSERT INTO style_config (persona_id, humour_usage, emotional_style, language_style,"
    " voice_enabled, default_mode, temperature, max_tokens)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_VERSION_SQL = (
    "INSERT INTO persona_versions (persona_id, version, snapshot, reason, created_by, imported)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
VERSION_IMPORTED_SQL = (
    "SELECT imported FROM persona_versions WHERE persona_id = %s AND version = %s"
)
SEARCH_TSV_SQL = """
UPDATE personas p SET search_tsv =
    setweight(to_tsvector('english', p.name), 'A')
 || setweight(to_tsvector('english', array_to_string(p.domains, ' ') || ' ' || p.role), 'A')
 || setweight(to_tsvector('english', p.description), 'B')
 || setweight(to_tsvector('english', coalesce(
        (SELECT string_agg(b.text, ' ') FROM beliefs b WHERE b.persona_id = p.id), '')), 'C')
 WHERE p.id = %s
"""


class PersonaRepository:
    """Reads and writes personas in PostgreSQL. Prefer :class:`personas.store.PersonaStore`
    for reads on the turn path: it caches."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        return self._pool

    # reads ------------------------------------------------------------------------------

    async def get(self, key: str | uuid.UUID) -> Persona:
        """A live persona by id or slug; raises :class:`PersonaNotFound`."""
        persona = await self.find(key)
        if persona is None:
            raise PersonaNotFound(str(key))
        return persona

    async def find(self, key: str | uuid.UUID) -> Persona | None:
        statement, arg = _find_statement(key)
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(statement, (arg,))
            row = await cur.fetchone()
        return None if row is None else _persona(row)

    async def list(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        domain: str | None = None,
        persona_type: str | None = None,
        active: bool | None = None,
    ) -> PersonaPage:
        """A page of live personas ordered by name, with the total that match."""
        clauses = [_LIVE]
        args: list[object] = []
        if domain is not None:
            clauses.append(_WITH_DOMAIN)
            args.append(domain.strip().lower())
        if persona_type is not None:
            clauses.append(_OF_TYPE)
            args.append(persona_type)
        if active is not None:
            clauses.append(_ACTIVE)
            args.append(active)
        where = " AND ".join(clauses)
        async with self._pool.connection() as conn:
            cur = await conn.execute(COUNT_PERSONAS_SQL.format(where=where), args)
            total = (await cur.fetchone() or (0,))[0]
            dcur = await conn.cursor(row_factory=dict_row).execute(
                LIST_PERSONAS_SQL.format(where=where), [*args, offset, limit]
            )
            rows = await dcur.fetchall()
        return PersonaPage(tuple(_persona(r) for r in rows), int(total), offset, limit)

    async def search(self, query: str, *, limit: int = 20) -> builtins.list[SearchHit]:
        """Full-text search over name, role, domains, description and beliefs."""
        if not query.strip():
            return []
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(SEARCH_SQL, (query, limit))
            rows = await cur.fetchall()
        return [SearchHit(_persona(r), float(r["rank"])) for r in rows]

    async def version(self, key: str | uuid.UUID, version: int) -> PersonaVersion:
        persona = await self.get(key)
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(
                VERSION_SQL, (persona.id, version)
            )
            row = await cur.fetchone()
        if row is None:
            raise VersionNotFound(persona.slug, version)
        return PersonaVersion(**row)

    async def versions(self, key: str | uuid.UUID) -> builtins.list[PersonaVersion]:
        persona = await self.get(key)
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(VERSIONS_SQL, (persona.id,))
            rows = await cur.fetchall()
        return [PersonaVersion(**r) for r in rows]

    async def core_traits(self) -> tuple[Trait, ...]:
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(CORE_TRAITS_SQL)
            rows = await cur.fetchall()
        return tuple(_trait(r["t"]) for r in rows)

    async def live_versions(self) -> dict[uuid.UUID, int]:
        """Every live persona's current version, by id."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(LIVE_VERSIONS_SQL)
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    # writes -----------------------------------------------------------------------------

    async def create(
        self,
        definition: PersonaDef,
        actor: Actor,
        *,
        reason: str = "created",
        analysis: Analysis | None = None,
        imported: bool = False,
    ) -> Persona:
        """A new persona at version 1; with ``analysis`` (what it was generated from),
        stored in the same transaction; ``imported``: an import writes it (see
        :meth:`upsert`)."""
        _may_edit(actor)
        if definition.protected and not actor.is_admin:
            raise PersonaProtected(definition.slug)
        persona_id = uuid.uuid4()
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(SLUG_TAKEN_SQL, (definition.slug,))
            if await cur.fetchone():
                raise PersonaExists(definition.slug)
            await conn.execute(CREATE_PERSONA_SQL, (persona_id, definition.slug, definition.name))
            await _write(conn, persona_id, definition, version=1)
            await _snapshot(conn, persona_id, 1, definition, reason, actor, imported)
            if analysis is not None:
                await conn.execute(
                    CREATE_ANALYSIS_SQL,
                    (
                        persona_id,
                        analysis.kind,
                        analysis.samples,
                        analysis.words,
                        analysis.confidence,
                        Jsonb(dict(analysis.fingerprint)),
                        actor.name,
                    ),
                )
        return await self.get(persona_id)

    async def analyses(self, key: str | uuid.UUID) -> builtins.list[Analysis]:
        """What the persona was generated from, newest first."""
        persona = await self.get(key)
        async with self._pool.connection() as conn:
            cur = await conn.cursor(row_factory=dict_row).execute(ANALYSES_SQL, (persona.id,))
            rows = await cur.fetchall()
        return [Analysis(**r) for r in rows]

    async def update(
        self, key: str | uuid.UUID, definition: PersonaDef, actor: Actor, *, reason: str = "updated"
    ) -> Persona:
        """Replace a persona's definition; a new version unless nothing changed."""
        persona, _ = await self._replace(key, definition, actor, reason)
        return persona

    async def patch_settings(
        self, key: str | uuid.UUID, patch: SettingsPatch, actor: Actor, *, reason: str = ""
    ) -> Persona:
        """Apply a partial change of traits, modes and style as a new version."""
        current = await self.get(key)
        try:
            definition = apply_patch(to_definition(current), patch)
        except ValueError as exc:
            raise InvalidPersonaChange(f"persona {current.slug!r}: {exc}") from None
        persona, _ = await self._replace(
            current.id, definition, actor, reason or "settings updated", expect=current.version
        )
        return persona

    async def edit(
        self, key: str | uuid.UUID, patch: PersonaPatch, actor: Actor, *, reason: str = ""
    ) -> Persona:
        """Replace the parts of a persona ``patch`` gives, as a new version (none when
        nothing changes); the reason names the parts unless one is given."""
        current = await self.get(key)
        try:
            definition = apply_persona_patch(to_definition(current), patch)
        except ValueError as exc:
            raise InvalidPersonaChange(f"persona {current.slug!r}: {exc}") from None
        parts = sorted(patch.model_fields_set - {"reason"})
        why = reason or patch.reason or ("edited " + ", ".join(parts) if parts else "edited")
        persona, _ = await self._replace(
            current.id, definition, actor, why[:500], expect=current.version
        )
        return persona

    async def restore(self, key: str | uuid.UUID, version: int, actor: Actor) -> Persona:
        """Make an old version current again, recorded as a new version."""
        current = await self.get(key)
        async with self._pool.connection() as conn:
            cur = await conn.execute(SNAPSHOT_SQL, (current.id, version))
            row = await cur.fetchone()
        if row is None:
            raise VersionNotFound(current.slug, version)
        definition = PersonaDef.model_validate({**row[0], "slug": current.slug})
        persona, _ = await self._replace(
            current.id, definition, actor, f"restored version {version}", force=True
        )
        return persona

    async def delete(self, key: str | uuid.UUID, actor: Actor) -> Persona:
        """Soft-delete: the row and its versions stay, the persona disappears from reads."""
        current = await self.get(key)
        _may_edit(actor)
        if current.protected and not actor.is_admin:
            raise PersonaProtected(current.slug)
        async with self._pool.connection() as conn:
            await conn.execute(SOFT_DELETE_SQL, (current.id,))
        return current

    async def upsert(
        self, definition: PersonaDef, actor: Actor, *, force: bool = False
    ) -> ImportResult:
        """Create or update by slug, as an import: an identical definition changes
        nothing, and a persona whose current version an import did not write (a user
        changed it since) is kept as it is (``kept``) unless ``force``."""
        current = await self.find(definition.slug)
        if current is None:
            try:
                created = await self.create(definition, actor, imported=True)
            except PersonaExists:  # another importer won the race
                return await self.upsert(definition, actor, force=force)
            return ImportResult(created.slug, "created", created.version)
        if to_definition(current).canonical() == definition.canonical():
            return ImportResult(current.slug, "unchanged", current.version)
        if not force and not await self._imported(current):
            return ImportResult(current.slug, "kept", current.version)
        # expect: a change made since it was read is not overwritten unseen
        persona, changed = await self._replace(
            current.id, definition, actor, "imported", expect=current.version, imported=True
        )
        return ImportResult(persona.slug, "updated" if changed else "unchanged", persona.version)

    async def _imported(self, persona: Persona) -> bool:
        """Whether an import wrote the persona's current version."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(VERSION_IMPORTED_SQL, (persona.id, persona.version))
            row = await cur.fetchone()
        return bool(row and row[0])

    async def _replace(
        self,
        key: str | uuid.UUID,
        definition: PersonaDef,
        actor: Actor,
        reason: str,
        *,
        force: bool = False,
        expect: int | None = None,
        imported: bool = False,
    ) -> tuple[Persona, bool]:
        current = await self.get(key)
        _may_edit(actor)
        if definition.slug != current.slug:
            raise InvalidPersonaChange(f"persona {current.slug!r}: the slug cannot change")
        if (current.protected or definition.protected) and not actor.is_admin:
            raise PersonaProtected(current.slug)
        if not force and to_definition(current).canonical() == definition.canonical():
            return current, False
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(LOCK_VERSION_SQL, (current.id,))
            row = await cur.fetchone()
            if row is None:
                raise PersonaNotFound(str(key))
            if expect is not None and row[0] != expect:
                raise InvalidPersonaChange(
                    f"persona {current.slug!r} changed meanwhile (version {row[0]}); retry"
                )
            version = int(row[0]) + 1
            await _write(conn, current.id, definition, version=version)
            await _snapshot(conn, current.id, version, definition, reason, actor, imported)
        return await self.get(current.id), True


def _may_edit(actor: Actor) -> None:
    if not actor.can_edit:
        raise PersonaReadOnly(actor.name)


def _find_statement(key: str | uuid.UUID) -> tuple[str, object]:
    if isinstance(key, uuid.UUID):
        return FIND_BY_ID_SQL, key
    try:
        return FIND_BY_ID_SQL, uuid.UUID(key)
    except ValueError:
        return FIND_BY_SLUG_SQL, key


async def _write(
    conn: AsyncConnection[Any], persona_id: uuid.UUID, d: PersonaDef, *, version: int
) -> None:
    await conn.execute(
        WRITE_PERSONA_SQL,
        (
            d.name,
            d.description,
            d.role,
            d.system_prompt,
            list(d.domains),
            d.is_real,
            d.persona_type,
            d.birth_date,
            d.avatar_url,
            d.active,
            d.protected,
            version,
            Jsonb([c.model_dump() for c in d.channels]),
            persona_id,
        ),
    )
    for statement in CLEAR_DEFINITION_SQL:
        await conn.execute(statement, (persona_id,))
    async with conn.cursor() as cur:
        if d.traits:
            await cur.executemany(
                INSERT_TRAIT_SQL,
                [
                    (
                        persona_id,
                        t.name,
                        t.type,
                        t.value,
                        t.description,
                        t.source,
                        t.evolves,
                        t.locked,
                    )
                    for t in d.traits
                ],
            )
        if d.beliefs:
            await cur.executemany(
                INSERT_BELIEF_SQL,
                [(persona_id, i, b.text, b.source) for i, b in enumerate(d.beliefs)],
            )
        if d.modes:
            await cur.executemany(
                INSERT_MODE_SQL,
                [(persona_id, i, m.mode, m.enabled) for i, m in enumerate(d.modes)],
            )
    s = d.style
    await conn.execute(
        INSERT_STYLE_SQL,
        (
            persona_id,
            s.humour_usage,
            s.emotional_style,
            s.language_style,
            s.voice_enabled,
            s.default_mode,
            s.temperature,
            s.max_tokens,
        ),
    )
    await conn.execute(SEARCH_TSV_SQL, (persona_id,))


async def _snapshot(
    conn: AsyncConnection[Any],
    persona_id: uuid.UUID,
    version: int,
    d: PersonaDef,
    reason: str,
    actor: Actor,
    imported: bool,
) -> None:
    await conn.execute(
        INSERT_VERSION_SQL,
        (persona_id, version, Jsonb(d.canonical()), reason, actor.name, imported),
    )


def _trait(t: dict[str, Any]) -> Trait:
    return Trait(
        name=t["name"],
        type=t["type"],
        value=float(t["value"]),
        description=t["description"],
        source=t["source"],
        inherited=bool(t["inherited"]),
        evolves=bool(t["evolves"]),
        locked=bool(t["locked"]),
    )


def _persona(row: dict[str, Any]) -> Persona:
    merged: dict[str, Trait] = {}
    for raw in row["traits"]:
        trait = _trait(raw)
        if trait.inherited and trait.name in merged:
            continue
        merged[trait.name] = trait
    style = row["style"] or {}
    created: dt.datetime = row["created_at"]
    return Persona(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        description=row["description"],
        role=row["role"],
        system_prompt=row["system_prompt"],
        domains=tuple(row["domains"]),
        is_real=row["is_real"],
        persona_type=row["persona_type"],
        birth_date=row["birth_date"],
        avatar_url=row["avatar_url"],
        version=row["version"],
        active=row["active"],
        protected=row["protected"],
        traits=tuple(sorted(merged.values(), key=lambda t: (t.inherited, t.name))),
        beliefs=tuple(Belief(b["text"], b["source"]) for b in row["beliefs"]),
        modes=tuple(Mode(m["mode"], m["enabled"]) for m in row["modes"]),
        style=StyleConfig(
            humour_usage=float(style.get("humour_usage", 0.3)),
            emotional_style=style.get("emotional_style", "balanced"),
            language_style=style.get("language_style", "conversational"),
            voice_enabled=bool(style.get("voice_enabled", False)),
            default_mode=style.get("default_mode"),
            temperature=float(style.get("temperature", 0.7)),
            max_tokens=int(style.get("max_tokens", 512)),
        ),
        created_at=created,
        updated_at=row["updated_at"],
        channels=tuple(Channel(**c) for c in row.get("channels") or ()),
    )
