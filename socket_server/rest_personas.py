"""REST routes of personas: browse and search, create, patch settings, versions and
restore, soft delete (editors; protected personas need an admin), the persona's
embedding and its trait profile. The studio's routes are in
:mod:`socket_server.rest_studio`."""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import Field

from personas import Persona, PersonaDef, SettingsPatch
from runtime.infra.catalog import embedding_text
from runtime.views import (
    PersonaEmbedding,
    PersonaPage,
    PersonaTraits,
    PersonaVersions,
    PersonaView,
    RankedPersona,
    StudioPersona,
)
from socket_server.auth import principal, require_editor
from socket_server.http_io import (
    Query,
    json_view,
    path_int,
    path_key,
    read_json,
    read_query,
)
from socket_server.keys import CHAT, SERVICES
from socket_server.routes import Route

SEARCH_CAP = 1_000
"""Full-text search ranks at most this many personas before filters and paging."""


class PersonaListQuery(Query):
    offset: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=50, ge=1, le=200)
    domain: str | None = Field(default=None, min_length=1, max_length=60)
    type: Literal["historical", "fictional", "synthetic"] | None = None
    active: bool | None = None
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="full-text search over name, role, domains, description and beliefs; "
        "results are ordered by rank and carry it",
    )


class TraitsQuery(Query):
    session_id: uuid.UUID | None = None


async def list_personas(request: web.Request) -> web.Response:
    query = read_query(request, PersonaListQuery)
    store = request.config_dict[SERVICES].personas
    items: list[RankedPersona | PersonaView]
    if query.q is None:
        page = await store.list(
            offset=query.offset,
            limit=query.limit,
            domain=query.domain,
            persona_type=query.type,
            active=query.active,
        )
        items = [PersonaView.of(p) for p in page.items]
        total = page.total
    else:
        hits = [h for h in await store.search(query.q, limit=SEARCH_CAP) if _keep(h.persona, query)]
        window = hits[query.offset : query.offset + query.limit]
        items = [RankedPersona.ranked(h.persona, h.rank) for h in window]
        total = len(hits)
    return json_view(PersonaPage(items=items, total=total, offset=query.offset, limit=query.limit))


def _keep(p: Persona, query: PersonaListQuery) -> bool:
    return (
        (query.domain is None or query.domain.strip().lower() in p.domains)
        and (query.type is None or p.persona_type == query.type)
        and (query.active is None or p.active == query.active)
    )


async def get_persona(request: web.Request) -> web.Response:
    persona = await request.config_dict[SERVICES].personas.get(path_key(request))
    return json_view(StudioPersona.of(persona))


async def create_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "create personas")
    definition = await read_json(request, PersonaDef)
    persona = await request.config_dict[SERVICES].personas.create(definition, who.actor)
    return json_view(
        StudioPersona.of(persona), 201, headers={"Location": f"/api/personas/{persona.id}"}
    )


async def patch_settings(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    key = path_key(request)
    patch = await read_json(request, SettingsPatch)
    persona = await request.config_dict[SERVICES].personas.patch_settings(key, patch, who.actor)
    return json_view(StudioPersona.of(persona))


async def list_versions(request: web.Request) -> web.Response:
    versions = await request.config_dict[SERVICES].personas.versions(path_key(request))
    # snapshots hold the system prompt, which persona views never show to users
    return json_view(PersonaVersions.of(versions, snapshots=principal(request).is_editor))


async def restore_version(request: web.Request) -> web.Response:
    who = require_editor(request, "restore persona versions")
    key, version = path_key(request), path_int(request, "version")
    persona = await request.config_dict[SERVICES].personas.restore(key, version, who.actor)
    return json_view(StudioPersona.of(persona))


async def delete_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "delete personas")
    await request.config_dict[SERVICES].personas.delete(path_key(request), who.actor)
    return web.Response(status=204)


async def persona_embedding(request: web.Request) -> web.Response:
    services = request.config_dict[SERVICES]
    persona = await services.personas.get(path_key(request))
    vector = await services.memory.embedder.embed_one(embedding_text(persona))
    return json_view(
        PersonaEmbedding(
            persona_id=persona.id,
            model=services.settings.embedding_model,
            dim=int(vector.shape[0]),
            vector=[float(x) for x in vector],
        )
    )


async def persona_traits(request: web.Request) -> web.Response:
    query = read_query(request, TraitsQuery)
    chat = request.config_dict[CHAT]
    view = await chat.traits(principal(request), path_key(request), query.session_id)
    return json_view(PersonaTraits.of(view))


_P = "/personas"
_EDITOR = "editor; a protected persona needs an admin"
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        _P,
        list_personas,
        "List personas, filtered, or search them with ?q=",
        "personas",
        response=PersonaPage,
        query=PersonaListQuery,
    ),
    Route(
        "POST",
        _P,
        create_persona,
        "Create a persona (editor; only an admin may make it protected)",
        "personas",
        status=201,
        response=StudioPersona,
        body=PersonaDef,
        errors=(403, 409),
    ),
    Route(
        "GET",
        _P + "/{key}",
        get_persona,
        "One persona by id or slug",
        "personas",
        response=StudioPersona,
        errors=(404,),
    ),
    Route(
        "DELETE",
        _P + "/{key}",
        delete_persona,
        f"Soft-delete a persona ({_EDITOR})",
        "personas",
        status=204,
        errors=(403, 404),
    ),
    Route(
        "PATCH",
        _P + "/{key}/settings",
        patch_settings,
        f"Change traits (set/increase/decrease), modes and style as a new version ({_EDITOR})",
        "personas",
        response=StudioPersona,
        body=SettingsPatch,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/versions",
        list_versions,
        "The persona's versions (snapshots for editors and admins)",
        "personas",
        response=PersonaVersions,
        errors=(404,),
    ),
    Route(
        "POST",
        _P + "/{key}/versions/{version}/restore",
        restore_version,
        f"Make an old version current again, as a new version ({_EDITOR})",
        "personas",
        response=StudioPersona,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/embed",
        persona_embedding,
        "The persona's embedding (name, role, description, domains, beliefs)",
        "personas",
        response=PersonaEmbedding,
        errors=(404,),
    ),
    Route(
        "GET",
        _P + "/{key}/traits",
        persona_traits,
        "Configured traits, the observed profile and drift",
        "personas",
        response=PersonaTraits,
        query=TraitsQuery,
        errors=(403, 404),
    ),
)
