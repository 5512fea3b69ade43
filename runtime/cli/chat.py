"""``personae chat PERSONA``: chat with a persona in the terminal.

Replies stream in as the model writes them. On a terminal, lines are edited with
readline (history kept in ``$PERSONAE_HOME/chat_history``); from a pipe, each line of
standard input is one message. ``/memories`` shows what the persona remembers of you,
``/traits`` its traits and consistency, ``/quit`` (or end of input) leaves.

Without ``--url`` the chat runs in this process on the configured (by default embedded)
services, through the same chat service as the server; with ``--url`` it talks to a
running server over Socket.IO."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.tracker import TraitUpdate
from memory.record.transcripts import Message
from personas import Persona
from runtime.cli.args import UsageError
from runtime.infra.auth import LOCAL_USER, Principal
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import Limits, RateLimiter
from runtime.services import Services, open_services
from runtime.settings import Settings
from runtime.usecases.chat import ChatService

HELP = "/memories  what it remembers of you · /traits  its traits · /quit  leave"
_NAMESPACE = "/chat"


@dataclass(frozen=True, slots=True)
class Remembered:
    speaker: str
    text: str
    pinned: bool


@dataclass(frozen=True, slots=True)
class TraitLine:
    name: str
    configured: float
    observed: float | None
    count: int


class Backend(Protocol):
    persona_name: str
    session_id: str

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None]:
        """Send a line; print the reply's tokens as they come; return (status, error)."""
        ...

    async def memories(self) -> list[Remembered]: ...

    async def traits(self) -> tuple[list[TraitLine], float | None, int]: ...


def add_commands(sub: Any) -> None:
    chat = sub.add_parser("chat", help="chat with a persona in the terminal")
    chat.add_argument("persona", help="slug or id")
    chat.add_argument("--session", type=uuid.UUID, help="go on with this session")
    chat.add_argument("--user", default=LOCAL_USER, help="who you are (memories are kept per user)")
    chat.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8000")
    chat.add_argument("--token", help="with --url: a token from `personae token`")
    chat.set_defaults(run=_chat)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class _Printer:
    """Turn events printed as they come; ``finished`` is set when the reply is stored
    or fails."""

    def __init__(self) -> None:
        self.finished = asyncio.Event()
        self.status = "complete"
        self.error: str | None = None
        self.printed = False

    def token(self, delta: str) -> None:
        _out(delta.lstrip() if not self.printed else delta)
        self.printed = self.printed or bool(delta.strip())

    def done(self, text: str, status: str) -> None:
        if not self.printed:
            _out(text)  # a stored reply, reported again
        self.status = status
        self.finished.set()

    def failed(self, code: str, message: str) -> None:
        self.status, self.error = "failed", f"{code}: {message}"
        self.finished.set()


class _Events:
    """What the chat service reports, for one :class:`_Printer` at a time."""

    def __init__(self) -> None:
        self.printer = _Printer()

    async def started(self, persona: Persona, reply_id: uuid.UUID) -> None:
        return None

    async def token(self, persona: Persona, reply_id: uuid.UUID, delta: str) -> None:
        self.printer.token(delta)

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self.printer.done(message.text, message.status)

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.printer.failed(code, message)

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        return None


class LocalChat:
    """The chat service of this process."""

    def __init__(self, chat: ChatService, principal: Principal, persona: Persona, session: Any):
        self._chat, self._principal, self._persona = chat, principal, persona
        self._session = session
        self.persona_name = persona.name
        self.session_id = str(session.id)
        self._events = _Events()

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None]:
        printer = self._events.printer = _Printer()
        await self._chat.send(
            self._principal,
            user_name=self._principal.user_id,
            session_id=self._session.id,
            text=text,
            client_msg_id=client_msg_id,
            events=self._events,
        )
        await _finished(printer, self._chat.services.settings.llm_timeout_s)
        return printer.status, printer.error

    async def memories(self) -> list[Remembered]:
        page = await self._chat.inspection.list_memories(
            self._principal, str(self._persona.id), limit=20
        )
        return [Remembered(r.speaker_name, r.text, r.pinned) for r in page.records]

    async def traits(self) -> tuple[list[TraitLine], float | None, int]:
        view = await self._chat.traits(self._principal, str(self._persona.id), self._session.id)
        lines = [
            TraitLine(
                t.name,
                t.value,
                view.observed.stats[t.name].mean if t.name in view.observed.stats else None,
                view.observed.stats[t.name].count if t.name in view.observed.stats else 0,
            )
            for t in view.persona.own_traits
        ]
        return lines, view.drift.score, view.turns


