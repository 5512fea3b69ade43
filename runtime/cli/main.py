"""The personae command line: import and inspect personas and memories, mint tokens,
chat in the terminal and run the server."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from memory import MemoryLayerError
from personas import PersonaError
from runtime.cli import chat as cli_chat
from runtime.cli import mcp as cli_mcp
from runtime.cli import memory as cli_memory
from runtime.cli import personas as cli_personas
from runtime.cli import prompt as cli_prompt
from runtime.cli import sessions as cli_sessions
from runtime.cli import token as cli_token
from runtime.cli.args import (
    USAGE_EXIT,
    Parser,
    UsageError,
)
from runtime.cli.home import new_home_notice
from runtime.cli.logs import configure_logging
from runtime.errors import RuntimeLayerError, SettingsError
from runtime.infra.loop import run
from runtime.infra.migrate import migrate_url
from runtime.infra.server_lock import check_exposure
from runtime.infra.store_share import beside_server
from runtime.services import resolved_urls
from runtime.settings import Settings, load_settings

log = logging.getLogger("personae")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``personae`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except RuntimeLayerError as exc:
        print(f"personae: {exc}", file=sys.stderr)
        return 2
    serving = args.run is _serve
    if serving:
        try:
            check_exposure(settings)  # before anything is created or printed
        except SettingsError as exc:
            print(f"personae: {exc}", file=sys.stderr)
            return USAGE_EXIT
    notice = new_home_notice(settings) if _opens_data(args) else None
    if notice is not None:
        print(notice, file=sys.stderr)
    configure_logging(settings, verbose=args.verbose, serving=serving)
    if not serving:
        settings = beside_server(settings)  # a running server's embedded vector store
    try:
        return int(run(args.run(settings, args), settings.event_loop))
    except (UsageError, SettingsError) as exc:
        print(f"personae: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except (PersonaError, RuntimeLayerError, MemoryLayerError) as exc:
        print(f"personae: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _opens_data(args: argparse.Namespace) -> bool:
    """Whether the command reads or writes this machine's data (``token`` does not, nor
    a chat with a server at ``--url``)."""
    return args.run is not cli_token.mint and getattr(args, "url", None) is None


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="personae", description=__doc__)
    parser.set_defaults(verbose=False)
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser(
        "serve", help="run the chat server (web page, Socket.IO, REST and OpenAI-compatible API)"
    )
    serve.set_defaults(run=_serve)

    mig = sub.add_parser("migrate", help="apply pending database migrations")
    mig.set_defaults(run=_migrate)

    cli_personas.add_commands(sub)
    cli_memory.add_commands(sub)
    cli_prompt.add_commands(sub)
    cli_token.add_commands(sub)
    cli_sessions.add_commands(sub)
    cli_chat.add_commands(sub)
    cli_mcp.add_commands(sub)
    return parser


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from socket_server.app import run_server  # the transport sits above runtime

    await run_server(settings)
    return 0


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async with resolved_urls(settings) as (database_url, _):
        applied = await migrate_url(database_url)
    where = (
        f"the embedded database under {settings.home / 'pg'}"
        if settings.database_url is None
        else "the database of PERSONAE_DATABASE_URL"
    )
    print(
        f"applied {len(applied)} migration(s) to {where}"
        + (": " + ", ".join(applied) if applied else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
