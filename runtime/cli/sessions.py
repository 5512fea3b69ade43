"""``personae sessions list|show|export``: chat sessions and their transcripts, as an
operator sees them (every user's)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from memory.record.transcripts import Message, Transcripts
from runtime.cli.args import positive_int, uuid_arg, writable_file, write_json_lines
from runtime.services import open_core
from runtime.settings import Settings

_PAGE = 200


def add_commands(sub: Any) -> None:
    sessions = sub.add_parser(
        "sessions", help="list, show and export chat sessions"
    ).add_subparsers(title="actions")
    lst = sessions.add_parser("list", help="sessions, the latest first")
    lst.add_argument("--user", help="only this user's sessions (default: everyone's)")
    lst.add_argument("--limit", type=positive_int, default=50, help="at most this many")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(run=_list)
    show = sessions.add_parser("show", help="a session's transcript")
    show.add_argument("session", type=uuid_arg, help="the session id")
    show.add_argument("--json", action="store_true", help="print the messages as JSON lines")
    show.set_defaults(run=_show)
    exp = sessions.add_parser(
        "export", help="a session's messages as JSON lines (the format memory import reads)"
    )
    exp.add_argument("session", type=uuid_arg, help="the session id")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(run=_export)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_core(settings) as core:
        found = await Transcripts(core.pool).session_summaries(args.user, limit=args.limit)
    for s in found:
        if args.json:
            print(
                json.dumps(
                    {
                        "id": str(s.id),
                        "user": s.user_id,
                        "title": s.title,
                        "personas": list(s.personas),
                        "messages": s.messages,
                        "updated_at": s.updated_at.isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            when = s.updated_at.strftime("%Y-%m-%d %H:%M")
            personas = ", ".join(s.personas)
            print(f"{s.id}  {when}  {s.user_id:16} {s.messages:5d} msgs  {personas}")
    if not found:
        print("no sessions" + (f" of user {args.user!r}" if args.user else ""), file=sys.stderr)
    return 0


async def _messages(settings: Settings, session_id: uuid.UUID) -> list[Message]:
    async with open_core(settings) as core:
        transcripts = Transcripts(core.pool)
        await transcripts.get_session(session_id)  # SessionNotFound names it
        out: list[Message] = []
        before = None
        while True:
            page = await transcripts.history(session_id, before=before, limit=_PAGE)
            out[:0] = page.items
            if page.before is None:
                return out
            before = page.before


async def _show(settings: Settings, args: argparse.Namespace) -> int:
    for m in await _messages(settings, args.session):
        if args.json:
            print(json.dumps(_message_line(m), ensure_ascii=False))
            continue
        flag = "" if m.status == "complete" else f" [{m.status}]"
        print(f"{m.created_at:%H:%M} {m.speaker}{flag}: {m.text}")
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    output = writable_file(args.output) if args.output else None
    lines = [_message_line(m) for m in await _messages(settings, args.session)]
    write_json_lines(lines, output, f"{len(lines)} message(s) of session {args.session}")
    return 0


def _message_line(m: Message) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "session": str(m.session_id),
        "user": m.user_id,
        "role": m.role,
        "speaker": m.speaker,
        "text": m.text,
        "timestamp": m.created_at.isoformat(),
    }
