"""``personae memory import|search|stats|list|delete|export|forget|facts|correct-fact|
delete-fact``: a persona's memories from the command line (importing chat history,
searching with the score breakdown, forgetting a user or a session in both stores with
the facts derived from them, what a persona knows about a user)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from tqdm import tqdm

from memory import MemoryFilter, MemoryRecord, ScoredMemory, check_name
from memory.record.facts import Fact
from memory.service import MemoryService, NewMemory
from memory.types import SpeakerRole
from runtime.cli.args import (
    CliInputError,
    UsageError,
    bounded_text,
    int_in,
    positive_int,
    uuid_arg,
    writable_file,
    write_json_lines,
)
from runtime.infra.auth import Principal
from runtime.services import Overrides, open_services
from runtime.settings import Settings
from runtime.usecases.facts import Facts
from runtime.views import FactView

# memory commands never extract traits: skip building the trait scorer
_NO_SCORER = Overrides(trait_scorer=False)
_IMPORT_NAMESPACE = uuid.UUID("6f1d1c52-3a0e-4c55-9a3c-7b4f0f6b2e10")
_PAGE = 200
_ADMIN = Principal("cli", "admin")  # the command line owns the data it opens


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class ImportLine(_Line):
    """One line of a ``personae memory import`` file (JSON lines).

    ``text`` is required; ``speaker`` may be left out when ``role`` says who spoke
    (``user``: the importing user; ``assistant`` or ``persona``: the persona)."""

    text: str = Field(min_length=1, max_length=20_000)
    speaker: str | None = Field(default=None, min_length=1, max_length=120)
    role: str | None = Field(default=None, pattern="^(user|persona|assistant|system)$")
    session: str | None = Field(default=None, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=128)
    timestamp: dt.datetime | None = None
    id: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str = Field(default="turn", pattern="^(turn|fact|summary|reflection)$")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("speaker")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "speaker", max_chars=120)

    @model_validator(mode="after")
    def _someone_spoke(self) -> ImportLine:
        if self.speaker is None and self.role is None:
            raise ValueError("needs 'speaker' or 'role' (user, assistant, persona or system)")
        return self

    @field_validator("metadata")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        # NaN and Infinity are not JSON: stored payloads must read back as they were written
        if not _all_finite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return value


def _all_finite(value: object, depth: int = 0) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 64:
        return True
    if isinstance(value, dict):
        return all(_all_finite(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v, depth + 1) for v in value)
    return True


MAX_K = 100

IMPORT_FORMAT = """\
Each line of FILE is one JSON object: a message to remember.

  text       what was said (required)
  speaker    who said it; may be left out when "role" is given
  role       "user" (the user: --user, or "user" below), "assistant" or "persona"
             (the persona), or "system"; without it, a speaker named like the
             persona is the persona and anyone else the user
  session    a conversation id, so lines of one conversation belong together
  user       the user this line belongs to (default: --user)
  timestamp  when it was said, ISO 8601 (default: now)
  id         your id for the line; re-importing it overwrites instead of adding
  kind       "turn" (default), "fact", "summary" or "reflection"
  metadata   any JSON object, stored as given

Example:
  {"role": "user", "text": "My cat is called Miso.", "session": "s1"}
  {"role": "assistant", "text": "Miso is a lovely name!", "session": "s1"}

