"""The aiohttp application: one lifespan owning every service, the Socket.IO namespace,
the REST API (``/api``) and the OpenAI-compatible API (``/v1``) as sub-applications,
health and metrics routes, and the web client. This module wires the interfaces; none
of them imports it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from agents.llm import LOCAL
from runtime.infra.db import open_pool
from runtime.infra.loop import tune_collector
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.infra.server_lock import check_exposure, check_port_free, holding_home, server_url
from runtime.infra.store_share import lend_index
from runtime.infra.turn_order import Interrupts, SessionOrder
from runtime.services import (
    Overrides,
    consolidating,
    open_services,
    resolved_urls,
    summarizing,
)
from runtime.settings import Settings
from runtime.usecases.chat import ChatService
from runtime.views import ErrorBody, OpenAIErrorBody
from socket_server import (
    edge,
    fastjson,
    mcp_http,
    openai_api,
    openapi,
    rest,
    rest_memory,
    rest_personas,
    rest_quality,
    rest_studio,
)
from socket_server.auth import secret_of
from socket_server.keys import CHAT, METRICS, SERVICES, SIO
from socket_server.manager import ChatServer, RedisManager
from socket_server.namespace import ChatNamespace
from socket_server.ops import add_ops_routes
from socket_server.routes import Mount, sub_app
from socket_server.workers import supervise

log = logging.getLogger(__name__)

API = Mount(
    "/api",
    'the REST API (personas, sessions, memories, feedback); errors are {"error": {code, message}}',
    (
        *rest_personas.ROUTES,
        *rest_studio.ROUTES,
        *rest_memory.ROUTES,
        *rest_quality.ROUTES,
        openapi.ROUTE,
    ),
    ErrorBody,
)
V1 = Mount(
    "/v1",
    "the OpenAI-compatible chat API; errors come in OpenAI's shape",
    openai_api.ROUTES,
    OpenAIErrorBody,
)
MOUNTS = (API, V1)
STATIC = Path(__file__).resolve().parent / "static"
SOCKET_BUFFER = 256 * 1024
"""The largest Socket.IO message (Engine.IO ``maxPayload``) and polling POST body."""


def create_app(settings: Settings, *, overrides: Overrides | None = None) -> web.Application:
    """An app whose services open on start-up and close on clean-up, in that order.
    ``settings`` must carry the database and Redis URLs (see :func:`run_server`)."""
    if settings.redis_url is None or settings.database_url is None:
        raise ValueError("create_app needs resolved database and Redis URLs")
    metrics = Metrics.create()
    app = web.Application(
        client_max_size=1024**2,
        middlewares=[
            edge.origin_middleware(settings.origins, metrics, settings.hosts),
            edge.polling_guard(SOCKET_BUFFER, settings.body_timeout_s, metrics),
        ],
    )
    app[METRICS] = metrics
    app.on_response_prepare.append(edge.hide_server_version)
    sio = ChatServer(
        metrics=metrics,
        async_mode="aiohttp",
        json=fastjson,
        client_manager=RedisManager(
            settings.redis_url, channel=f"{settings.redis_prefix}-socketio"
        ),
        # the Origin check is socket_server.edge's, for Socket.IO and REST alike
        cors_allowed_origins=[],
        max_http_buffer_size=SOCKET_BUFFER,
        # worker processes share one port: a polling client's requests could reach any
        # of them, so only WebSocket connections are taken (see socket_server.workers)
        transports=["websocket"] if settings.worker is not None else None,
        ping_interval=25,
        ping_timeout=20,
    )
    app[SIO] = sio

    def chat() -> ChatService:
        return app[CHAT]

    secret = secret_of(settings)
    sio.register_namespace(ChatNamespace(chat, lambda: secret))
    sio.attach(app)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        lock_pool = settings.model_copy(
            update={"db_pool_min": 1, "db_pool_max": settings.db_lock_pool_max}
        )
        async with (
            open_services(settings, overrides=overrides) as services,
            open_pool(services.database_url, lock_pool) as locks,
            Interrupts(services.redis, f"{settings.redis_prefix}:interrupts") as interrupts,
            lend_index(settings, services.memory.index),  # CLI commands beside the server
            consolidating(services),  # facts about users, off the reply's path
            summarizing(services),  # summaries of sessions that went quiet or ended
        ):
            app[SERVICES] = services
            limiter = RateLimiter(
                services.redis,
                Limits(
                    messages_per_minute=settings.rate_limit_per_minute,
                    concurrent_turns=settings.max_concurrent_turns,
                    fail_open=settings.rate_limit_fail_open,
                    sessions_per_minute=settings.sessions_per_minute,
                ),
                namespace=settings.redis_prefix,
            )
            app[CHAT] = ChatService(services, limiter, metrics, SessionOrder(locks), interrupts)
            frozen = tune_collector()
            log.info("%d start-up objects frozen out of garbage collection", frozen)
            if not sio.manager_initialized:
                # subscribe now, not at the first connection (python-socketio's default):
                # other nodes learn at start-up that this one listens
                sio.manager_initialized = True
                sio.manager.initialize()
            yield
            left = await app[CHAT].drain(settings.shutdown_grace_s)
            if left:
                log.warning("cancelled %d turn(s) still running after the grace period", left)
            await sio.shutdown()
            await sio.manager.aclose()

    app.cleanup_ctx.append(lifespan)
    add_ops_routes(app)
    api = sub_app(API, rest.errors_middleware)
    api[openapi.DOCUMENT] = openapi.build_document(MOUNTS)
    app.add_subapp(API.prefix, api)
    app.add_subapp(V1.prefix, sub_app(V1, openai_api.errors_middleware))
    mcp_http.setup(app)  # after the lifespan: it stops first, while the services are open
    if STATIC.is_dir():
        app.router.add_get("/", chat_page(embedded=settings.llm == LOCAL))
        app.router.add_get("/studio", studio)
        app.router.add_static("/static/", STATIC, name="static")
    return app


DEMO_NOTE = 'data-testid="demo-note" hidden'


def chat_page(*, embedded: bool) -> Any:
    """The chat page; on the embedded model it says, where the conversation will be,
    that the model is a small demo and how to run a capable one."""
    page = (STATIC / "index.html").read_text()
    if embedded:
        page = page.replace(DEMO_NOTE, 'data-testid="demo-note"')

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    return index


async def studio(request: web.Request) -> web.FileResponse:
    """The persona studio: edit, generate and see how a persona holds up."""
    return web.FileResponse(STATIC / "studio.html")


async def run_server(
    settings: Settings,
    *,
    overrides: Overrides | None = None,
    worker_command: Sequence[str] | None = None,
) -> None:
    """Serve on the settings' host and port (embedded databases when no URL is set); with
    ``settings.workers > 1``, supervise that many worker processes, each running
    ``worker_command`` (``personae serve`` by default). Raises ``ServerRunning`` at once
    when another server runs on the port or with the home, and ``SettingsError`` when it
    would serve beyond loopback with no secret, unless that is allowed
    (``PERSONAE_ALLOW_OPEN_WITHOUT_SECRET``)."""
    check_exposure(settings)
    if settings.worker is not None:  # the supervisor checked and holds the home
        await _serve_resolved(settings, overrides)
        return
    check_port_free(settings)
    with holding_home(settings):
        if settings.workers > 1:
            await supervise(settings, worker_command)
        else:
            await _serve_resolved(settings, overrides)


async def _serve_resolved(settings: Settings, overrides: Overrides | None) -> None:
    async with resolved_urls(settings) as (database_url, redis_url):
        settings = settings.model_copy(
            update={"database_url": database_url, "redis_url": redis_url}
        )
        await serve(create_app(settings, overrides=overrides), settings)


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve ``app`` until SIGINT/SIGTERM: stop taking turns, let running ones finish
    within the grace period, then close every connection and service."""
    # a worker shares the port with its siblings; the kernel spreads connections
    runner = await start_site(
        app, settings, settings.host, settings.port, reuse_port=settings.worker is not None
    )
    if not settings.auth_enabled:
        log.warning(
            "no PERSONAE_AUTH_SECRET set: every client is a local admin; "
            "set a secret before exposing this server"
        )
    log.info("personae serving on http://%s:%d/", settings.host, settings.port)
    print(f"ready on {server_url(settings)} (PERSONAE_HOME {settings.home})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    orphaned = None
    if settings.worker is not None:
        orphaned = asyncio.create_task(_stop_when_orphaned(stop))
    try:
        await stop.wait()
    finally:
        if orphaned is not None:
            orphaned.cancel()
        log.info("shutting down: finishing running turns")
        left = await app[CHAT].drain(settings.shutdown_grace_s)
        if left:
            log.warning("cancelled %d turn(s) still running after the grace period", left)
        await runner.cleanup()


async def start_site(
    app: web.Application,
    settings: Settings,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    shutdown_timeout: float = 5.0,
) -> web.AppRunner:
    """Set ``app`` up and serve it on ``host:port`` with the connection limits
    (:class:`~socket_server.edge.ConnectionGuard`: ``PERSONAE_IDLE_TIMEOUT_S``,
    ``PERSONAE_MAX_CONNECTIONS_PER_CLIENT``); returns the runner to clean up."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        **edge.runner_options(settings.idle_timeout_s),
    )
    await runner.setup()
    assert runner.server is not None
    edge.ConnectionGuard(settings.max_connections_per_client, app[METRICS]).install(runner.server)
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    return runner


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """A worker whose supervisor died (killed, so it could not pass SIGTERM on) stops
    the same orderly way instead of serving on alone."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("the supervisor is gone; stopping")
    stop.set()
