"""``personae mcp``: the MCP server over stdio, for an assistant's client that starts it
as a command (Claude Desktop, Cursor, Zed...). The tools run in this process on the
configured services (the embedded ones by default, beside a running server too), as the
local user the command names; ``docs/ecosystem.md`` shows the clients' settings."""

from __future__ import annotations

import argparse
import re
from typing import Any

from runtime.infra.auth import LOCAL_USER, Principal
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.services import Overrides, open_services
from runtime.settings import Settings
from runtime.usecases.chat import ChatService

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
"""User names as the web page takes them."""


def user_name(text: str) -> str:
    """An argparse type: a user name (letters, digits, ``_ . @ -``, up to 64)."""
    if not _USER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: 1 to 64 letters, digits and _ . @ -, starting with a letter or digit"
        )
    return text


def add_commands(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio (for Claude Desktop, Cursor and other MCP clients)",
        description=__doc__,
    )
    mcp.add_argument(
        "--user",
        type=user_name,
        default=LOCAL_USER,
        help="whose memories the tools read and write (default: local, the user of the web "
        "page and the terminal chat when no secret is set)",
    )
    mcp.set_defaults(run=_mcp)


async def _mcp(settings: Settings, args: argparse.Namespace) -> int:
    await serve_stdio(settings, Principal(args.user, "admin"))
    return 0


async def serve_stdio(
    settings: Settings, principal: Principal, *, overrides: Overrides | None = None
) -> None:
    """Serve MCP on this process's stdin and stdout until the client closes them. The
    process owns the data it opens, so ``principal`` is an admin (its tools may name
    another user); the streams are taken before the services open, so nothing they
    print at start-up can reach the client."""
    # the SDK takes a second to import: only this command loads it
    from mcp.server.stdio import stdio_server

    from runtime.mcp import Caller, build_server

    async with (
        stdio_server() as (read, write),
        open_services(settings, overrides=overrides) as services,
    ):
        limiter = RateLimiter(
            services.redis,
            Limits(
                messages_per_minute=settings.rate_limit_per_minute,
                concurrent_turns=settings.max_concurrent_turns,
                fail_open=settings.rate_limit_fail_open,
            ),
            namespace=settings.redis_prefix,
        )
        chat = ChatService(services, limiter, Metrics.create())
        server = build_server(lambda _: Caller(chat, principal))
        try:
            await server.run(read, write, server.create_initialization_options())
        finally:
            await chat.drain(settings.shutdown_grace_s)  # memories of the last turn