Importing the same file again changes nothing: lines without an id get one from
persona, user, session, time, speaker and text.
"""


class QueryLine(_Line):
    query: str = Field(min_length=1, max_length=2_000)
    k: int = Field(default=10, ge=1, le=MAX_K)
    session: str | None = None
    id: str | int | None = None


def add_commands(sub: Any) -> None:
    memory = sub.add_parser(
        "memory", help="import, search, count, list, export, delete and forget memories"
    ).add_subparsers(title="actions")
    imp = memory.add_parser(
        "import",
        help="import chat history (JSON lines) as memories",
        description=IMPORT_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", type=Path, help="a JSON-lines file, one line per message")
    imp.add_argument("--persona", required=True, help="slug or id")
    imp.add_argument("--user", default="local", help="user for lines without one")
    imp.add_argument("--batch", type=int_in(1, 10_000), default=64, help="lines embedded per call")
    imp.set_defaults(run=_import)
    search = memory.add_parser("search", help="search a persona's memories")
    search.add_argument("--persona", required=True, help="slug or id")
    group = search.add_mutually_exclusive_group(required=True)
    group.add_argument("--query", type=bounded_text(2_000), help="what to look for")
    group.add_argument("--queries", type=Path, help="JSON lines of {query, k?, session?, id?}")
    search.add_argument(
        "-k", type=int_in(1, MAX_K), default=10, help=f"results per query (1-{MAX_K})"
    )
    search.add_argument("--session", help="only memories of this session")
    search.add_argument("--user", help="only this user's memories (default: all users)")
    search.add_argument("--json", action="store_true", help="print one JSON object a query")
    search.set_defaults(run=_search)
    stats = memory.add_parser("stats", help="memories per persona, sessions and messages")
    stats.set_defaults(run=_stats)
    lst = memory.add_parser("list", help="a persona's memories, the newest first")
    _scope(lst)
    lst.add_argument("--session", help="only memories of this session")
    lst.add_argument("--limit", type=positive_int, default=50, help="at most this many")
    lst.add_argument("--json", action="store_true", help="print JSON lines")
    lst.set_defaults(run=_list)
    delete = memory.add_parser("delete", help="delete memories by id")
    _scope(delete)
    delete.add_argument("ids", nargs="+", type=uuid_arg, help="memory ids (see memory list)")
    delete.set_defaults(run=_delete)
    exp = memory.add_parser(
        "export", help="a persona's memories as JSON lines (the format memory import reads)"
    )
    _scope(exp)
    exp.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    exp.set_defaults(run=_export)
    forget = memory.add_parser(
        "forget", help="forget a user or a session: its memories and its transcripts"
    )
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", help="every session and memory of this user")
    which.add_argument(
        "--session",
        type=uuid_arg,
        help="this session, its memories and the facts derived from it (a fact those had "
        "superseded is current again)",
    )
    forget.set_defaults(run=_forget)
    facts = memory.add_parser(
        "facts", help="what a persona knows about a user: facts, current and superseded"
    )
    facts.add_argument("--persona", required=True, help="slug or id")
    facts.add_argument("--user", required=True, help="the user")
    facts.add_argument("--current", action="store_true", help="only the current facts")
    facts.add_argument("--json", action="store_true", help="print JSON lines")
    facts.set_defaults(run=_facts)
    correct = memory.add_parser(
        "correct-fact", help="correct a current fact (the new text supersedes it)"
    )
    correct.add_argument("--persona", required=True, help="slug or id")
    correct.add_argument("--user", required=True, help="the user")
    correct.add_argument("fact_id", type=uuid_arg, help="a fact id (see memory facts)")
    correct.add_argument("text", type=bounded_text(500), help="what is true instead")
    correct.set_defaults(run=_correct_fact)
    delete_fact = memory.add_parser(
        "delete-fact", help="forget a fact (nothing it superseded becomes current again)"
    )
    delete_fact.add_argument("--persona", required=True, help="slug or id")
    delete_fact.add_argument("--user", required=True, help="the user")
    delete_fact.add_argument("fact_id", type=uuid_arg, help="a fact id (see memory facts)")
    delete_fact.set_defaults(run=_delete_fact)


def _scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persona", required=True, help="slug or id")
    parser.add_argument("--user", help="only this user's memories (default: every user's)")


MAX_LINE_BYTES = 1024**2
"""The longest line of an import file: a memory's text is at most 20,000 characters, and
a line is read no further than this, so one huge line cannot fill memory."""


def _lines(path: Path, model: type[BaseModel]) -> Iterator[tuple[int, Any]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CliInputError(f"{path}: cannot read: {exc}") from None
    with handle:
        number = 0
        while raw_bytes := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw_bytes) > MAX_LINE_BYTES:  # read no further than the limit
                raise CliInputError(
                    f"{path}:{number}: longer than {MAX_LINE_BYTES // 1024**2} MiB (one memory a line)"
                )
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise CliInputError(f"{path}:{number}: not valid UTF-8") from None
            if not raw.strip():
                continue
            try:
                yield number, model.model_validate_json(raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "line"
                raise CliInputError(f"{path}:{number}: {where}: {err['msg']}") from None


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    lines = [line for _, line in _lines(args.file, ImportLine)]  # all validated first
    # thousands of lines: rate importance with the heuristic, not one model call a line
    settings = settings.model_copy(
        update={"llm_judges": False, "embedding_threads": import_threads(settings)}
    )
    async with open_services(settings, overrides=_NO_SCORER) as services:
        persona = await services.personas.get(args.persona)
        with tqdm(
            total=len(lines), desc="importing", unit="memory", file=sys.stderr, disable=None
        ) as bar:
            stored = await import_memories(
                services.memory,
                persona_id=str(persona.id),
                persona_name=persona.name,
                user=args.user,
                lines=lines,
                batch=args.batch,
                progress=bar.update,
            )
    print(f"imported {stored} memories for {persona.slug} from {args.file}")
    return 0


def import_threads(settings: Settings) -> int:
    """The embedder's threads for an import: ``PERSONAE_EMBEDDING_THREADS`` when it is
    set, else every core (an import is a bulk job, and each thread encodes its own
    texts; ``docs/performance.md``)."""
    if "embedding_threads" in settings.model_fields_set:
        return settings.embedding_threads
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


async def import_memories(
    memory: MemoryService,
    *,
    persona_id: str,
    persona_name: str,
    user: str,
    lines: Sequence[ImportLine],
    batch: int = 64,
    progress: Callable[[int], object] | None = None,
    context_lines: int | None = None,
) -> int:
    """Store import lines as memories of a persona, ``batch`` at a time; returns how many.

    Every line gets a stable id, so importing the same lines again overwrites instead of
    duplicating: from its ``id`` when it has one, else from who said what, when and where
    (persona, user, session, time, speaker, text, and which repeat of that line it is)."""
    if batch < 1:
        raise CliInputError(f"--batch must be at least 1, not {batch}")
    repeats: Counter[str] = Counter()
    items = []
    for line in lines:
        item = _new_memory(persona_id, persona_name, user, line)
        if item.id is None:
            when = item.created_at.isoformat() if item.created_at is not None else ""
            key = "\x1f".join(
                (
                    persona_id,
                    item.user_id,
                    item.session_id or "",
                    when,
                    item.speaker_name,
                    item.text,
                )
            )
            repeats[key] += 1
            item = replace(item, id=uuid.uuid5(_IMPORT_NAMESPACE, f"{key}\x1f{repeats[key]}"))
        items.append(item)
    items = with_context(items, CONTEXT_LINES if context_lines is None else context_lines)
    stored = 0
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        stored += len(await memory.remember(chunk))
        if progress is not None:
            progress(len(chunk))
    return stored


CONTEXT_LINES = 2
"""Lines either side of a memory that its keywords are indexed with."""


def with_context(items: Sequence[NewMemory], around: int) -> list[NewMemory]:
    """Each line with the ``around`` lines before and after it in its conversation (same
    user and session, in file order) as its context; lines without a session stand
    alone."""
    conversations: dict[tuple[str, str], list[int]] = {}
    for row, item in enumerate(items):
        if item.session_id is not None:
            conversations.setdefault((item.user_id, item.session_id), []).append(row)
    out = list(items)
    for rows in conversations.values():
        spoken = [items[row].spoken for row in rows]
        for at, row in enumerate(rows):
            before = spoken[max(0, at - around) : at]
            after = spoken[at + 1 : at + 1 + around]
            out[row] = replace(items[row], context=(*before, *after))
    return out


def _new_memory(persona_id: str, persona_name: str, user: str, line: ImportLine) -> NewMemory:
    role = _role(line, persona_name)
    speaker = line.speaker or (persona_name if role == "persona" else line.user or user)
    when = line.timestamp
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    user_id = line.user or user
    return NewMemory(
        persona_id=persona_id,
        user_id=user_id,
        session_id=line.session,
        speaker_name=speaker,
        speaker_role=role,
        text=line.text,
        kind=line.kind,  # type: ignore[arg-type]
        created_at=when,
        external_id=line.id,
        metadata=line.metadata,
        # the same external id imported again overwrites instead of duplicating
        id=uuid.uuid5(_IMPORT_NAMESPACE, f"{persona_id}:{line.id}") if line.id else None,
    )


def _role(line: ImportLine, persona_name: str) -> SpeakerRole:
    if line.role in ("assistant", "persona"):
        return "persona"
    if line.role in ("user", "system"):
        return line.role  # type: ignore[return-value]
    return "persona" if line.speaker == persona_name else "user"


async def _search(settings: Settings, args: argparse.Namespace) -> int:
    queries = (
        [(None, QueryLine(query=args.query, k=args.k, session=args.session))]
        if args.query
        else list(_lines(args.queries, QueryLine))
    )
    async with open_services(settings, overrides=_NO_SCORER) as services:  # one model load
        persona = await services.personas.get(args.persona)
        for _, q in queries:
            found = await services.memory.search(
                persona_id=str(persona.id),
                user_id=args.user,
                text=q.query,
                k=q.k,
                session_id=q.session,
            )
            if args.json or args.queries:
                out: dict[str, Any] = {"query": q.query, "results": [_result(m) for m in found]}
                if q.id is not None:
                    out = {"id": q.id, **out}
                print(json.dumps(out, ensure_ascii=False))
            else:
                for m in found:
                    label = m.record.external_id or str(m.record.id)
                    print(
                        f"{m.score.total:7.4f}  {label:24} {m.record.speaker_name}: "
                        f"{m.record.text[:100]}"
                    )
    return 0


def _result(m: ScoredMemory) -> dict[str, Any]:
    r, s = m.record, m.score
    return {
        "id": str(r.id),
        "external_id": r.external_id,
        "text": r.text,
        "speaker": r.speaker_name,
        "session": r.session_id,
        "user": r.user_id,
        "created_at": r.created_at.isoformat(),
        "score": round(s.total, 6),
        "relevance": round(s.relevance, 6),
        "keyword": round(s.keyword, 6),
        "relevance_z": round(s.relevance_z, 6),
        "keyword_z": round(s.keyword_z, 6),
        "speaker_named": s.speaker,
        "recency": round(s.recency, 6),
        "importance": round(s.importance, 6),
    }


async def _stats(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        total = 0
        offset = 0
        while True:
            page = await services.personas.list(offset=offset, limit=200)
            for p in page.items:
                n = await services.memory.index.count(str(p.id))
                total += n
                if n:
                    print(f"{p.slug:32} {n:9d} memories")
            offset += len(page.items)
            if not page.items or offset >= page.total:
                break
        sessions, messages = await services.memory.transcripts.totals()
    print(f"{total} memories, {sessions} sessions, {messages} messages")
    return 0


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


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    shown = 0
    for r in await _records(settings, args, args.limit):
        shown += 1
        if args.json:
            line = {"memory_id": str(r.id), "pinned": r.pinned, **_memory_line(r)}
            print(json.dumps(line, ensure_ascii=False))
        else:
            pin = " [pinned]" if r.pinned else ""
            print(
                f"{r.id}  {r.created_at:%Y-%m-%d %H:%M}  {r.user_id:12} {r.speaker_name}{pin}: "
                f"{r.text[:100]}"
            )
    if not shown:
        print("no memories", file=sys.stderr)
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    output = writable_file(args.output) if args.output else None
    lines = [_memory_line(r) for r in await _records(settings, args, None)]
    lines.reverse()  # oldest first, as a history reads
    write_json_lines(lines, output, f"{len(lines)} memories of {args.persona}")
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


async def _delete(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        persona = await services.personas.get(args.persona)
        for memory_id in args.ids:  # each checked first: an unknown id stops with its name
            await services.memory.get(memory_id, persona_id=str(persona.id), user_id=args.user)
        for memory_id in args.ids:
            await services.memory.delete(memory_id, persona_id=str(persona.id), user_id=args.user)
    print(f"deleted {len(args.ids)} memory(ies) of {persona.slug}")
    return 0


async def _forget(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        if args.session is not None:
            await services.memory.transcripts.get_session(args.session)
            messages, memories = await services.memory.forget_session(args.session)
            print(
                f"forgot session {args.session}: {messages} message(s), {memories} memories "
                "(with the facts derived from its messages; a fact they had superseded is "
                "current again)"
            )
        else:
            if not args.user.strip():
                raise UsageError("--user: must not be empty")
            sessions, memories = await services.memory.forget_user(args.user)
            print(
                f"forgot user {args.user!r}: {sessions} session(s), {memories} memories "
                "(with the facts derived from them)"
            )
    return 0


def _fact_line(f: Fact) -> str:
    state = "current" if f.current else f"until {f.valid_until:%Y-%m-%d}"
    origin = "" if f.origin == "said" else f" [{f.origin}]"
    return f"{f.id}  {f.subject:20} since {f.valid_from:%Y-%m-%d} ({state}){origin}: {f.text}"


async def _facts(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        found = await Facts(services).list(_ADMIN, args.persona, user=args.user)
    shown = [f for f in found if f.current or not args.current]
    for f in shown:
        if args.json:
            print(FactView.of(f).model_dump_json())
        else:
            print(_fact_line(f))
    if not shown:
        print("no facts", file=sys.stderr)
    return 0


async def _correct_fact(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        fact = await Facts(services).correct(
            _ADMIN, args.persona, args.fact_id, args.text, user=args.user
        )
    print(_fact_line(fact))
    return 0


async def _delete_fact(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        await Facts(services).delete(_ADMIN, args.persona, args.fact_id, user=args.user)
    print(f"deleted fact {args.fact_id}")
    return 0
