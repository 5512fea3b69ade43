"""What every HTTP request passes before its route: the ``Origin`` check (Socket.IO and
REST), CORS for the origins a deployment allows, no server version in responses, and an
access log that writes neither tokens nor search text.

A browser sends ``Origin`` with every WebSocket handshake and every cross-site or
state-changing request, and a page cannot forge it. Without the check, any site a user
visits could open a socket to a server on their machine (where, with no secret set,
every client is the local admin) and read every transcript. Requests without
``Origin`` (programs, same-origin navigation) pass: they are not a page acting for
someone else.

``Origin`` alone does not stop DNS rebinding: a page of ``evil.example`` whose name is
re-pointed at 127.0.0.1 is same-origin with the server, its requests name
``Host: evil.example``, and a plain ``GET`` carries no ``Origin`` at all. So with no
secret set, a request must be addressed to localhost, an IP address, or a name the
deployment allows (``PERSONAE_ALLOWED_HOSTS``, the hosts of ``PERSONAE_ALLOWED_ORIGINS``);
with a secret, a page cannot act without a token, and any name is served."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from aiohttp.web_log import AccessLogger

from runtime.infra.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
_CORS_HEADERS = "Authorization, Content-Type"
SERVER_NAME = "personae"


def own_origin(request: web.Request) -> str:
    """The origin the request was addressed to (its scheme and ``Host``)."""
    return f"{request.scheme}://{request.host}".lower()


def host_allowed(host: str, allowed: frozenset[str] | None) -> bool:
    """Whether a request's ``Host`` (``name[:port]``) names this server: ``allowed`` is
    ``None`` (any), or the name is localhost, an IP address or one of ``allowed``."""
    if allowed is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_middleware(
    allowed: frozenset[str], metrics: Metrics, hosts: frozenset[str] | None = None
) -> Middleware:
    """Refuse a foreign ``Origin`` on Socket.IO (every transport, before the handshake)
    and on state-changing REST calls, with 403; answer CORS for ``allowed`` origins only
    (same-origin needs none). With ``hosts`` (no secret set), refuse every request whose
    ``Host`` is not localhost, an IP address or one of ``hosts`` (DNS rebinding), and a
    POST to ``/api`` or ``/v1`` another site's page could send without a preflight that
    has neither ``Origin`` nor ``Authorization``."""

    @web.middleware
    async def check_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.host, hosts):
            metrics.origins_refused.inc()
            log.warning(
                "refused %s %s addressed to host %r (set PERSONAE_ALLOWED_HOSTS to serve it)",
                request.method,
                request.path,
                request.host[:200],
            )
            return web.json_response(
                {"error": {"code": "forbidden", "message": "host not allowed"}}, status=403
            )
        origin = request.headers.get("Origin")
        if origin is None:
            if hosts is not None and _needs_a_sender(request):
                metrics.origins_refused.inc()
                log.warning(
                    "refused %s %s with neither Origin nor Authorization",
                    request.method,
                    request.path,
                )
                return web.json_response(
                    {
                        "error": {
                            "code": "forbidden",
                            "message": "a change needs an Origin or an Authorization header",
                        }
                    },
                    status=403,
                )
            return await handler(request)
        origin = origin.strip().lower()
        extra = origin in allowed
        ok = extra or origin == own_origin(request)
        socket = request.path.startswith("/socket.io/")
        if not ok and (socket or request.method in _UNSAFE):
            metrics.origins_refused.inc()
            log.warning(
                "refused %s %s from origin %r (not %s)",
                request.method,
                request.path,
                origin[:200],
                "allowed" if allowed else "this server's own",
            )
            return web.json_response(
                {"error": {"code": "forbidden", "message": "origin not allowed"}}, status=403
            )
        if extra and request.method == "OPTIONS" and not socket:
            return web.Response(status=204, headers=_cors(origin, preflight=True))
        response = await handler(request)
        if extra and not response.prepared:
            response.headers.update(_cors(origin, preflight=False))
        return response

    return check_origin


_SIMPLE_TYPES = frozenset(
    {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
"""Content types a page of another site may POST without a CORS preflight (or none)."""


def _needs_a_sender(request: web.Request) -> bool:
    """Whether a request is one a page of another site could send without a CORS
    preflight (a POST with no body, a form's or plain text), to ``/api`` or ``/v1``,
    that says neither where it comes from (``Origin``: browsers send it with such
    requests, so only an old or unusual one leaves it out) nor whom it acts for
    (``Authorization``: no page can add it to another site's request without the CORS
    it is not given). With no secret, the server takes none of those: programs pass any
    bearer token, or send JSON."""
    return (
        request.method == "POST"
        and request.path.startswith(("/api/", "/v1/"))
        and "Authorization" not in request.headers
        and request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        in _SIMPLE_TYPES
    )


def polling_guard(max_bytes: int, timeout_s: float, metrics: Metrics) -> Middleware:
    """Bound a long-polling POST: refuse one declaring more than ``max_bytes`` before
    reading it (413), give its body ``timeout_s`` to arrive (408), and take a client
    that leaves mid-body for what it is, not a server error."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.startswith("/socket.io/"):
            return await handler(request)
        declared = request.content_length
        if declared is not None and declared > max_bytes:
            return web.json_response(
                {"error": {"code": "body_too_large", "message": "body: larger than allowed"}},
                status=413,
            )
        try:
            async with asyncio.timeout(timeout_s):
                return await handler(request)
        except TimeoutError:
            log.info("polling POST of %s: body not received within %g s", request.remote, timeout_s)
            return web.json_response(
                {"error": {"code": "request_timeout", "message": "body: not received in time"}},
                status=408,
            )
        except ConnectionResetError:
            metrics.client_aborts.inc()
            log.info("client left a polling POST before it was answered")
            return web.Response(status=400, text="connection lost")
        except KeyError:
            # python-engineio's lookup of a session that closed while the POST was on
            # its way: the client's mistake to resend on, not a server error
            log.info("polling POST of %s for a session that is closing", request.remote)
            return web.json_response(
                {"error": {"code": "invalid_payload", "message": "the session is closed"}},
                status=400,
            )

    return guard


def _cors(origin: str, *, preflight: bool) -> dict[str, str]:
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }
    if preflight:
        headers["Access-Control-Allow-Methods"] = _CORS_METHODS
        headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
        headers["Access-Control-Max-Age"] = "600"
    return headers


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: name the server without its Python and aiohttp versions,
    and let no other site frame its pages (with no secret the page is the local admin's:
    a framing page could lead its clicks)."""
    response.headers["Server"] = SERVER_NAME
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


class ConnectionGuard:
    """Limits on connections before any request is read, on a server's own copy of
    aiohttp's ``Server`` (:meth:`install`): at most ``per_client`` open connections per
    client address (one more is closed at once, counted and logged once a minute per
    address), so one client cannot take every file descriptor and starve the others;
    a connection silent for the idle timeout is closed by aiohttp's keep-alive timer,
    which the runner arms from the connection's start (:func:`runner_options`)."""

    def __init__(self, per_client: int, metrics: Metrics) -> None:
        self.per_client = per_client
        self._metrics = metrics
        self._open: dict[str, int] = {}
        self._counted: dict[int, str] = {}  # id(handler) -> address
        self._warned: dict[str, float] = {}

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._made(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None) -> None:
            self._lost(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign,assignment]

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)

    def _made(self, handler: object, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unix"
        count = self._open.get(address, 0)
        self._open[address] = count + 1
        self._counted[id(handler)] = address
        if count >= self.per_client:
            self._metrics.connections_refused.inc()
            now = time.monotonic()
            if now - self._warned.get(address, -60.0) >= 60.0:
                self._warned[address] = now
                log.warning(
                    "closing connections from %s: more than %d open "
                    "(PERSONAE_MAX_CONNECTIONS_PER_CLIENT)",
                    address,
                    self.per_client,
                )
            # closed the way aiohttp closes an idle connection, once its handler waits
            # for a request (the handler starts on the next turn of the loop)
            force_close = getattr(handler, "force_close", transport.abort)
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, force_close)

    def _lost(self, handler: object) -> None:
        address = self._counted.pop(id(handler), None)
        if address is None:
            return
        left = self._open.get(address, 1) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
            self._warned.pop(address, None)


def runner_options(idle_timeout_s: float) -> dict[str, Any]:
    """aiohttp's handler options for a server's runner: a connection that sends no
    whole request within ``idle_timeout_s`` of its start, or of its last response, is
    closed (aiohttp's own default keeps a silent connection for an hour)."""
    return {"keepalive_timeout": idle_timeout_s, "access_log_class": ACCESS_LOGGER}


class QuietAccessLogger(AccessLogger):
    """aiohttp's access log line with the path only: query strings carry tokens
    (``?token=``), search text (``?q=``) and cursors, none of which belong in a log."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        try:
            self.logger.info(
                '%s "%s %s HTTP/%d.%d" %d %d %.3f',
                request.remote,
                request.method,
                request.path,
                request.version.major,
                request.version.minor,
                response.status,
                response.body_length,
                time,
            )
        except Exception:  # a log line must never fail a request
            self.logger.exception("access log line failed")


ACCESS_LOGGER: type[AbstractAccessLogger] = QuietAccessLogger
