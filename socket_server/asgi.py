"""An ASGI application served from an aiohttp handler, for one request: the request
becomes the ASGI ``http`` scope and its body the ``receive`` messages; what the
application sends becomes a streamed aiohttp response (server-sent events included).

The MCP SDK's streamable HTTP transport is an ASGI application; this lets it answer on
the chat server's own port, behind its middlewares and its authentication, without a
second web server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Exchange:
    """One request and its response, as ASGI's ``receive`` and ``send``."""

    def __init__(self, request: web.Request, body_timeout_s: float) -> None:
        self._request = request
        self._body_timeout_s = body_timeout_s
        self._body_read = False
        self._over = asyncio.Event()  # the response is complete or the client left
        self.response: web.StreamResponse | None = None

    def scope(self, extra: Mapping[str, Any]) -> Scope:
        r = self._request
        peer = r.transport.get_extra_info("peername") if r.transport else None
        here = r.transport.get_extra_info("sockname") if r.transport else None
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": f"{r.version.major}.{r.version.minor}",
            "method": r.method,
            "scheme": r.scheme,
            "path": r.path,
            "raw_path": r.raw_path.split("?", 1)[0].encode("latin-1"),
            "query_string": r.query_string.encode("latin-1"),
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in r.raw_headers],
            "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
            "server": tuple(here[:2]) if isinstance(here, tuple) else None,
            **extra,
        }

    async def receive(self) -> Message:
        if not self._body_read:
            content = self._request.content
            try:
                async with asyncio.timeout(self._body_timeout_s):
                    chunk = await content.readany()
            except TimeoutError:
                log.info(
                    "%s %s: body not received in time", self._request.method, self._request.path
                )
                self._body_read = True
                self._over.set()
                return {"type": "http.disconnect"}
            self._body_read = not chunk or content.at_eof()
            return {"type": "http.request", "body": chunk, "more_body": not self._body_read}
        # after the body, a receive waits for the end: ASGI's way to tell of a disconnect
        await self._over.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        try:
            if kind == "http.response.start":
                headers: CIMultiDict[str] = CIMultiDict(
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                    for k, v in message.get("headers", ())
                )
                self.response = web.StreamResponse(status=int(message["status"]), headers=headers)
                await self.response.prepare(self._request)
            elif kind == "http.response.body" and self.response is not None:
                body = bytes(message.get("body", b""))
                if body:
                    await self.response.write(body)
                if not message.get("more_body", False):
                    await self.response.write_eof()
                    self._over.set()
        except (ConnectionResetError, RuntimeError) as exc:
            # the client left (aiohttp raises RuntimeError on a closed transport too):
            # ASGI 2.4 says OSError, which the application takes as a disconnect
            self._over.set()
            raise OSError(f"client left: {exc}") from None

    def end(self) -> None:
        """The application returned: a ``receive`` still waiting hears of the end."""
        self._over.set()

    def finish(self) -> web.StreamResponse:
        if self.response is None:
            log.error(
                "%s %s: the application sent no response", self._request.method, self._request.path
            )
            return web.json_response(
                {"error": {"code": "internal", "message": "no response"}}, status=500
            )
        return self.response


async def serve_asgi(
    app: ASGIApp,
    request: web.Request,
    *,
    body_timeout_s: float,
    scope: Mapping[str, Any] | None = None,
) -> web.StreamResponse:
    """Answer ``request`` with ``app``; ``scope`` adds keys to the ASGI scope (what the
    application should know of the caller). The body must arrive within
    ``body_timeout_s``."""
    exchange = _Exchange(request, body_timeout_s)
    try:
        await app(exchange.scope(scope or {}), exchange.receive, exchange.send)
    finally:
        exchange.end()
    return exchange.finish()
