"""The OpenAPI 3.1 document of the HTTP interfaces (``/api`` and ``/v1`` in one
document), generated from their :class:`~socket_server.routes.Mount` declarations:
paths from the routes, parameters and request bodies from the pydantic request models,
responses from the views of :mod:`runtime.views`. Nothing in it is written by hand but
the path parameters' shapes and the statuses' descriptions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, RootModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from socket_server.routes import Mount, Route

JSONSchema = dict[str, Any]

DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document", dict)
_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
"""A path parameter in aiohttp's syntax, ``{name}`` or ``{name:regex}``."""


class OpenAPIDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(json_schema_extra={"required": ["openapi", "paths"]})


async def document(request: web.Request) -> web.Response:
    """The OpenAPI document of this server (no auth: it holds no data)."""
    return web.json_response(request.config_dict[DOCUMENT])


ROUTE = Route(
    "GET",
    "/openapi.json",
    document,
    "This OpenAPI document: the REST API (/api) and the OpenAI-compatible API (/v1)",
    "meta",
    response=OpenAPIDocument,
    public=True,
)
"""The document's own route, for the ``/api`` mount."""


def openapi_path(prefix: str, route: Route) -> str:
    """The route's full path as OpenAPI writes it (``{name}``, without aiohttp's regex)."""
    return prefix + _PATH_PARAM.sub(r"{\1}", route.path)


def build_document(mounts: Sequence[Mount]) -> dict[str, Any]:
    """The document of every route of ``mounts``."""
    routes = [(m, r) for m in mounts for r in m.routes]
    modes: dict[type[BaseModel], JsonSchemaMode] = {}
    for mount, route in routes:
        for model in (route.body, route.query):
            if model is not None:
                modes[model] = "validation"
        for model in (route.response, route.events, mount.error):
            if model is not None:
                modes[model] = "serialization"
    _, top = models_json_schema(list(modes.items()), ref_template=_REF)
    defs: dict[str, JSONSchema] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for mount, route in routes:
        op = _operation(mount, route, defs)
        if op["operationId"] in operation_ids:
            raise ValueError(f"two routes named {op['operationId']!r}")
        operation_ids.add(op["operationId"])
        paths.setdefault(openapi_path(mount.prefix, route), {})[route.method.lower()] = op
    query_models = {m.__name__ for _, r in routes if (m := r.query) is not None}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Personae HTTP API",
            "version": "1.0.0",
            "description": " ".join(f"{m.prefix}: {m.title}." for m in mounts)
            + " See docs/protocol.md and docs/ecosystem.md.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {k: v for k, v in defs.items() if k not in query_models},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(mount: Mount, route: Route, defs: dict[str, JSONSchema]) -> dict[str, Any]:
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
        "responses": _responses(mount, route, _refusable(route)),
    }
    if params:
        op["parameters"] = params
    if route.body is not None:
        schema = _ref(route.body)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if route.public:
        op["security"] = []
    return op


def _refusable(route: Route) -> bool:
    """Whether the route refuses some parameter values (400)."""
    checked = set(_PATH_PARAM.findall(route.path)) - _ANY_TEXT
    return route.query is not None or bool(checked)


def _ref(model: type[BaseModel]) -> JSONSchema:
    return {"$ref": _REF.format(model=model.__name__)}


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


def _responses(mount: Mount, route: Route, refusable: bool) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": _REASONS.get(route.status, "success")}
    content: dict[str, Any] = {}
    if route.response is not None:
        content["application/json"] = {"schema": _ref(route.response)}
    if route.events is not None:
        content["text/event-stream"] = {
            "schema": {
                "type": "string",
                "description": "server-sent events: `data: <JSON>` lines, each an "
                "x-itemSchema, ending with `data: [DONE]`",
            },
            # OpenAPI 3.2's itemSchema, as an extension until the document moves to it
            "x-itemSchema": _ref(route.events),
        }
    if content:
        ok["content"] = content
    statuses = set(route.errors) | {500}
    if refusable or route.body is not None:
        statuses.add(400)
    if route.body is not None:
        statuses.add(413)
    if not route.public:
        statuses.add(401)
    error = {"application/json": {"schema": _ref(mount.error)}}
    out: dict[str, Any] = {str(route.status): ok}
    for status in sorted(statuses):
        out[str(status)] = {"description": _REASONS[status], "content": error}
    return out


_REASONS = {
    200: "success",
    201: "created",
    204: "done; no body",
    400: "a malformed body, a wrong content type or a bad parameter",
    401: "a missing, invalid or expired bearer token",
    403: "forbidden: not yours, or needs an editor or an admin",
    404: "the persona (model), version, session, message or memory does not exist",
    409: "conflict: the persona already exists",
    413: "the body is larger than the server accepts, or the text is too long",
    429: "rate limited (see the Retry-After header)",
    500: "internal: logged on the server with the incident id in the message",
    502: "the model's stream broke, or it answered nothing",
    503: "the model or a backing service is unavailable, or the server is shutting down",
    504: "no reply within the model's timeout",
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
    "fact_id": {"type": "string", "format": "uuid"},
    "channel": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,47}$"},
    "template": {"type": "string", "minLength": 1, "maxLength": 60},
    "model": {
        "type": "string",
        "minLength": 1,
        "description": "persona/<slug>, or a persona's slug or id",
    },
}
_ANY_TEXT = frozenset({"model"})
"""Path parameters every value of which is taken (an unknown model is a 404, not a 400)."""
