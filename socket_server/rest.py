"""The REST API's edge, in the same process as Socket.IO: bearer auth, JSON bodies and
query strings validated with pydantic, errors as ``{"error": {code, message}}`` with
their HTTP status; liveness, readiness and metrics.

The /api routes live in :mod:`socket_server.rest_personas` and
:mod:`socket_server.rest_memory`. Each is declared once as an :class:`openapi.Route`,
which both registers it and documents it in ``GET /api/openapi.json``."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, StringConstraints

from runtime.infra.auth import AuthError, Principal, verify_token
from runtime.infra.db import ping
from runtime.infra.metrics import exposition
from runtime.infra.ratelimit import RateLimited
from socket_server import openapi
from socket_server.app import CHAT, METRICS, SERVICES
from socket_server.payloads import find_nul
from socket_server.views import ClientError, error_payload

log = logging.getLogger(__name__)

PRINCIPAL = web.RequestKey("principal", Principal)
READY_TIMEOUT_S = 1.0
_PROBE_PERSONA = str(uuid.UUID(int=0))
_PUBLIC_API = frozenset({openapi.ROUTE.path})

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
M = TypeVar("M", bound=BaseModel)

_STATUS = {
    "invalid_payload": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "text_too_long": 413,
    "body_too_large": 413,
    "request_timeout": 408,
    "rate_limited": 429,
    "internal": 500,
    "llm_stream_broken": 502,
    "llm_empty": 502,
    "llm_unavailable": 503,
    "service_unavailable": 503,
    "shutting_down": 503,
}
"""HTTP status per error code; ``*_not_found`` is 404 and a code missing here is 500."""
_HTTP_CODES = {
    400: "invalid_payload",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


class Query(BaseModel):
    """A query string: values arrive as text and are coerced; unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def add_routes(app: web.Application) -> None:
    # the route modules import this one's helpers, so they are imported here
    from socket_server import rest_memory, rest_personas

    app.middlewares.append(errors_middleware)
    app.middlewares.append(auth_middleware)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
    routes = (*rest_personas.ROUTES, *rest_memory.ROUTES, openapi.ROUTE)
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app[openapi.DOCUMENT] = openapi.build_document(routes)


# ---- middlewares ------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of a REST route as a JSON error with its status; Socket.IO and the
    static files keep their own handling."""
    if request.path.startswith("/socket.io/"):
        return await handler(request)
    try:
        return await handler(request)
    except ConnectionResetError:
        # the client went away mid-request: nobody to answer, nothing the server did wrong
        request.app[METRICS].client_aborts.inc()
        log.info("client left %s %s before it was answered", request.method, request.path)
        return web.Response(status=400, text="connection lost")
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "invalid_payload" if exc.status < 500 else "internal")
        response = error_response(ClientError(code, _http_message(exc)), request)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # noqa: BLE001 (any failure becomes {code, message}, no traceback)
        return error_response(exc, request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Put the caller's :class:`Principal` on every /api request (the OpenAPI document
    excepted); a missing or bad bearer token is refused with 401."""
    if request.path.startswith("/api/") and request.path not in _PUBLIC_API:
        secret = request.app[SERVICES].settings.auth_secret
        request[PRINCIPAL] = verify_token(
            secret.get_secret_value() if secret else None, _bearer(request)
        )
    return await handler(request)


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def error_response(exc: BaseException, request: web.Request) -> web.Response:
    """The JSON error for ``exc``, with its status (and Retry-After / WWW-Authenticate)."""
    payload = error_payload(exc, where=f"{request.method} {request.path}")
    code = str(payload["code"])
    status = _STATUS.get(code, 404 if code.endswith("_not_found") else 500)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="personae"'
    if METRICS in request.app:
        request.app[METRICS].client_errors.labels(code=code).inc()
    log.debug("%s %s -> %d %s", request.method, request.path, status, code)
    return web.json_response({"error": payload}, status=status, headers=headers)