async def _finished(printer: _Printer, llm_timeout_s: float) -> None:
    try:
        async with asyncio.timeout(llm_timeout_s + 30):
            await printer.finished.wait()
    except TimeoutError:
        printer.failed("timeout", "no reply in time")


class RemoteChat:
    """A running server, over Socket.IO."""

    def __init__(self, sio: Any, persona: dict[str, Any], session_id: str) -> None:
        self._sio = sio
        self._persona = persona
        self.persona_name = str(persona["name"])
        self.session_id = session_id
        self.printer = _Printer()

    @classmethod
    async def connect(cls, args: argparse.Namespace) -> tuple[RemoteChat, Any]:
        import socketio

        sio = socketio.AsyncClient(reconnection=False)
        chat: RemoteChat | None = None

        async def on_event(event: str, data: Any) -> None:
            if chat is None or not isinstance(data, dict):
                return
            if data.get("session_id") != chat.session_id:
                return
            if event == "message.token":
                chat.printer.token(str(data.get("delta", "")))
            elif event == "message.done":
                message = data.get("message") or {}
                if message.get("role") == "persona":
                    chat.printer.done(str(message.get("text", "")), str(message.get("status")))
            elif event == "message.error":
                chat.printer.failed(str(data.get("code")), str(data.get("message")))

        sio.on("*", on_event, namespace=_NAMESPACE)
        auth: dict[str, str] = {"name": args.user, "user": args.user}
        if args.token:
            auth["token"] = args.token
        try:
            await sio.connect(
                args.url,
                namespaces=[_NAMESPACE],
                auth=auth,
                transports=["websocket"],
                wait_timeout=10,
            )
        except Exception as exc:  # noqa: BLE001 (one line: what failed and where)
            raise UsageError(f"cannot connect to {args.url}: {exc}") from None
        start: dict[str, Any] = (
            {"session_id": str(args.session)} if args.session else {"personas": [args.persona]}
        )
        ack = await sio.call("session.start", start, namespace=_NAMESPACE, timeout=30)
        if not ack.get("ok"):
            await sio.disconnect()
            raise UsageError(f"{ack['error']['code']}: {ack['error']['message']}")
        session = ack["session"]
        persona = next(
            (p for p in session["personas"] if args.persona in (p["slug"], p["id"])),
            session["personas"][0],
        )
        chat = cls(sio, persona, session["id"])
        return chat, sio

    async def leave(self) -> None:
        """Leave the session (a lost connection leaves it too, a little later)."""
        import socketio

        with contextlib.suppress(socketio.exceptions.SocketIOError, TimeoutError):
            await self._sio.call(
                "session.leave", {"session_id": self.session_id}, namespace=_NAMESPACE, timeout=10
            )

    async def _call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = await self._sio.call(event, data, namespace=_NAMESPACE, timeout=30)
        if not ack.get("ok"):
            raise UsageError(f"{ack['error']['code']}: {ack['error']['message']}")
        return ack

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None]:
        printer = self.printer = _Printer()
        await self._call(
            "message.send",
            {"session_id": self.session_id, "text": text, "client_msg_id": client_msg_id},
        )
        await _finished(printer, 600.0)
        return printer.status, printer.error

    async def memories(self) -> list[Remembered]:
        ack = await self._call("memory.list", {"persona": self._persona["id"], "limit": 20})
        return [
            Remembered(m["speaker"]["name"], m["text"], bool(m["pinned"])) for m in ack["memories"]
        ]

    async def traits(self) -> tuple[list[TraitLine], float | None, int]:
        ack = await self._call(
            "persona.traits", {"persona": self._persona["id"], "session_id": self.session_id}
        )
        observed = ack["observed"]
        lines = [
            TraitLine(
                t["name"],
                float(t["value"]),
                observed[t["name"]]["mean"] if t["name"] in observed else None,
                observed[t["name"]]["count"] if t["name"] in observed else 0,
            )
            for t in ack["traits"]
            if not t["inherited"]
        ]
        return lines, ack["drift"]["score"], int(ack["turns"])


