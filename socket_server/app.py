"""The aiohttp application: one lifespan owning every service, health routes, and (in
later modules) the Socket.IO namespace, REST API and web client."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from runtime.services import Services, open_services
from runtime.settings import Settings

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)


def create_app(settings: Settings) -> web.Application:
    """An app whose services open on start-up and close on clean-up, in that order."""
    app = web.Application(client_max_size=1024**2)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return web.json_response({"status": "ok"})


async def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then close every service."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    if not settings.auth_enabled:
        log.warning(
            "no PERSONAE_AUTH_SECRET set: every client is a local admin; "
            "set a secret before exposing this server"
        )
    log.info("personae serving on http://%s:%d/", settings.host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
