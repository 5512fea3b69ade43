"""The REST API (``/api``) as a sub-application: its routes are in
:mod:`socket_server.rest_personas`, :mod:`~socket_server.rest_studio`,
:mod:`~socket_server.rest_memory` and :mod:`~socket_server.rest_quality`; here is how
it fails: every failure, a path or method it does not have included, comes as
``{"error": {code, message}}`` with its HTTP status."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from socket_server.errors import client_left, error_response, http_error


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure of an /api request as a JSON error with its status."""
    try:
        return await handler(request)
    except ConnectionResetError:
        return client_left(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(http_error(exc), request)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # noqa: BLE001 (any failure becomes {code, message}, no traceback)
        return error_response(exc, request)