# ---- the loop ---------------------------------------------------------------------------


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    if args.url:
        backend, sio = await RemoteChat.connect(args)
        try:
            return await converse(backend, settings)
        finally:
            if args.session is None:  # the server deletes it if nothing was said in it
                await backend.leave()
            await sio.disconnect()
    async with open_services(settings) as services:
        return await chat_here(services, args)


async def chat_here(services: Services, args: argparse.Namespace) -> int:
    """The chat on services this process opened."""
    settings = services.settings
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
    principal = Principal(args.user, "admin")  # this process owns the data it opens
    session, personas = await chat.start_session(
        principal, [args.persona], session_id=args.session, title="terminal chat"
    )
    persona = next((p for p in personas if args.persona in (p.slug, str(p.id))), None)
    if persona is None:
        persona = personas[0] if personas else await services.personas.get(args.persona)
    try:
        return await converse(LocalChat(chat, principal, persona, session), settings)
    finally:
        await chat.drain(settings.shutdown_grace_s)  # memories and traits of the last turn
        if args.session is None:  # a chat left without a word leaves no session behind
            await chat.discard_if_unused(principal, session.id)


async def converse(backend: Backend, settings: Settings) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    history = settings.home / "chat_history"
    if interactive:
        _readline(history)
        _out(f"{backend.persona_name} · session {backend.session_id}\n{HELP}\n")
    try:
        while True:
            line = await _read(interactive)
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/help":
                _out(HELP + "\n")
            elif text == "/memories":
                _show_memories(await backend.memories())
            elif text == "/traits":
                _show_traits(*await backend.traits())
            elif text.startswith("/"):
                _out(f"unknown command {text.split()[0]}; {HELP}\n")
            else:
                _out(f"{backend.persona_name}: ")
                status, error = await backend.say(text, uuid.uuid4().hex)
                _out("\n" if status == "complete" else f"\n[{error or 'cut short'}]\n")
    finally:
        if interactive:
            with contextlib.suppress(Exception):
                import readline

                readline.write_history_file(history)
    return 0


def _readline(history: Any) -> None:
    with contextlib.suppress(Exception):
        import readline

        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)


async def _read(interactive: bool) -> str | None:
    if interactive:
        try:
            return await asyncio.to_thread(input, "you> ")
        except EOFError:
            _out("\n")
            return None
    line = await asyncio.to_thread(sys.stdin.readline)
    return line if line else None


def _show_memories(found: list[Remembered]) -> None:
    if not found:
        _out("nothing remembered yet\n")
    for m in found:
        _out(f"  {'* ' if m.pinned else ''}{m.speaker}: {m.text[:160]}\n")


def _show_traits(lines: list[TraitLine], consistency: float | None, turns: int) -> None:
    for t in lines:
        seen = (
            "not observed yet" if t.observed is None else f"observed {t.observed:.2f} ({t.count})"
        )
        _out(f"  {t.name:22} set {t.configured:.2f}  {seen}\n")
    if turns < 3 or consistency is None:
        _out(f"  consistency: not enough replies yet ({turns})\n")
    else:
        _out(f"  consistency: {consistency:.2f} over {turns} replies (1.00: fully in character)\n")
