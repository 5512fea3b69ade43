"""The OpenAPI 3.1 document of the REST API, built from the same :class:`Route` list that
registers the routes, so the document cannot drift from the router. Request bodies and
query strings come from their pydantic models; response shapes (the views of
``socket_server.views``) are written out below."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSONSchema = dict[str, Any]

DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)
_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One REST route: how it is served and how it is documented.

    ``schema`` names the success body in ``components.schemas`` (None: no body);
    ``errors`` lists statuses beyond those every route of its kind may answer."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    status: int = 200
    schema: str | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False


async def document(request: web.Request) -> web.Response:
    """The OpenAPI document of this server (no auth: it holds no data)."""
    return web.json_response(request.app[DOCUMENT])


ROUTE = Route(
    "GET",
    "/api/openapi.json",
    document,
    "This OpenAPI document",
    "meta",
    schema="OpenAPIDocument",
    public=True,
)


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    models = list(dict.fromkeys(m for r in routes for m in (r.body, r.query) if m is not None))
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    defs: dict[str, JSONSchema] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, defs)
    query_models = {m.__name__ for r in routes if (m := r.query) is not None}
    schemas = {k: v for k, v in defs.items() if k not in query_models}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Personae REST API",
            "version": "1.0.0",
            "description": (
                "Personas, sessions, memories and feedback. Errors are "
                '`{"error": {"code", "message"}}`; see docs/protocol.md for the codes.'
            ),
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {**schemas, **RESPONSE_SCHEMAS},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(route: Route, defs: dict[str, JSONSchema]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name]}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        schema = defs[route.query.__name__]
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _query_schema(prop),
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    op: dict[str, Any] = {
        "operationId": route.handler.__name__.lstrip("_"),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route, bool(params)),
    }
    if params:
        op["parameters"] = params
    if route.body is not None:
        schema = {"$ref": _REF.format(model=route.body.__name__)}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if route.public:
        op["security"] = []
    return op


def _query_schema(prop: JSONSchema) -> JSONSchema:
    """A query parameter is absent rather than null: drop pydantic's null branch."""
    out = {k: v for k, v in prop.items() if k not in ("title", "anyOf", "default")}
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        out.update(branches[0])
    elif branches:
        out["anyOf"] = branches
    if prop.get("default") is not None:
        out["default"] = prop["default"]
    return out


def _responses(route: Route, has_params: bool) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": _REASONS.get(route.status, "success")}
    if route.schema is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _REF.format(model=route.schema)}}}
    statuses = set(route.errors) | {500}
    if has_params or route.body is not None:
        statuses.add(400)
    if route.body is not None:
        statuses.add(413)
    if not route.public:
        statuses.add(401)
    error = {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}
    out: dict[str, Any] = {str(route.status): ok}
    for status in sorted(statuses):
        out[str(status)] = {"description": _REASONS[status], "content": error}
    return out


_REASONS = {
    200: "success",
    201: "created",
    204: "done; no body",
    400: "invalid_payload: a malformed body, a wrong content type or a bad parameter",
    401: "unauthorized: missing, invalid or expired bearer token",
    403: "forbidden: not yours, or needs an admin",
    404: "the persona, version, session, message or memory does not exist",
    409: "conflict: the persona already exists",
    413: "body_too_large",
    429: "rate_limited (see the Retry-After header)",
    500: "internal: logged on the server with the incident id in the message",
}

PATH_PARAMS: dict[str, JSONSchema] = {
    "key": {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "description": "a persona's id or slug",
    },
    "version": {"type": "integer", "minimum": 1},
    "session_id": {"type": "string", "format": "uuid"},
    "message_id": {"type": "string", "format": "uuid"},
    "memory_id": {"type": "string", "format": "uuid"},
}


# ---- response shapes (socket_server.views) -------------------------------------------


def _ref(name: str) -> JSONSchema:
    return {"$ref": _REF.format(model=name)}


def _obj(props: dict[str, JSONSchema], *, optional: Sequence[str] = ()) -> JSONSchema:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        "additionalProperties": False,
    }


def _array(items: JSONSchema) -> JSONSchema:
    return {"type": "array", "items": items}


_STR: JSONSchema = {"type": "string"}
_UUID: JSONSchema = {"type": "string", "format": "uuid"}
_TIME: JSONSchema = {"type": "string", "format": "date-time"}
_NUM: JSONSchema = {"type": "number"}
_INT: JSONSchema = {"type": "integer"}
_BOOL: JSONSchema = {"type": "boolean"}
_MAP: JSONSchema = {"type": "object"}


def _nullable(schema: JSONSchema) -> JSONSchema:
    return {"anyOf": [schema, {"type": "null"}]}


