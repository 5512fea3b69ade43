"""``personae token``: mint a JWT for a user, signed with ``PERSONAE_AUTH_SECRET``."""

from __future__ import annotations

import argparse
from typing import Any

from runtime.cli.args import CliInputError, positive_int
from runtime.infra.auth import mint_token
from runtime.settings import Settings


def add_commands(sub: Any) -> None:
    token = sub.add_parser("token", help="mint a JWT for a user (needs PERSONAE_AUTH_SECRET)")
    token.add_argument("--user", required=True, help="the user the token names")
    token.add_argument(
        "--role", choices=("user", "editor", "admin"), default="user", help="what the token may do"
    )
    token.add_argument(
        "--ttl", type=positive_int, default=86_400, help="seconds the token is valid"
    )
    token.set_defaults(run=mint)


async def mint(settings: Settings, args: argparse.Namespace) -> int:
    """Print a token for ``--user`` with ``--role``, valid ``--ttl`` seconds."""
    if settings.auth_secret is None:
        raise CliInputError("PERSONAE_AUTH_SECRET is not set: the server needs no token")
    print(mint_token(settings.auth_secret.get_secret_value(), args.user, args.role, ttl_s=args.ttl))
    return 0
