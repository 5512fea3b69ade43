"""What a route reads from a request and how it writes its answer: JSON bodies, query
strings and path parameters validated with pydantic (bad input is ``invalid_payload``,
never a traceback), and views written as JSON responses."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from runtime.views import View
from socket_server.errors import ClientError
from socket_server.keys import SERVICES
from socket_server.payloads import find_nul

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
M = TypeVar("M", bound=BaseModel)


class Query(BaseModel):
    """A query string: values arrive as text and are coerced; unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Body(BaseModel):
    """A JSON body: every field checked, unknown ones refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


async def read_json(request: web.Request, model: type[M]) -> M:
    """The body as ``model``: it must be UTF-8 ``application/json`` holding an object."""
    if request.content_type != "application/json":
        raise ClientError("invalid_payload", "body: expected Content-Type application/json")
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise ClientError("invalid_payload", "body: JSON must be UTF-8")
    timeout_s = request.config_dict[SERVICES].settings.body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise ClientError("request_timeout", f"body: not received within {timeout_s:g} s") from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ClientError("invalid_payload", "body: not valid UTF-8") from None
    except RecursionError:
        raise ClientError("invalid_payload", "body: JSON nested too deeply") from None
    except ValueError as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise ClientError("invalid_payload", f"body: not valid JSON ({message})") from None
    if not isinstance(data, dict):
        raise ClientError("invalid_payload", "body: expected a JSON object")
    _refuse_nul(data, "body")
    return model.model_validate(data)


def _refuse_nul(value: object, where: str) -> None:
    nul = find_nul(value, where)
    if nul is not None:
        raise ClientError("invalid_payload", f"{nul}: must not contain NUL characters")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``; a parameter given twice is refused."""
    query = request.query
    repeated = sorted({k for k in query if len(query.getall(k)) > 1})
    if repeated:
        raise ClientError("invalid_payload", f"{repeated[0]}: given more than once")
    _refuse_nul(dict(query), "query")
    return model.model_validate(dict(query))


def path_key(request: web.Request) -> str:
    key = request.match_info["key"].strip()
    if not 1 <= len(key) <= 100 or "\x00" in key:
        raise ClientError("invalid_payload", "key: must be a persona id or slug")
    return key


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ClientError("invalid_payload", f"{name}: not a UUID") from None


def path_int(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ClientError("invalid_payload", f"{name}: must be a positive integer")
    return int(text)


def json_view(view: View, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``view`` as the JSON body of a response."""
    return web.json_response(view.wire(), status=status, headers=headers)
