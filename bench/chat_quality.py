"""Chat quality benchmark: the real server on the embedded default model (SmolLM2-135M)
and the real embedder, driven over Socket.IO through the fixed script in
``bench/chat_script.yaml``.

    python bench/chat_quality.py [--code REV] [--script FILE] [--out report.json]
    python bench/chat_quality.py --rescore report.json [--script FILE]

The script tells a persona 22 facts in one session and asks each back in a new session,
asks 5 personas 4 open questions each (a new session per question) and puts one
question to 5 two-persona rooms. It reports facts recalled, replies that repeat a line
or an 8-gram 3+ times, replies that end mid-sentence without being marked cut, room
replies that contain another speaker's line, time to first token of a new session and
whole-reply time. It also reads each stored reply as a person would (the reader checks,
docs/quality.md): facts answered (the key word, in a reply that is neither an
acknowledgement nor a first-person claim), replies parroting an acknowledgement or the
user's words, replies claiming the user's fact, room turns with every reply complete,
room replies sharing most of their word 5-grams with another of the turn, failed or
empty replies. ``--script`` plays another conversation (``chat_script_heldout.yaml``:
written apart, used for no choice); ``--rescore`` scores a saved report again with
these checks. ``--code REV`` runs the server from that git revision of this
repository instead of the working tree (the client and the checks stay the same), so two
versions are compared in one sitting.

The server runs in a fresh PostgreSQL database on PERSONAE_TEST_DATABASE_URL (and Redis
on PERSONAE_TEST_REDIS_URL) when set, else on embedded servers; its other data lives in a
temporary folder. The first reply (which loads the model) is not counted."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import socketio
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


SCRIPT = Path(__file__).with_name("chat_script.yaml")
REPLY_TIMEOUT_S = 600.0
_WORD = re.compile(r"[\w']+")
_ENDS = ".!?…\"'”’)]*"


@dataclass
class Reply:
    section: str
    session: str
    persona: str
    prompt: str
    text: str = ""
    status: str = ""
    cut: str | None = None
    first_token_s: float | None = None
    reply_s: float | None = None
    new_session: bool = False
    error: str | None = None
    others: list[str] = field(default_factory=list)  # the names a room reply must not write


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- checks (independent of the server's own guards) ------------------------------------


def repeats(text: str) -> bool:
    """A line, or a run of 8 words, that occurs 3 or more times."""
    lines = [ln.strip().lower() for ln in text.splitlines() if len(ln.strip()) >= 8]
    if lines and Counter(lines).most_common(1)[0][1] >= 3:
        return True
    words = [w.lower() for w in _WORD.findall(text)]
    grams = Counter(tuple(words[i : i + 8]) for i in range(len(words) - 7))
    return bool(grams) and grams.most_common(1)[0][1] >= 3


def ends_mid_sentence(text: str) -> bool:
    tail = text.rstrip()
    if not tail:
        return False
    last = tail[-1]
    return last not in _ENDS and unicodedata.category(last) != "So"  # an emoji ends too


def speaker_labels(names: list[str]) -> re.Pattern[str]:
    """A line that starts as another speaker's: ``Name:``, ``First:``, ``**Name**:`` or
    ``@slug``."""
    alternatives: set[str] = set()
    for name in names:
        alternatives.add(re.escape(name))
        alternatives.add(re.escape(name.split()[0]))
    slugs = {re.escape(n.lower().replace(" ", "-")) for n in names}
    return re.compile(
        rf"^[\s>*_\"'“-]*(?:(?:{'|'.join(sorted(alternatives))})[*_\"'”]*\s*:|@(?:{'|'.join(sorted(slugs))})\b)",
        re.IGNORECASE | re.MULTILINE,
    )


def writes_for_others(reply: Reply) -> bool:
    return bool(reply.others) and speaker_labels(reply.others).search(reply.text) is not None


# -- reader checks: what a person reading the stored reply sees ----------------------------

_ACK = re.compile(
    r"\b(?:i(?:'ll| will| shall)|i'?ve (?:noted|got)|let me) (?:remember|note|keep)\b"
    r"|\bnoted\b|\bi(?:'ll| will) keep that in mind\b",
    re.IGNORECASE,
)
_FIRST = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|our|ours|we)\b", re.IGNORECASE)
_SECOND = re.compile(r"\b(?:you|your|yours|you're|you've|yourself)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_COPY_N = 5


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def grams(text: str, n: int = _COPY_N) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def has_key(text: str, key: str) -> bool:
    """The fact's key word as a word (a plural allowed): "bee" in "bees", not in "been"."""
    return re.search(rf"\b{re.escape(key.lower())}(?:s|es)?\b", text.lower()) is not None


