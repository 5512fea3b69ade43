"""REST routes of the persona studio: edit a persona (whole or in part), diff two
versions, generate a draft persona from writing samples, channel overlays and templates.

Editors and admins change personas; protected personas refuse editors (see
``docs/personas.md``)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agents.traits.fingerprint import FingerprintError
from personas import Persona, PersonaDef, to_definition
from personas.channels import BUILTIN, channel_view, effective_channels
from personas.definitions import NAME_PATTERN, ChannelDef, PersonaPatch
from personas.diff import diff_snapshots
from personas.templates import TEMPLATES, template_view
from runtime.infra.auth import Principal
from runtime.usecases import studio
from socket_server.app import SERVICES
from socket_server.openapi import Route
from socket_server.rest import (
    Query,
    json_ok,
    path_int,
    path_key,
    principal,
    read_json,
    read_query,
)
from socket_server.views import ClientError, persona_view


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerateBody(_Body):
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


class ChannelBody(_Body):
    min_words: int | None = Field(default=None, ge=1, le=10_000)
    max_words: int | None = Field(default=None, ge=1, le=10_000)
    tone: str = Field(default="", max_length=200)
    paragraphs: bool | None = None
    lists: bool | None = None
    hashtags: bool | None = None
    emoji: bool | None = None
    call_to_action: bool | None = None
    instructions: str = Field(default="", max_length=1_000)


def require_editor(request: web.Request, what: str) -> Principal:
    who = principal(request)
    if not who.is_editor:
        raise ClientError("forbidden", f"only an editor or admin may {what}")
    return who


def studio_view(p: Persona) -> dict[str, Any]:
    """A persona as the studio shows it: the persona view with its traits' sources and
    its channel overlays."""
    view = persona_view(p)
    sources = {t.name: t.source for t in p.traits}
    view["traits"] = [{**t, "source": sources.get(t["name"], "")} for t in view["traits"]]
    return {**view, "channels": channels_view(p)}


def channels_view(p: Persona) -> list[dict[str, Any]]:
    own = {c.name for c in p.channels}
    return [
        channel_view(c, builtin=name in BUILTIN, overridden=name in own and name in BUILTIN)
        for name, c in sorted(effective_channels(p).items())
    ]


async def replace_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    key = path_key(request)
    definition = await read_json(request, PersonaDef)
    persona = await request.app[SERVICES].personas.update(key, definition, who.actor)
    return json_ok(studio_view(persona))


async def edit_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    key = path_key(request)
    patch = await read_json(request, PersonaPatch)
    persona = await request.app[SERVICES].personas.edit(key, patch, who.actor)
    return json_ok(studio_view(persona))


async def diff_versions(request: web.Request) -> web.Response:
    if not principal(request).is_editor:
        # snapshots hold the system prompt, which persona views never show to users
        raise ClientError("forbidden", "only an editor or admin may compare versions")
    query = read_query(request, DiffQuery)
    store = request.app[SERVICES].personas
    key = path_key(request)
    old = await store.version(key, query.from_)
    if query.to is None:
        current = await store.get(key)
        new_version, new_snapshot = current.version, to_definition(current).canonical()
    else:
        new = await store.version(key, query.to)
        new_version, new_snapshot = new.version, new.snapshot
    changes = diff_snapshots(old.snapshot, new_snapshot)
    return json_ok(
        {
            "from": old.version,
            "to": new_version,
            "changes": [c.as_json() for c in changes],
        }
    )


async def generate_persona(request: web.Request) -> web.Response:
    who = require_editor(request, "generate personas")
    body = await read_json(request, GenerateBody)
    try:
        made = await studio.generate(
            request.app[SERVICES].personas,
            body.samples,
            who.actor,
            name=body.name,
            channel=body.channel,
        )
    except FingerprintError as exc:
        raise ClientError("invalid_payload", f"samples: {exc}") from None
    response = json_ok(
        {
            "persona": studio_view(made.persona),
            "archetype": made.draft.archetype,
            "confidence": made.fingerprint.confidence,
            "fingerprint": made.fingerprint.as_json(),
        },
        status=201,
    )
    response.headers["Location"] = f"/api/personas/{made.persona.id}"
    return response


async def persona_analyses(request: web.Request) -> web.Response:
    analyses = await request.app[SERVICES].personas.analyses(path_key(request))
    return json_ok(
        {
            "analyses": [
                {
                    "kind": a.kind,
                    "samples": a.samples,
                    "words": a.words,
                    "confidence": a.confidence,
                    "fingerprint": a.fingerprint,
                    "created_by": a.created_by,
                    "created_at": a.created_at.isoformat() if a.created_at else None,
                }
                for a in analyses
            ]
        }
    )


async def list_channels(request: web.Request) -> web.Response:
    persona = await request.app[SERVICES].personas.get(path_key(request))
    return json_ok({"channels": channels_view(persona)})


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
        request.app[SERVICES].personas, path_key(request), channel, who.actor
    )
    return json_ok({"channels": channels_view(persona), "version": persona.version})


async def remove_channel(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    persona = await studio.remove_channel(
        request.app[SERVICES].personas, path_key(request), _channel_name(request), who.actor
    )
    return json_ok({"channels": channels_view(persona), "version": persona.version})


async def search_personas(request: web.Request) -> web.Response:
    query = read_query(request, SearchQuery)
    if not query.q.strip():
        raise ClientError("invalid_payload", "q: must not be blank")
    hits = await request.app[SERVICES].catalog.search(query.q, limit=query.limit)
    return json_ok(
        {
            "query": query.q,
            "items": [
                {
                    **persona_view(h.persona),
                    "score": round(h.score, 4),
                    "meaning": round(h.meaning, 4),
                    "text": round(h.text, 4),
                }
                for h in hits
            ],
        }
    )


async def list_templates(request: web.Request) -> web.Response:
    return json_ok({"templates": [template_view(t) for t in TEMPLATES.values()]})


async def apply_template(request: web.Request) -> web.Response:
    who = require_editor(request, "change personas")
    persona = await studio.apply_template(
        request.app[SERVICES].personas,
        path_key(request),
        request.match_info["template"],
        who.actor,
    )
    return json_ok(studio_view(persona))


async def get_version(request: web.Request) -> web.Response:
    if not principal(request).is_editor:
        raise ClientError("forbidden", "only an editor or admin may read version snapshots")
    v = await request.app[SERVICES].personas.version(
        path_key(request), path_int(request, "version")
    )
    return json_ok(
        {
            "version": v.version,
            "reason": v.reason,
            "created_by": v.created_by,
            "created_at": v.created_at.isoformat(),
            "snapshot": v.snapshot,
        }
    )


_P = "/api/personas"
EDITOR = "editor; a protected persona needs an admin"
EARLY: tuple[Route, ...] = (
    Route(
        "POST",
        _P + "/generate",
        generate_persona,
        "Generate a draft persona (inactive) from writing samples, with its fingerprint "
        f"({EDITOR})",
        "studio",
        status=201,
        schema="GeneratedPersona",
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
        schema="PersonaSearch",
        query=SearchQuery,
    ),
    Route(
        "GET",
        _P + "/templates",
        list_templates,
        "Templates: named partial definitions to apply to a persona",
        "studio",
        schema="TemplateList",
    ),
)
"""Routes whose fixed path must be matched before ``/api/personas/{key}``."""

ROUTES: tuple[Route, ...] = (
    Route(
        "PUT",
        _P + "/{key}",
        replace_persona,
        f"Replace a persona's whole definition as a new version ({EDITOR})",
        "studio",
        schema="StudioPersona",
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
        schema="StudioPersona",
        body=PersonaPatch,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/versions/{version}",
        get_version,
        "One version's snapshot (editor)",
        "studio",
        schema="PersonaVersionSnapshot",
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/diff",
        diff_versions,
        "What changed between two versions (?from=&to=, to defaults to the current one)",
        "studio",
        schema="PersonaDiff",
        query=DiffQuery,
        errors=(403, 404),
    ),
    Route(
        "GET",
        _P + "/{key}/analyses",
        persona_analyses,
        "The fingerprints a persona was generated from",
        "studio",
        schema="PersonaAnalyses",
        errors=(404,),
    ),
    Route(
        "GET",
        _P + "/{key}/channels",
        list_channels,
        "The persona's channels: built-in ones and its own overlays",
        "studio",
        schema="ChannelList",
        errors=(404,),
    ),
    Route(
        "PUT",
        _P + "/{key}/channels/{channel}",
        set_channel,
        f"Set a channel overlay as a new version ({EDITOR})",
        "studio",
        schema="ChannelChange",
        body=ChannelBody,
        errors=(403, 404),
    ),
    Route(
        "DELETE",
        _P + "/{key}/channels/{channel}",
        remove_channel,
        f"Remove the persona's overlay (a built-in channel returns to its defaults) ({EDITOR})",
        "studio",
        schema="ChannelChange",
        errors=(403, 404),
    ),
    Route(
        "POST",
        _P + "/{key}/templates/{template}",
        apply_template,
        f"Apply a template as a new version ({EDITOR})",
        "studio",
        schema="StudioPersona",
        errors=(403, 404),
    ),
)