def _http_message(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such route"
    if exc.status == 405:
        return "method not allowed on this route"
    if exc.status == 413:
        return "body: larger than the server accepts"
    return exc.reason.lower()


# ---- request helpers ----------------------------------------------------------------------


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require_admin(request: web.Request, what: str) -> Principal:
    who = principal(request)
    if not who.is_admin:
        raise ClientError("forbidden", f"only an admin may {what}")
    return who


async def read_json(request: web.Request, model: type[M]) -> M:
    """The body as ``model``: it must be UTF-8 ``application/json`` holding an object."""
    if request.content_type != "application/json":
        raise ClientError("invalid_payload", "body: expected Content-Type application/json")
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise ClientError("invalid_payload", "body: JSON must be UTF-8")
    timeout_s = request.app[SERVICES].settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ClientError(
            "request_timeout", f"body: not received within {timeout_s:g} s"
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ClientError("invalid_payload", "body: not valid UTF-8") from None
    except RecursionError:
        raise ClientError("invalid_payload", "body: JSON nested too deeply") from None
    except ValueError as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ClientError("invalid_payload", f"body: not valid JSON ({message})") from None
    if not isinstance(data, dict):
        raise ClientError("invalid_payload", "body: expected a JSON object")
    _refuse_nul(data, "body")
    return model.model_validate(data)


def _refuse_nul(value: object, where: str) -> None:
    nul = find_nul(value, where)
    if nul is not None:
        raise ClientError("invalid_payload", f"{nul}: must not contain NUL characters")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``; a parameter given twice is refused."""
    query = request.query
    repeated = sorted({k for k in query if len(query.getall(k)) > 1})
    if repeated:
        raise ClientError("invalid_payload", f"{repeated[0]}: given more than once")
    _refuse_nul(dict(query), "query")
    return model.model_validate(dict(query))


def path_key(request: web.Request) -> str:
    key = request.match_info["key"].strip()
    if not 1 <= len(key) <= 100 or "\x00" in key:
        raise ClientError("invalid_payload", "key: must be a persona id or slug")
    return key


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ClientError("invalid_payload", f"{name}: not a UUID") from None


def path_int(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ClientError("invalid_payload", f"{name}: must be a positive integer")
    return int(text)


def json_ok(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(data), status=status)


# ---- operations -----------------------------------------------------------------------------


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text of this process's metrics; with a secret set, for an admin's
    bearer token only (the counters describe everyone's use)."""
    services = request.app.get(SERVICES)
    secret = services.settings.auth_secret if services is not None else None
    if secret is not None:
        try:
            who = verify_token(secret.get_secret_value(), _bearer(request))
        except AuthError as exc:
            return error_response(exc, request)
        if not who.is_admin:
            return error_response(ClientError("forbidden", "metrics are for admins"), request)
    body = exposition(
        request.app[METRICS], services.settings.metrics_dir if services is not None else None
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: PostgreSQL, Redis and the vector index each answer within a short
    timeout, and the server still takes turns. 503 names what failed."""
    services = request.app.get(SERVICES)
    if services is None:
        return json_ok({"status": "starting", "checks": {}}, status=503)

    async def postgres() -> None:
        await ping(services.pool)

    async def redis() -> None:
        await services.redis.ping()

    async def qdrant() -> None:
        await services.memory.index.count(_PROBE_PERSONA)

    probes = {"postgres": postgres, "redis": redis, "qdrant": qdrant}
    results = await asyncio.gather(*(_check(name, probe) for name, probe in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    accepting = request.app[CHAT].accepting
    checks["accepting_turns"] = {"ok": accepting}
    ready = all(c["ok"] for c in checks.values())
    return json_ok(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def _check(name: str, probe: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await probe()
    except TimeoutError:
        log.warning("readiness: %s did not answer within %.1f s", name, READY_TIMEOUT_S)
        return {"ok": False, "error": f"no answer within {READY_TIMEOUT_S:g} s"}
    except Exception as exc:  # noqa: BLE001 (a probe reports failure; details go to the log)
        log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"ok": False, "error": f"unavailable ({type(exc).__name__})"}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 2)}
