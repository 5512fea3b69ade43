"""REST routes of the persona studio: edit a persona (whole or in part), diff two
versions, generate a draft persona from writing samples, search personas by meaning,
channel overlays and templates.

Editors and admins change personas; protected personas refuse editors (see
``docs/personas.md``)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import Field

from agents.traits.fingerprint import FingerprintError
from personas import PersonaDef
from personas.definitions import NAME_PATTERN, ChannelDef, PersonaPatch
from personas.templates import TEMPLATES
from runtime.usecases import studio
from runtime.views import (
    AnalysisView,
    ChannelChange,
    ChannelList,
    GeneratedPersona,
    PersonaAnalyses,
    PersonaDiff,
    PersonaSearch,
    PersonaSearchHit,
    StudioPersona,
    TemplateList,
    VersionSnapshot,
    channels_of,
)
from socket_server.auth import principal, require_editor
from socket_server.errors import ClientError
from socket_server.http_io import (
    Body,
    Query,
    json_view,
    path_int,
    path_key,
    read_json,
    read_query,
)
from socket_server.keys import SERVICES
from socket_server.routes import Route


class GenerateBody(Body):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    samples: list[Any] = Field(
        max_length=200, description="texts written by the same person (plain prose)"
    )
    channel: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="the channel the samples come from"
    )


class SearchQuery(Query):
    q: str = Field(min_length=1, max_length=500, description="what you are looking for")
    limit: int = Field(default=10, ge=1, le=50)


class DiffQuery(Query):
    from_: int = Field(alias="from", ge=1, le=1_000_000_000)
    to: int | None = Field(default=None, ge=1, le=1_000_000_000, description="default: current")


class ChannelBody(Body):
    min_words: int | None = Field(default=None, ge=1, le=10_000)
    max_words: int | None = Field(default=None, ge=1, le=10_000)
    tone: str = Field(default="", max_length=200)
    paragraphs: bool | None = None
    lists: bool | None = None
    hashtags: bool | None = None
    emoji: bool | None = None
    call_to_action: bool | None = None
    instructions: str = Field(default="", max_length=1_000)


async def replace_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    key = path_key(request)
    definition = await read_json(request, PersonaDef)
    persona = await request.config_dict[SERVICES].personas.update(key, definition, who.actor)
    return json_view(StudioPersona.of(persona))


async def edit_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    key = path_key(request)
    patch = await read_json(request, PersonaPatch)
    persona = await request.config_dict[SERVICES].personas.edit(key, patch, who.actor)
    return json_view(StudioPersona.of(persona))


async def diff_versions(request: web.Request) -> web.Response:
    if not principal(request).is_editor:
        # snapshots hold the system prompt, which persona views never show to users
        raise ClientError("forbidden", "only an editor or admin may compare versions")
    query = read_query(request, DiffQuery)
    diff = await studio.diff_versions(
        request.config_dict[SERVICES].personas, path_key(request), query.from_, query.to
    )
    return json_view(PersonaDiff.of(diff))


async def generate_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "generate personas")
    body = await read_json(request, GenerateBody)
    try:
        made = await studio.generate(
            request.config_dict[SERVICES].personas,
            body.samples,
            who.actor,
            name=body.name,
            channel=body.channel,
        )
    except FingerprintError as exc:
        raise ClientError("invalid_payload", f"samples: {exc}") from None
    return json_view(
        GeneratedPersona.of(made), 201, headers={"Location": f"/api/personas/{made.persona.id}"}
    )


async def persona_analyses(request: web.Request) -> web.Response:
    analyses = await request.config_dict[SERVICES].personas.analyses(path_key(request))
    return json_view(PersonaAnalyses(analyses=[AnalysisView.of(a) for a in analyses]))


async def list_channels(request: web.Request) -> web.Response:
    persona = await request.config_dict[SERVICES].personas.get(path_key(request))
    return json_view(ChannelList(channels=channels_of(persona)))


def _channel_name(request: web.Request) -> str:
    name = request.match_info["channel"]
    if not re.fullmatch(NAME_PATTERN, name):
        raise ClientError("invalid_payload", "channel: lower-case letters, digits and _")
    return name


async def set_channel(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    name = _channel_name(request)
    body = await read_json(request, ChannelBody)
    channel = ChannelDef.model_validate({"name": name, **body.model_dump()})
    persona = await studio.set_channel(
        request.config_dict[SERVICES].personas, path_key(request), channel, who.actor
    )
    return json_view(ChannelChange.of(persona))


async def remove_channel(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    persona = await studio.remove_channel(
        request.config_dict[SERVICES].personas,
        path_key(request),
        _channel_name(request),
        who.actor,
    )
    return json_view(ChannelChange.of(persona))


async def search_personas(request: web.Request) -> web.Response:
    query = read_query(request, SearchQuery)
    if not query.q.strip():
        raise ClientError("invalid_payload", "q: must not be blank")
    hits = await request.config_dict[SERVICES].catalog.search(query.q, limit=query.limit)
    items = [
        PersonaSearchHit.hit(h.persona, score=h.score, meaning=h.meaning, text=h.text) for h in hits
    ]
    return json_view(PersonaSearch(query=query.q, items=items))


async def list_templates(request: web.Request) -> web.Response:
    return json_view(TemplateList.of(list(TEMPLATES.values())))


async def apply_template(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    persona = await studio.apply_template(
        request.config_dict[SERVICES].personas,
        path_key(request),
        request.match_info["template"],
        who.actor,
    )
    return json_view(StudioPersona.of(persona))


async def get_version(request: web.Request) -> web.Response:
    if not principal(request).is_editor:
        raise ClientError("forbidden", "only an editor or admin may read version snapshots")
    v = await request.config_dict[SERVICES].personas.version(
        path_key(request), path_int(request, "version")
    )
    return json_view(VersionSnapshot.of(v))


_P = "/personas"
EDITOR = "editor; a protected persona needs an admin"
ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        _P + "/generate",
        generate_persona,
        "Generate a draft persona (inactive) from writing samples, with its fingerprint "
        f"({EDITOR})",
        "studio",
        status=201,
        response=GeneratedPersona,
        body=GenerateBody,
        errors=(403,),
    ),
    Route(
        "GET",
        _P + "/search",
        search_personas,
        "Search personas by meaning and text together (embeddings of name, role, "
        "description, domains and beliefs, plus full-text rank)",
        "personas",
        response=PersonaSearch,
        query=SearchQuery,
    ),
    Route(
        "GET",
        _P + "/templates",
        list_templates,
        "Templates: named partial definitions to apply to a persona",
        "studio",
        response=TemplateList,
    ),
    Route(
        "PUT",
        _P + "/{key}",
        replace_persona,
        f"Replace a persona's whole definition as a new version ({EDITOR})",
        "studio",
        response=StudioPersona,
        body=PersonaDef,
        errors=(403, 404),
    ),
    Route(
        "PATCH",
        _P + "/{key}",
        edit_persona,
        "Change parts of a persona (identity, traits, beliefs with sources, modes, style, "
        f"channels) as a new version ({EDITOR})",
        "studio",
        response=StudioPersona,
        body=PersonaPatch,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/versions/{version}",
        get_version,
        "One version's snapshot (editor)",
        "studio",
        response=VersionSnapshot,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/diff",
        diff_versions,
        "What changed between two versions (?from=&to=, to defaults to the current one)",
        "studio",
        response=PersonaDiff,
        query=DiffQuery,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/analyses",
        persona_analyses,
        "The fingerprints a persona was generated from",
        "studio",
        response=PersonaAnalyses,
        errors=(404,),
    ),
    Route(
        "GET",
        _P + "/{key}/channels",
        list_channels,
        "The persona's channels: built-in ones and its own overlays",
        "studio",
        response=ChannelList,
        errors=(404,),
    ),
    Route(
        "PUT",
        _P + "/{key}/channels/{channel}",
        set_channel,
        f"Set a channel overlay as a new version ({EDITOR})",
        "studio",
        response=ChannelChange,
        body=ChannelBody,
        errors=(403, 404),
    ),
    Route(
        "DELETE",
        _P + "/{key}/channels/{channel}",
        remove_channel,
        f"Remove the persona's overlay (a built-in channel returns to its defaults) ({EDITOR})",
        "studio",
        response=ChannelChange,
        errors=(403, 404),
    ),
    Route(
        "POST",
        _P + "/{key}/templates/{template}",
        apply_template,
        f"Apply a template as a new version ({EDITOR})",
        "studio",
        response=StudioPersona,
        errors=(403, 404),
    ),
)
