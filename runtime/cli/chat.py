"""``personae chat PERSONA``: chat with a persona in the terminal.

Replies stream in as the model writes them. On a terminal, lines are edited with
readline (history kept in ``$PERSONAE_HOME/chat_history``); from a pipe, each line of
standard input is one message. ``/memories`` shows what the persona remembers of you,
``/traits`` its traits and consistency, ``/quit`` (or end of input) leaves. A persona
from a character card opens a new session with its greeting.

Ctrl-C while a reply is being written stops it: the model stops at its next token and
the reply is stored as far as it was shown, marked cut (``stopped``); a reply that was
cut for any reason says so. Ctrl-C at the prompt leaves at once. With ``--url`` the
server is not told: the reply stops being shown, and the server finishes it.

Without ``--url`` the chat runs in this process on the configured (by default embedded)
services, through the same chat service as the server; with ``--url`` it talks to a
running server over Socket.IO."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agents.errors import ReplyStopped
from agents.llm import LOCAL
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
DEMO = (
    "The embedded model (SmolLM2-135M) is a small demo: it forgets, mixes things up and "
    "says odd things. For a capable one, set PERSONAE_LLM=gguf:/path/to/model.gguf or a "
    "provider such as PERSONAE_LLM=openai:gpt-4o-mini."
)
CUT_MARKS = {
    "length": "cut: length limit",
    "repetition": "cut: it repeated itself",
    "speaker": "cut: it started another speaker's line",
    "stopped": "stopped",
}
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
    opening: list[str]
    """What the persona said before the user's first line (a card's greeting)."""

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None, str | None]:
        """Send a line; print the reply's tokens as they come; return (status, error,
        cut)."""
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
        self.cut: str | None = None
        self.printed = False
        self.stopping = False

    def token(self, delta: str) -> None:
        if self.stopping:
            return
        _out(delta.lstrip() if not self.printed else delta)
        self.printed = self.printed or bool(delta.strip())

    def done(self, text: str, status: str, cut: str | None = None) -> None:
        if not self.printed and not self.stopping:
            _out(text)  # a stored reply, reported again
        self.status, self.cut = status, cut
        self.finished.set()

    def stop(self, *, wait: bool) -> None:
        """Ctrl-C: show no more of the reply; without ``wait`` (nothing will tell the
        model to stop here) it is over for this chat now."""
        self.stopping = True
        if not wait:
            self.cut = "stopped"
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
        if self.printer.stopping:
            raise ReplyStopped("stopped by the user")  # the turn stops the model
        self.printer.token(delta)

    async def done(self, persona: Persona, message: Message, timings: Mapping[str, float]) -> None:
        self.printer.done(message.text, message.status, message.cut)

    async def failed(self, persona: Persona | None, code: str, message: str) -> None:
        self.printer.failed(code, message)

    async def traits(self, persona: Persona, update: TraitUpdate) -> None:
        return None


class LocalChat:
    """The chat service of this process."""

    stops_the_model = True

    def __init__(
        self,
        chat: ChatService,
        principal: Principal,
        persona: Persona,
        session: Any,
        opening: list[str] | None = None,
    ):
        self._chat, self._principal, self._persona = chat, principal, persona
        self._session = session
        self.persona_name = persona.name
        self.session_id = str(session.id)
        self.opening = opening or []
        self._events = _Events()

    @property
    def printer(self) -> _Printer:
        return self._events.printer

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None, str | None]:
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
        return printer.status, printer.error, printer.cut

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

    stops_the_model = False  # the protocol has no way to stop a reply

    def __init__(
        self, sio: Any, persona: dict[str, Any], session_id: str, opening: list[str] | None = None
    ) -> None:
        self._sio = sio
        self._persona = persona
        self.persona_name = str(persona["name"])
        self.session_id = session_id
        self.opening = opening or []
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
                    chat.printer.done(
                        str(message.get("text", "")),
                        str(message.get("status")),
                        message.get("cut"),
                    )
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
        opening = (
            [str(m.get("text", "")) for m in ack.get("history", []) if m.get("role") == "persona"]
            if args.session is None
            else []
        )
        chat = cls(sio, persona, session["id"], opening)
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

    async def say(self, text: str, client_msg_id: str) -> tuple[str, str | None, str | None]:
        printer = self.printer = _Printer()
        await self._call(
            "message.send",
            {"session_id": self.session_id, "text": text, "client_msg_id": client_msg_id},
        )
        await _finished(printer, 600.0)
        return printer.status, printer.error, printer.cut

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
    opening: list[str] = []
    if args.session is None:  # a new session: a card persona's greeting opens it
        first = await chat.history(principal, session.id, before=None, limit=5)
        opening = [m.text for m in first.items if m.role == "persona"]
    try:
        backend = LocalChat(chat, principal, persona, session, opening)
        return await converse(backend, settings)
    finally:
        await chat.drain(settings.shutdown_grace_s)  # memories and traits of the last turn
        if args.session is None:  # a chat left without a word leaves no session behind
            await chat.discard_if_unused(principal, session.id)
        await chat.end_session(session.id)  # summarised at once, not after the quiet time


async def converse(backend: Backend, settings: Settings) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    history = settings.home / "chat_history"
    keys = _CtrlC(backend)
    if interactive:
        _readline(history)
        _out(f"{backend.persona_name} · session {backend.session_id}\n{HELP}\n")
        if settings.llm == LOCAL and not isinstance(backend, RemoteChat):
            _out(f"({DEMO})\n")
    for greeting in backend.opening:
        _out(f"{backend.persona_name}: {greeting}\n")
    terminal = _terminal_state() if interactive else None
    keys.install()
    try:
        while True:
            line = await keys.read(interactive)
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
                keys.replying = True
                try:
                    status, error, cut = await backend.say(text, uuid.uuid4().hex)
                finally:
                    keys.replying = False
                if status != "complete":
                    _out(f"\n[{error or 'cut short'}]\n")
                elif cut:
                    _out(f" [{CUT_MARKS.get(cut, 'cut: ' + cut)}]\n")
                else:
                    _out("\n")
    finally:
        keys.remove()
        if interactive:
            with contextlib.suppress(Exception):
                import readline

                readline.write_history_file(history)
        _restore_terminal(terminal)
    return 0


class _CtrlC:
    """Ctrl-C in the chat: while a reply is written it stops the reply; at the prompt it
    leaves at once (the line being read is given up, not waited for)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading: asyncio.Future[str | None] | None = None
        self._installed = False
        self.replying = False

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signal.SIGINT, self._pressed)
            self._installed = True

    def remove(self) -> None:
        if self._installed and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_signal_handler(signal.SIGINT)
        self._installed = False

    def _pressed(self) -> None:
        printer: _Printer | None = getattr(self._backend, "printer", None)
        if self.replying and printer is not None and not printer.finished.is_set():
            printer.stop(wait=bool(getattr(self._backend, "stops_the_model", False)))
            return
        if self._reading is not None and not self._reading.done():
            _out("\n")
            self._reading.set_result(None)

    async def read(self, interactive: bool) -> str | None:
        """The next line, read in a thread of its own that is not waited for at exit
        (so Ctrl-C at the prompt need not wait for Enter); None at the end of input or
        on Ctrl-C."""
        loop = asyncio.get_running_loop()
        reading: asyncio.Future[str | None] = loop.create_future()
        self._reading = reading

        def deliver(line: str | None) -> None:
            if not reading.done():
                reading.set_result(line)

        def work() -> None:
            line: str | None
            try:
                if interactive:
                    line = input("you> ")
                else:
                    line = sys.stdin.readline() or None
            except EOFError:
                if interactive:
                    _out("\n")
                line = None
            except Exception:  # noqa: BLE001 (a closed terminal ends the chat, quietly)
                line = None
            with contextlib.suppress(RuntimeError):  # the chat already ended
                loop.call_soon_threadsafe(deliver, line)

        threading.Thread(target=work, name="chat-input", daemon=True).start()
        try:
            return await reading
        finally:
            self._reading = None


def _terminal_state() -> Any:
    with contextlib.suppress(Exception):
        import termios

        return termios.tcgetattr(sys.stdin.fileno())
    return None


def _restore_terminal(state: Any) -> None:
    """The terminal as it was (a line left unread by Ctrl-C leaves readline's modes)."""
    if state is None:
        return
    with contextlib.suppress(Exception):
        import termios

        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, state)


def _readline(history: Any) -> None:
    with contextlib.suppress(Exception):
        import readline

        with contextlib.suppress(OSError):
            readline.read_history_file(history)
        readline.set_history_length(1000)


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