def acknowledges(text: str) -> bool:
    """The reply says it will remember or noted something ("I'll remember that, Sam")."""
    return _ACK.search(text) is not None


def claims(text: str, key: str) -> bool:
    """A sentence with the user's fact's key word told in the first person and not in
    the second: the persona presenting the user's fact as its own ("My cat's name is
    Miso.", "I am a nurse in Lyon.")."""
    for sentence in _SENTENCE_END.split(text):
        if has_key(sentence, key) and _FIRST.search(sentence) and not _SECOND.search(sentence):
            return True
    return False


_VOICE = frozenset(
    ["i", "i'm", "i've", "i'd", "i'll", "me", "my", "mine", "myself", "we", "our", "ours", "us"]
)


def copies(text: str, prompt: str, earlier: list[str]) -> bool:
    """Text the persona did not say, repeated: a run of five words from one of the
    user's earlier lines said in the user's voice (with their "I", "my", "our": "I live
    in Lisbon now", not "is a beagle called Biscuit" in "Sam's dog is a beagle called
    Biscuit"), or the whole line when shorter, or the reply beginning with the user's
    current line word for word."""
    mine = words(text)
    joined = " " + " ".join(mine) + " "
    for line in earlier:
        w = words(line)
        if 3 <= len(w) < _COPY_N and _VOICE & set(w) and " " + " ".join(w) + " " in joined:
            return True
    theirs: set[tuple[str, ...]] = set()
    for line in earlier:
        theirs |= {g for g in grams(line) if _VOICE & set(g)}
    if grams(text) & theirs:
        return True
    asked = words(prompt)
    return len(asked) >= 3 and mine[: len(asked)] == asked


def parrots(reply: Reply, earlier: list[str]) -> bool:
    """A reply repeating an acknowledgement it was not asked for (any reply but to a fact
    being told) or text the persona did not say."""
    if reply.section != "tell" and acknowledges(reply.text):
        return True
    return copies(reply.text, reply.prompt.split(" [")[0], earlier)


def shared_5grams(text: str, other: str) -> float:
    """The share of ``text``'s word 5-grams that ``other`` also has."""
    mine = grams(text)
    return len(mine & grams(other)) / len(mine) if mine else 0.0


def room_copies(rooms: list[Reply]) -> int:
    """Room replies sharing more than half their word 5-grams with another reply of the
    same turn."""
    count = 0
    for r in rooms:
        turn = [o for o in rooms if o.session == r.session and o is not r]
        if any(shared_5grams(r.text, o.text) > 0.5 for o in turn):
            count += 1
    return count


def failed(reply: Reply) -> bool:
    return reply.status == "failed" or bool(reply.error) or not reply.text.strip()


# -- the client ---------------------------------------------------------------------------


