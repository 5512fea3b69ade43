"""How errors become ``{code, message}`` for a client: the one place that decides which
failures a client may hear about and what they are called."""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from agents.errors import LLMStreamBroken, LLMUnavailable
from memory.errors import IndexUnavailable, InvalidMemory, MemoryNotFound, SessionNotFound
from personas import (
    DefinitionError,
    InvalidPersonaChange,
    PersonaError,
    PersonaExists,
    PersonaNotFound,
    PersonaProtected,
    VersionNotFound,
)
from runtime.errors import ChatError
from runtime.infra.auth import AuthError
from runtime.infra.ratelimit import RateLimited
from runtime.views import ErrorBody
from socket_server.keys import METRICS

log = logging.getLogger(__name__)

STATUS = {
    "invalid_payload": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "fact_superseded": 409,
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


class ClientError(Exception):
    """An error meant for the client, with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def error_payload(exc: BaseException, *, where: str) -> dict[str, Any]:
    """``{code, message}`` for any exception; unexpected ones are logged with an id and
    reported as ``internal`` without details."""
    if isinstance(exc, ClientError):
        return exc.payload()
    if isinstance(exc, ChatError):
        return {"code": exc.code, "message": str(exc)}
    if isinstance(exc, ValidationError):
        return {"code": "invalid_payload", "message": validation_message(exc)}
    if isinstance(exc, RateLimited):
        return {"code": "rate_limited", "message": str(exc), "retry_after": exc.retry_after_s}
    if isinstance(exc, AuthError):
        return {"code": "unauthorized", "message": str(exc)}
    if isinstance(exc, psycopg.DataError):
        return {"code": "invalid_payload", "message": "a value cannot be stored (out of range)"}
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        log.warning("database unavailable in %s: %s", where, type(exc).__name__)
        return {
            "code": "service_unavailable",
            "message": "the database is unavailable; retry shortly",
        }
    mapped = _map(exc)
    if mapped is not None:
        return {"code": mapped, "message": str(exc)}
    incident = uuid.uuid4().hex[:12]
    log.error(
        "internal error %s in %s: %s: %s", incident, where, type(exc).__name__, exc, exc_info=exc
    )
    return {"code": "internal", "message": f"internal error (incident {incident})"}


def _map(exc: BaseException) -> str | None:
    table: list[tuple[type[BaseException], str]] = [
        (PersonaNotFound, "persona_not_found"),
        (VersionNotFound, "version_not_found"),
        (PersonaProtected, "forbidden"),
        (PersonaExists, "conflict"),
        (InvalidPersonaChange, "invalid_payload"),
        (DefinitionError, "invalid_payload"),
        (PersonaError, "invalid_payload"),
        (SessionNotFound, "session_not_found"),
        (MemoryNotFound, "memory_not_found"),
        (InvalidMemory, "invalid_payload"),
        (IndexUnavailable, "service_unavailable"),
        (LLMUnavailable, "llm_unavailable"),
        (LLMStreamBroken, "llm_stream_broken"),
    ]
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    return None


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def error_response(exc: BaseException, request: web.Request) -> web.Response:
    """``exc`` as Personae's JSON error, ``{"error": {code, message}}``, with its HTTP
    status (and ``Retry-After`` / ``WWW-Authenticate``)."""
    payload = error_payload(exc, where=f"{request.method} {request.path}")
    code = str(payload["code"])
    status = STATUS.get(code, 404 if code.endswith("_not_found") else 500)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="personae"'
    if METRICS in request.config_dict:
        request.config_dict[METRICS].client_errors.labels(code=code).inc()
    log.debug("%s %s -> %d %s", request.method, request.path, status, code)
    return web.json_response(ErrorBody.of(payload).wire(), status=status, headers=headers)


def http_error(exc: web.HTTPException) -> ClientError:
    """aiohttp's HTTP error (no such route, a method it does not have, a body over the
    size limit...) as a client error with its code."""
    code = _HTTP_CODES.get(exc.status, "invalid_payload" if exc.status < 500 else "internal")
    if exc.status == 404:
        message = "no such route"
    elif exc.status == 405:
        message = "method not allowed on this route"
    elif exc.status == 413:
        message = "body: larger than the server accepts"
    else:
        message = exc.reason.lower()
    return ClientError(code, message)


def client_left(request: web.Request) -> web.Response:
    """The answer to a request whose client went away mid-way: nobody to answer, nothing
    the server did wrong, so it is counted and logged, not reported as a failure."""
    request.config_dict[METRICS].client_aborts.inc()
    log.info("client left %s %s before it was answered", request.method, request.path)
    return web.Response(status=400, text="connection lost")
