"""The MCP server (:mod:`runtime.mcp`) over streamable HTTP at ``/mcp``, on the chat
server's port: the SDK's session manager answers each request (served through
:mod:`socket_server.asgi`) after the bearer token was checked as for ``/api`` and
``/v1``. With no secret set every local client is the admin; with one, a request without
a valid token is refused with 401 before the SDK sees it, and a user's token sees only
that user's memories.

The manager is stateless: each request stands alone (no ``Mcp-Session-Id``, no ``GET``
stream), so any worker process or node can answer any request, as for the other
interfaces. A tool call's progress notifications (a reply's text as it is written)
stream on that call's own response, as server-sent events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import INVALID_REQUEST

from runtime.infra.auth import AuthError, Principal
from runtime.mcp import Caller, build_server
from socket_server.asgi import serve_asgi
from socket_server.auth import caller
from socket_server.keys import CHAT, SERVICES, SIO
from socket_server.room_events import RoomEvents

log = logging.getLogger(__name__)

PATH = "/mcp"
MAX_BODY = 1024**2
PRINCIPAL = "personae.principal"
"""The ASGI scope's key for the caller, which the tools read back."""
MANAGER = web.AppKey("mcp_sessions", StreamableHTTPSessionManager)
_STOP_S = 10.0


def setup(app: web.Application) -> None:
    """Serve MCP at ``/mcp`` on ``app``, whose lifespan must have opened the services
    and the chat service; the session manager runs while the app does."""

    def resolve(ctx: ServerRequestContext[Any, Any]) -> Caller:
        request = ctx.request  # the SDK's view of the ASGI scope handed over below
        principal = request.scope.get(PRINCIPAL) if request is not None else None
        if not isinstance(principal, Principal):
            raise AuthError("authentication required: pass a bearer token")
        return Caller(app[CHAT], principal, lambda session_id: RoomEvents(app[SIO], session_id))

    app[MANAGER] = StreamableHTTPSessionManager(
        build_server(resolve), stateless=True, max_request_body_size=MAX_BODY
    )
    app.router.add_route("*", PATH, handle)
    app.cleanup_ctx.append(_sessions)


async def handle(request: web.Request) -> web.StreamResponse:
    """One MCP request, from an authenticated caller."""
    if request.method != "POST":
        # stateless: no stream of the server's own to GET (it would stay open and carry
        # nothing) and no session to DELETE; the specification's answer is 405
        return web.Response(status=405, headers={"Allow": "POST"})
    try:
        who = caller(request)
    except AuthError as exc:
        return refusal(str(exc))
    return await serve_asgi(
        request.app[MANAGER].handle_request,
        request,
        body_timeout_s=request.config_dict[SERVICES].settings.body_timeout_s,
        scope={PRINCIPAL: who},
    )


def refusal(message: str) -> web.Response:
    """401 as MCP clients read an error: a JSON-RPC error object, with the challenge."""
    return web.json_response(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": INVALID_REQUEST,
                "message": message,
                "data": {"code": "unauthorized"},
            },
        },
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="personae"'},
    )


async def _sessions(app: web.Application) -> AsyncIterator[None]:
    """Run the session manager in a task of its own (its task group must be entered and
    left in one task, which aiohttp's start-up and clean-up are not) while the app runs."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def host() -> None:
        async with app[MANAGER].run():
            started.set()
            await stop.wait()

    task = asyncio.create_task(host(), name="mcp-sessions")
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({task, ready}, timeout=_STOP_S, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not started.is_set():
        if task.done():
            task.result()  # raises what stopped it
        task.cancel()
        raise RuntimeError(f"the MCP session manager did not start within {_STOP_S:g} s")
    yield
    stop.set()
    _, pending = await asyncio.wait({task}, timeout=_STOP_S)
    if pending:
        log.warning("MCP requests still running after %g s: cancelled", _STOP_S)
        task.cancel()
        await asyncio.wait({task}, timeout=_STOP_S)