class Client:
    def __init__(self, url: str, user: str) -> None:
        self.url = url
        self.user = user
        self.sio = socketio.AsyncClient(reconnection=False)
        self._waiting: dict[str, _Pending] = {}  # user message id -> pending replies
        self._by_reply: dict[str, _Pending] = {}  # reply id -> pending
        self._ended: set[str] = set()  # replies of earlier messages
        for event in ("message.started", "message.token", "message.done", "message.error"):
            self.sio.on(event, self._handler(event), namespace="/chat")

    def _handler(self, event: str) -> Any:
        async def handle(data: dict[str, Any]) -> None:
            self._route(event, data)

        return handle

    def _route(self, event: str, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        pending = self._waiting.get(str(data.get("session_id")))
        if pending is None:
            return
        message = data.get("message")  # message.done: the message; message.error: a text
        reply_id = data.get("message_id") or (
            message.get("id") if isinstance(message, dict) else None
        )
        if reply_id in self._ended and event == "message.error":
            return  # the error that follows an incomplete reply's message.done
        if event == "message.started":
            pending.started(data["message_id"], data["persona"]["name"], data["persona"]["id"])
        elif event == "message.token":
            pending.token(data["message_id"], now)
        elif event == "message.done":
            pending.done(data["message"], now)
        elif event == "message.error":
            reason = f"{data.get('code')}: {data.get('message')}"
            pending.error(data.get("message_id"), data.get("persona_id"), reason)

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            namespaces=["/chat"],
            auth={"name": self.user},
            transports=["websocket"],
            wait_timeout=60,
        )

    async def start(self, personas: list[str], policy: str = "mention") -> str:
        ack = await self.sio.call(
            "session.start",
            {"personas": personas, "policy": policy},
            namespace="/chat",
            timeout=60,
        )
        if not ack.get("ok"):
            raise RuntimeError(f"session.start failed: {ack}")
        return str(ack["session"]["id"])

    async def send(self, session: str, text: str, expect: int) -> _Pending:
        pending = _Pending(expect, time.perf_counter())
        self._waiting[session] = pending
        payload = {"session_id": session, "text": text, "client_msg_id": uuid.uuid4().hex}
        try:
            while True:
                pending.sent_at = time.perf_counter()
                ack = await self.sio.call("message.send", payload, namespace="/chat", timeout=60)
                if ack.get("ok"):
                    break
                if ack["error"]["code"] != "rate_limited":
                    raise RuntimeError(f"message.send failed: {ack}")
                # the previous turn still writes its memories: wait as a client would
                await asyncio.sleep(float(ack["error"].get("retry_after", 1.0)))
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                await pending.finished.wait()
        finally:
            del self._waiting[session]
            self._ended.update(pending.replies)
        return pending


@dataclass
class _Seen:
    persona: str
    persona_id: str | None = None
    first: float | None = None
    done: float | None = None
    message: dict[str, Any] | None = None
    error: str | None = None


class _Pending:
    def __init__(self, expect: int, sent_at: float) -> None:
        self.expect = expect
        self.sent_at = sent_at
        self.replies: dict[str, _Seen] = {}
        self.finished = asyncio.Event()

    def started(self, reply_id: str, persona: str, persona_id: str) -> None:
        self.replies.setdefault(reply_id, _Seen(persona, persona_id))

    def token(self, reply_id: str, now: float) -> None:
        seen = self.replies.setdefault(reply_id, _Seen("?"))
        if seen.first is None:
            seen.first = now

    def done(self, message: dict[str, Any], now: float) -> None:
        seen = self.replies.setdefault(message["id"], _Seen(message["speaker"]))
        seen.persona = message["speaker"]
        seen.done, seen.message = now, message
        self._check()

    def error(self, reply_id: str | None, persona_id: str | None, reason: str) -> None:
        ours = [s for s in self.replies.values() if persona_id in (None, s.persona_id)]
        if any(s.message and s.message.get("status") == "incomplete" for s in ours):
            return  # the error that follows an incomplete reply's message.done
        target = self.replies.get(reply_id or "") or next(
            (s for s in ours if s.done is None and s.error is None), None
        )
        if target is None:
            target = self.replies.setdefault(reply_id or uuid.uuid4().hex, _Seen("?"))
        if target.message is None:  # an incomplete reply's done came first: keep it
            target.error = reason
            target.done = time.perf_counter()
        self._check()

    def _check(self) -> None:
        ended = sum(1 for s in self.replies.values() if s.done is not None)
        if ended >= self.expect:
            self.finished.set()


