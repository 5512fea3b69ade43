"""How an HTTP interface is declared: each route once, as a :class:`Route` (its handler,
what it reads and what it answers), and each interface as a :class:`Mount` of routes
under a prefix with the view its errors come in. The same declarations build the
aiohttp sub-application (:func:`sub_app`) and the OpenAPI document
(:mod:`socket_server.openapi`), so neither can drift from the other."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel

from socket_server.auth import auth_middleware


@dataclass(frozen=True, slots=True)
class Route:
    """One route: how it is served and how it is documented.

    ``path`` is relative to the mount, in aiohttp's syntax (``/models/{model:.+}``).
    ``response`` is the view of the success body (None: no body); ``events`` the view of
    each server-sent event when the route may stream instead; ``errors`` lists the
    statuses beyond those every route may answer (401 unless ``public``, 400 with a
    query, a body or a path parameter it checks, 413 with a body, 500)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    status: int = 200
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    events: type[BaseModel] | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    """An interface: its routes under ``prefix``, its errors as ``error`` bodies."""

    prefix: str
    title: str
    routes: tuple[Route, ...]
    error: type[BaseModel]


def sub_app(mount: Mount, errors: Middleware) -> web.Application:
    """The mount's routes as an application to nest under its prefix: ``errors`` turns
    every failure (a refused token included) into the interface's error body; every
    route but the public ones needs a valid bearer token.

    Registration order does not matter: aiohttp tries a path's most specific resource
    first (``/personas/search`` before ``/personas/{key}``), whatever the order they were
    added in (tests/socket_server/test_routes.py checks it)."""
    public = [r.handler for r in mount.routes if r.public]
    app = web.Application(middlewares=[errors, auth_middleware(public)])
    for route in mount.routes:
        app.router.add_route(route.method, route.path, route.handler)
    return app