_PERSONA_REF = _obj({"id": _UUID, "slug": _STR, "name": _STR})
_TRAIT = _obj(
    {
        "name": _STR,
        "type": _STR,
        "value": _NUM,
        "inherited": _BOOL,
        "evolves": _BOOL,
        "locked": _BOOL,
        "description": _STR,
    }
)
_PERSONA = _obj(
    {
        **_PERSONA_REF["properties"],
        "description": _STR,
        "role": _STR,
        "domains": _array(_STR),
        "persona_type": {"enum": ["historical", "fictional", "synthetic"]},
        "is_real": _BOOL,
        "birth_date": _nullable({"type": "string", "format": "date"}),
        "avatar_url": _nullable(_STR),
        "version": _INT,
        "active": _BOOL,
        "protected": _BOOL,
        "traits": _array(_ref("Trait")),
        "beliefs": _array(_obj({"text": _STR, "source": _STR})),
        "modes": _array(_obj({"mode": _STR, "enabled": _BOOL})),
        "style": _obj(
            {
                "humour_usage": _NUM,
                "emotional_style": _STR,
                "language_style": _STR,
                "voice_enabled": _BOOL,
                "default_mode": _nullable(_STR),
                "temperature": _NUM,
                "max_tokens": _INT,
            }
        ),
        "updated_at": _TIME,
        "rank": _NUM,
    },
    optional=("rank",),
)
_MEMORY = _obj(
    {
        "id": _UUID,
        "persona_id": _STR,
        "user_id": _STR,
        "session_id": _nullable(_STR),
        "speaker": _obj({"name": _STR, "role": {"enum": ["user", "persona", "system"]}}),
        "text": _STR,
        "kind": {"enum": ["turn", "fact", "summary", "reflection"]},
        "importance": _NUM,
        "pinned": _BOOL,
        "created_at": _TIME,
        "external_id": _nullable(_STR),
        "metadata": _MAP,
    }
)
_DRIFT = _obj(
    {
        "score": _NUM,
        "drifting": _array(_STR),
        "traits": {
            "type": "object",
            "additionalProperties": _obj(
                {"configured": _NUM, "observed": _NUM, "gap": _NUM, "count": _INT}
            ),
        },
    }
)

RESPONSE_SCHEMAS: dict[str, JSONSchema] = {
    "Error": _obj(
        {
            "error": {
                "type": "object",
                "properties": {"code": _STR, "message": _STR, "retry_after": _NUM},
                "required": ["code", "message"],
            }
        }
    ),
    "PersonaRef": _PERSONA_REF,
    "Trait": _TRAIT,
    "Persona": _PERSONA,
    "PersonaPage": _obj(
        {
            "items": _array(_ref("Persona")),
            "total": _INT,
            "offset": _INT,
            "limit": _INT,
        }
    ),
    "PersonaVersions": _obj(
        {
            "versions": _array(
                _obj(
                    {
                        "version": _INT,
                        "reason": _STR,
                        "created_by": _STR,
                        "created_at": _TIME,
                        "snapshot": {
                            "type": "object",
                            "description": "the full definition; admins only",
                        },
                    },
                    optional=("snapshot",),
                )
            )
        }
    ),
    "PersonaEmbedding": _obj(
        {
            "persona_id": _UUID,
            "model": _STR,
            "dim": _INT,
            "vector": _array(_NUM),
        }
    ),
    "PersonaTraits": _obj(
        {
            "persona": _ref("PersonaRef"),
            "traits": _array(_ref("Trait")),
            "observed": {
                "type": "object",
                "additionalProperties": _obj({"mean": _NUM, "count": _INT, "last": _NUM}),
            },
            "turns": _INT,
            "drift": _DRIFT,
        }
    ),
    "SessionList": _obj(
        {
            "sessions": _array(
                _obj(
                    {
                        "id": _UUID,
                        "policy": _STR,
                        "title": _STR,
                        "personas": _array(_ref("PersonaRef")),
                        "created_at": _TIME,
                    }
                )
            )
        }
    ),
    "MessagePage": _obj(
        {
            "messages": _array(
                _obj(
                    {
                        "id": _UUID,
                        "session_id": _UUID,
                        "seq": _INT,
                        "role": {"enum": ["user", "persona", "system"]},
                        "persona_id": _nullable(_UUID),
                        "speaker": _STR,
                        "text": _STR,
                        "client_msg_id": _nullable(_STR),
                        "reply_to": _nullable(_UUID),
                        "status": {"enum": ["complete", "incomplete", "failed"]},
                        "traits": _MAP,
                        "timings": _MAP,
                        "created_at": _TIME,
                    }
                )
            ),
            "before": _nullable({**_INT, "description": "pass as ?before= for older messages"}),
        }
    ),
    "Feedback": _obj(
        {
            "feedback": _obj(
                {
                    "message_id": _UUID,
                    "rating": {"enum": [-1, 0, 1]},
                    "comment": _STR,
                    "created_at": _TIME,
                }
            )
        }
    ),
    "Memory": _MEMORY,
    "MemoryPage": _obj({"memories": _array(_ref("Memory")), "next_cursor": _nullable(_STR)}),
    "ScoredMemory": _obj(
        {
            **_MEMORY["properties"],
            "score": _obj(
                {
                    "total": _NUM,
                    "relevance": _NUM,
                    "keyword": _NUM,
                    "relevance_z": _NUM,
                    "keyword_z": _NUM,
                    "speaker": _NUM,
                    "recency": _NUM,
                    "importance": _NUM,
                    "pinned": _BOOL,
                }
            ),
        }
    ),
    "MemoryResults": _obj({"results": _array(_ref("ScoredMemory"))}),
    "MemoryListing": {"oneOf": [_ref("MemoryPage"), _ref("MemoryResults")]},
    "MemoryEnvelope": _obj({"memory": _ref("Memory")}),
    "OpenAPIDocument": {"type": "object", "required": ["openapi", "paths"]},
}
