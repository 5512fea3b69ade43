"""The routes that run the server rather than serve users, on the root application:
liveness (``/healthz``), readiness (``/readyz``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST

from runtime.infra.auth import AuthError
from runtime.infra.db import ping
from runtime.infra.metrics import exposition
from socket_server.auth import caller
from socket_server.errors import ClientError, client_left, error_response
from socket_server.keys import CHAT, METRICS, SERVICES

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 1.0
_PROBE_PERSONA = str(uuid.UUID(int=0))


def add_ops_routes(app: web.Application) -> None:
    for path, handler in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", metrics)):
        app.router.add_get(path, _json_errors(handler))


def _json_errors(handler: Handler) -> Handler:
    """``handler`` failing as the REST API does, ``{"error": {code, message}}``: these
    routes sit on the root application, outside the API's error middleware."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ConnectionResetError:
            return client_left(request)
        except Exception as exc:  # noqa: BLE001 (any failure becomes {code, message})
            return error_response(exc, request)

    return answer


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text of this process's metrics; with a secret set, for an admin's
    bearer token only (the counters describe everyone's use)."""
    services = request.config_dict.get(SERVICES)
    if services is not None:
        try:
            who = caller(request)
        except AuthError as exc:
            return error_response(exc, request)
        if not who.is_admin:
            return error_response(ClientError("forbidden", "metrics are for admins"), request)
    body = exposition(
        request.config_dict[METRICS],
        services.settings.metrics_dir if services is not None else None,
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


def json_ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


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
