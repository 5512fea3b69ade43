"""Who calls: the bearer token is read and verified here, once, for every HTTP interface
(``/api``, ``/v1``, ``/metrics``) and for Socket.IO's handshake, and the caller's
:class:`Principal` is put on the request for the routes to read."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from runtime.infra.auth import Principal, verify_token
from runtime.settings import Settings
from socket_server.errors import ClientError
from socket_server.keys import PRINCIPAL, SERVICES


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when the header is
    absent, of another scheme, or empty."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def secret_of(settings: Settings) -> str | None:
    """The JWT secret; None: no secret set, every caller is the local admin."""
    return settings.auth_secret.get_secret_value() if settings.auth_secret else None


def caller(request: web.Request) -> Principal:
    """Verify the request's bearer token. Raises :class:`runtime.infra.auth.AuthError`
    (401) when it is missing, forged or expired while a secret is set."""
    secret = secret_of(request.config_dict[SERVICES].settings)
    return verify_token(secret, bearer_token(request.headers.get("Authorization")))


def auth_middleware(public: Collection[Handler] = ()) -> Middleware:
    """A sub-application's authentication: every request, even to a path that does not
    exist, needs a valid token, except the ``public`` handlers' routes. Add it after
    the sub-application's error middleware, which turns the refusal into its 401."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler not in public:
            request[PRINCIPAL] = caller(request)
        return await handler(request)

    return authenticate


def principal(request: web.Request) -> Principal:
    """The caller (see :func:`auth_middleware`)."""
    return request[PRINCIPAL]


def require_editor(request: web.Request, what: str) -> Principal:
    """The caller when an editor or admin, else ``forbidden``; ``what`` says what the
    caller tried to do."""
    who = principal(request)
    if not who.is_editor:
        raise ClientError("forbidden", f"only an editor or admin may {what}")
    return who