def _replies(
    section: str, session: str, prompt: str, pending: _Pending, *, new: bool, names: list[str]
) -> list[Reply]:
    out = []
    for seen in pending.replies.values():
        m = seen.message or {}
        out.append(
            Reply(
                section=section,
                session=session,
                persona=seen.persona,
                prompt=prompt,
                text=str(m.get("text", "")),
                status=str(m.get("status", "failed")),
                cut=m.get("cut"),
                first_token_s=None if seen.first is None else seen.first - pending.sent_at,
                reply_s=None if seen.done is None else seen.done - pending.sent_at,
                new_session=new,
                error=seen.error,
                others=[n for n in names if n != seen.persona],
            )
        )
    return out


async def play(client: Client, script: dict[str, Any], names: dict[str, str]) -> list[Reply]:
    user = script["user"]
    replies: list[Reply] = []
    facts = script["facts"]
    persona = facts["persona"]
    # warm-up: loads the model and the embedder; not counted
    warm = await client.start([persona])
    await client.send(warm, "Hello!", 1)
    told = await client.start([persona])
    for item in facts["items"]:
        pending = await client.send(told, item["tell"], 1)
        replies += _replies("tell", told, item["tell"], pending, new=False, names=[])
        log(replies[-1])
    for item in facts["items"]:
        session = await client.start([persona])
        pending = await client.send(session, item["ask"], 1)
        [reply] = _replies("ask", session, item["ask"], pending, new=True, names=[])
        reply.prompt = f"{item['ask']} [{item['key']}]"
        replies.append(reply)
        log(reply)
    for group in script["open"]:
        for question in group["questions"]:
            session = await client.start([group["persona"]])
            pending = await client.send(session, question, 1)
            replies += _replies("open", session, question, pending, new=True, names=[])
            log(replies[-1])
    for room in script["rooms"]:
        session = await client.start(room["personas"], policy="all")
        pending = await client.send(session, room["question"], len(room["personas"]))
        people = [names[s] for s in room["personas"]] + [user]
        for reply in _replies("room", session, room["question"], pending, new=True, names=people):
            replies.append(reply)
            log(reply)
    return replies


def log(reply: Reply) -> None:
    first = "-" if reply.first_token_s is None else f"{reply.first_token_s:.2f}s"
    total = "-" if reply.reply_s is None else f"{reply.reply_s:.2f}s"
    text = reply.text.replace("\n", " / ")
    print(
        f"[{reply.section}] {reply.persona} first={first} reply={total} "
        f"status={reply.status} cut={reply.cut} error={reply.error} | {reply.prompt!r} -> "
        f"{text[:160]!r}",
        file=sys.stderr,
        flush=True,
    )


def summarise(replies: list[Reply], script: dict[str, Any]) -> dict[str, Any]:
    keys = {f"{i['ask']} [{i['key']}]": str(i["key"]).lower() for i in script["facts"]["items"]}
    asked = [r for r in replies if r.section == "ask"]
    recalled = [r for r in asked if keys[r.prompt] in r.text.lower()]
    rooms = [r for r in replies if r.section == "room"]
    first_new = [r.first_token_s for r in replies if r.new_session and r.section != "room"]
    first_new_s = [s for s in first_new if s is not None]
    whole = [r.reply_s for r in replies if r.section != "room" and r.reply_s is not None]
    room_answers: dict[str, float] = {}
    for r in rooms:
        if r.reply_s is not None:
            room_answers[r.session] = max(room_answers.get(r.session, 0.0), r.reply_s)
    marked = [r for r in replies if r.cut or r.status != "complete"]
    # the reader's checks: each of a stored reply, with what the user had said before it
    told = {str(i["tell"]): str(i["key"]) for i in script["facts"]["items"]}
    answered = [
        r
        for r in asked
        if has_key(r.text, keys[r.prompt])
        and not acknowledges(r.text)
        and not claims(r.text, keys[r.prompt])
    ]
    parroting: list[Reply] = []
    claiming: list[Reply] = []
    said: list[str] = []  # the user's lines so far, in the order the script sent them
    known: list[str] = []  # the keys of the facts told so far
    for r in replies:
        asked_now = r.prompt.split(" [")[0]
        if r.section == "tell":
            known.append(told[asked_now])
        if parrots(r, [line for line in said if line != asked_now]):
            parroting.append(r)
        keys_now = [keys[r.prompt]] if r.section == "ask" else known
        if any(claims(r.text, k) for k in keys_now):
            claiming.append(r)
        if not said or said[-1] != asked_now:
            said.append(asked_now)
    turns: dict[str, list[Reply]] = {}
    for r in rooms:
        turns.setdefault(r.session, []).append(r)
    room_size = min((len(room["personas"]) for room in script["rooms"]), default=2)
    complete_turns = sum(
        len(turn) >= room_size
        and all(r.status == "complete" and r.text.strip() and not r.error for r in turn)
        for turn in turns.values()
    )
    return {
        "replies": len(replies),
        "facts_answered": f"{len(answered)}/{len(asked)}",
        "facts_answered_pct": round(100 * len(answered) / max(1, len(asked)), 1),
        "replies_parroting": len(parroting),
        "replies_claiming_user_fact": len(claiming),
        "room_turns_complete": f"{complete_turns}/{len(script['rooms'])}",
        "room_replies_copying_5grams": room_copies(rooms),
        "failed_or_empty": sum(failed(r) for r in replies),
        "parroting_examples": [f"{r.prompt} -> {r.text[:120]}" for r in parroting[:5]],
        "claiming_examples": [f"{r.prompt} -> {r.text[:120]}" for r in claiming[:5]],
        "facts_recalled": f"{len(recalled)}/{len(asked)}",
        "facts_recalled_pct": round(100 * len(recalled) / max(1, len(asked)), 1),
        "repeating_replies": sum(repeats(r.text) for r in replies),
        "mid_sentence_unmarked": sum(
            ends_mid_sentence(r.text) and not (r.cut or r.status != "complete") for r in replies
        ),
        "room_replies_with_other_speaker": sum(writes_for_others(r) for r in rooms),
        "room_replies": len(rooms),
        "marked_cut_or_incomplete": len(marked),
        "failed": sum(1 for r in replies if r.status == "failed" or r.error and not r.text),
        "first_token_new_session_s": {
            "p50": round(pct(first_new_s, 0.5), 2),
            "p95": round(pct(first_new_s, 0.95), 2),
            "n": len(first_new_s),
        },
        "reply_s": {
            "p50": round(statistics.median(whole), 2) if whole else None,
            "p95": round(pct(whole, 0.95), 2),
            "n": len(whole),
        },
        "room_answer_s_p50": round(statistics.median(room_answers.values()), 2)
        if room_answers
        else None,
        "reply_words_p50": statistics.median(len(r.text.split()) for r in replies)
        if replies
        else None,
    }


# -- the server ---------------------------------------------------------------------------


def checkout(rev: str, into: Path) -> Path:
    """The repository's tree at ``rev`` extracted into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


async def run(args: argparse.Namespace) -> dict[str, Any]:
    script = yaml.safe_load(Path(args.script).read_text())
    database_url, redis_url, cleanup = await services()
    home = Path(tempfile.mkdtemp(prefix="personae-quality-"))
    code = ROOT
    if args.code:
        (home / "code").mkdir()
        code = checkout(args.code, home / "code")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {
        "PERSONAE_DATABASE_URL": database_url,
        "PERSONAE_REDIS_URL": redis_url,
        "PERSONAE_HOME": str(home / "data"),
        "PERSONAE_PORT": str(args.port),
        "PERSONAE_LOG_LEVEL": "WARNING",
        "PERSONAE_RATE_LIMIT_PER_MINUTE": "10000",
        # the script opens a new session per question: more than a user would a minute
        "PERSONAE_SESSIONS_PER_MINUTE": "10000",
        "PERSONAE_REDIS_PREFIX": f"quality{uuid.uuid4().hex[:6]}",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(code),
    }
    if args.llm:
        env["PERSONAE_LLM"] = args.llm
    cli = [sys.executable, "-m", "runtime.cli"]
    log_path = home / "server.log"
    with log_path.open("w") as out:
        for command in (["migrate"], ["personas", "import"]):
            await asyncio.to_thread(
                subprocess.run, cli + command, env=env, cwd=code, stdout=out, stderr=out, check=True
            )
    log_file = log_path.open("a")
    server = await asyncio.to_thread(
        subprocess.Popen,
        [*cli, "serve"],
        env=env,
        cwd=code,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(300):
            while "ready on" not in log_path.read_text():
                if server.poll() is not None:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
                await asyncio.sleep(0.2)
        names = await persona_names(database_url)
        client = Client(f"http://127.0.0.1:{args.port}", script["user"])
        await client.connect()
        load_before = os.getloadavg()
        started = time.perf_counter()
        try:
            replies = await play(client, script, names)
        finally:
            await client.sio.disconnect()
        report = {
            "code": args.code or "working tree",
            "script": Path(args.script).name,
            "llm": args.llm or "local",
            "duration_s": round(time.perf_counter() - started, 1),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "summary": summarise(replies, script),
        }
        if args.out:
            Path(args.out).write_text(
                json.dumps({**report, "replies": [asdict(r) for r in replies]}, indent=2)
            )
        return report
    finally:
        if server.poll() is None:
            server.terminate()
        try:
            await asyncio.to_thread(server.wait, 60)
        except subprocess.TimeoutExpired:
            server.kill()
        log_file.close()
        if args.show_server_log:
            print(log_path.read_text()[-5000:], file=sys.stderr)
        await cleanup()
        await asyncio.to_thread(shutil.rmtree, home, True)


async def services() -> tuple[str, str, Any]:
    """A fresh, empty database (and the Redis URL) for the server; embedded servers when
    the test servers are not set. Returns a cleanup that drops it."""
    import psycopg

    from runtime.infra.embedded import EmbeddedPostgres, EmbeddedRedis

    db = os.environ.get("PERSONAE_TEST_DATABASE_URL")
    redis = os.environ.get("PERSONAE_TEST_REDIS_URL")
    started: list[Any] = []
    folder = Path(tempfile.mkdtemp(prefix="personae-quality-svc-"))
    if db is None:
        pg = EmbeddedPostgres(folder / "pg")
        await pg.__aenter__()
        started.append(pg)
        db = pg.url
    if redis is None:
        rd = EmbeddedRedis(folder / "redis")
        await rd.__aenter__()
        started.append(rd)
        redis = rd.url
    name = f"personae_quality_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(db)._replace(path="/" + name))

    async def cleanup() -> None:
        async with await psycopg.AsyncConnection.connect(str(db), autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for server in reversed(started):
            await server.stop()
        await asyncio.to_thread(shutil.rmtree, folder, True)

    return url, redis, cleanup


async def persona_names(database_url: str) -> dict[str, str]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT slug, name FROM personas")
        return {slug: name for slug, name in await cur.fetchall()}


def rescore(path: str, script_path: str) -> dict[str, Any]:
    """The summary of a saved report (``--out``) again, with this file's checks: an
    earlier run scored the same way as a new one."""
    saved = json.loads(Path(path).read_text())
    replies = [Reply(**r) for r in saved["replies"]]
    script = yaml.safe_load(Path(script_path).read_text())
    return {
        **{k: v for k, v in saved.items() if k != "replies"},
        "summary": summarise(replies, script),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", help="run the server from this git revision (default: the tree)")
    parser.add_argument("--llm", help="PERSONAE_LLM for the server (default: the embedded model)")
    parser.add_argument("--out", help="write the report with every reply to this JSON file")
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument(
        "--script",
        default=str(SCRIPT),
        help="the conversation to play (default: chat_script.yaml; the held-out one: "
        "chat_script_heldout.yaml)",
    )
    parser.add_argument("--show-server-log", action="store_true")
    parser.add_argument(
        "--rescore", metavar="REPORT", help="score a saved --out report again; run nothing"
    )
    args = parser.parse_args()
    if args.rescore:
        print(json.dumps(rescore(args.rescore, args.script), indent=2))
        return
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    logging.getLogger("socketio.client").setLevel(logging.CRITICAL)
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
