"""ChatService: what the transports (Socket.IO, REST) call — sessions, sending a message
and running its turns in the background, history, memory inspection and trait views,
with ownership checks and per-user limits. Transports only translate payloads and errors."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.director import POLICIES
from agents.traits import DriftReport, ObservedProfile
from agents.types import TurnEvents, TurnResult
from memory import MemoryFilter, MemoryKind, MemoryPage, MemoryRecord, ScoredMemory
from memory.transcripts import Feedback, Message, MessagePage, Session
from personas import Persona
from runtime.auth import Principal
from runtime.errors import RuntimeLayerError
from runtime.greetings import greet
from runtime.metrics import Metrics
from runtime.ratelimit import RateLimited, RateLimiter
from runtime.services import Services

log = logging.getLogger(__name__)
_OWNERS_KEPT = 100_000  # sessions whose owner a send can check without a read


class ChatError(RuntimeLayerError):
    """A request the chat service refuses; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Sent:
    message: Message
    duplicate: bool


@dataclass(frozen=True, slots=True)
class TraitsView:
    persona: Persona
    observed: ObservedProfile
    turns: int
    drift: DriftReport


EventsFor = Callable[[uuid.UUID], TurnEvents]


class ChatService:
    def __init__(self, services: Services, limiter: RateLimiter, metrics: Metrics) -> None:
        self.services = services
        self.limiter = limiter
        self.metrics = metrics
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._session_locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._interrupts: dict[uuid.UUID, asyncio.Event] = {}
        self._owners: OrderedDict[uuid.UUID, str] = OrderedDict()

    # sessions -----------------------------------------------------------------------

    async def start_session(
        self,
        principal: Principal,
        personas: Sequence[str],
        *,
        session_id: uuid.UUID | None = None,
        policy: str | None = None,
        title: str = "",
        rounds: int | None = None,
    ) -> tuple[Session, list[Persona]]:
        """A new session with ``personas``, or (``session_id``) one of the caller's own."""
        transcripts = self.services.memory.transcripts
        if session_id is not None:
            session = await self.session_for(principal, session_id)
            return session, await self.services.director.participants(session)
        if not personas:
            raise ChatError("invalid_payload", "personas: name at least one persona")
        found: list[Persona] = []
        for key in personas:
            persona = await self.services.personas.get(key)
            if not persona.active:
                raise ChatError("persona_not_found", f"persona {key!r} is not active")
            if persona.id not in {p.id for p in found}:
                found.append(persona)
        if policy is not None and policy not in POLICIES:
            raise ChatError("invalid_payload", f"policy: unknown policy {policy!r}")
        metadata: dict[str, Any] = {}
        if policy == "autonomous":
            metadata["rounds"] = min(
                3 if rounds is None else rounds, self.services.settings.autonomous_max_rounds
            )
        session = await transcripts.create_session(
            principal.user_id,
            [p.id for p in found],
            policy=policy or "mention",
            title=title,
            metadata=metadata,
        )
        self._owner_seen(session)
        await greet(self.services, session, found, principal.user_id)  # a card's greeting
        return session, found

    async def session_for(self, principal: Principal, session_id: uuid.UUID) -> Session:
        """The session, if the caller may see it (its owner, or an admin)."""
        session = await self.services.memory.transcripts.get_session(session_id)
        self._owner_seen(session)
        if session.user_id != principal.user_id and not principal.is_admin:
            raise ChatError("forbidden", f"session '{session_id}' is not yours")
        return session

    def _owner_seen(self, session: Session) -> None:
        # a session's owner never changes, so a send need not read the session first
        # to check it: the statement that stores the message returns the session
        self._owners[session.id] = session.user_id
        self._owners.move_to_end(session.id)
        if len(self._owners) > _OWNERS_KEPT:
            self._owners.popitem(last=False)

    async def history(
        self, principal: Principal, session_id: uuid.UUID, *, before: int | None, limit: int
    ) -> MessagePage:
        await self.session_for(principal, session_id)
        return await self.services.memory.transcripts.history(
            session_id, before=before, limit=limit
        )

    # messages -----------------------------------------------------------------------

    async def send(
        self,
        principal: Principal,
        *,
        user_name: str,
        session_id: uuid.UUID,
        text: str,
        client_msg_id: str,
        events: TurnEvents,
        to: Sequence[str] = (),
        mode: str | None = None,
        on_accepted: Callable[[uuid.UUID], Awaitable[None]] | None = None,
    ) -> Sent:
        """Store the user message exactly once and start its turns in the background.
        A resend of an accepted ``client_msg_id`` returns the stored message and starts
        nothing new. ``on_accepted`` runs once the session is known to be the caller's,
        before any turn starts (the transport joins its room there)."""
        if not self.accepting:
            raise ChatError("shutting_down", "the server is shutting down; retry on another")
        limit = self.services.settings.max_message_chars
        if len(text) > limit:
            raise ChatError("text_too_long", f"text: longer than {limit} characters")
        if not text.strip():
            raise ChatError("invalid_payload", "text: must not be blank")
        if self._owners.get(session_id) != principal.user_id:
            await self.session_for(principal, session_id)  # an admin's, or not known yet
        if on_accepted is not None:
            await on_accepted(session_id)
        transcripts = self.services.memory.transcripts
        try:
            held = await self.limiter.admit(principal.user_id)
        except RateLimited:
            # a resend of a message already accepted is answered, not refused
            stored = await transcripts.user_message(session_id, client_msg_id)
            if stored is not None:
                return Sent(stored, duplicate=True)
            raise
        try:
            message, session = await transcripts.store_user_message(
                session_id,
                user_id=principal.user_id,
                speaker=user_name,
                text=text,
                client_msg_id=client_msg_id,
            )
        except BaseException:
            await self.limiter.release_turn(principal.user_id, held)
            raise
        if session is None:
            await self.limiter.release_turn(principal.user_id, held)
            return Sent(message, duplicate=True)
        interrupt = self._interrupts.get(session.id)
        if interrupt is not None:
            interrupt.set()  # a user message stops the personas' autonomous round
        self._spawn(
            self._turns(principal, session, message, user_name, events, to, mode, held),
            name=f"turn-{message.id}",
        )
        return Sent(message, duplicate=False)

    async def _turns(
        self,
        principal: Principal,
        session: Session,
        message: Message,
        user_name: str,
        events: TurnEvents,
        to: Sequence[str],
        mode: str | None,
        held: bool,
    ) -> None:
        lock = self._session_locks.setdefault(session.id, asyncio.Lock())
        started = time.perf_counter()
        try:
            async with lock:  # one session's turns run in order
                results = await self.services.director.respond(
                    session, message, user_name=user_name, events=events, to=to, mode=mode,
                    fresh=True,
                )
                self._observe(results, started)
                rounds = int(session.metadata.get("rounds", 0))
                if session.policy == "autonomous" and rounds > 0 and _all_complete(results):
                    interrupt = asyncio.Event()
                    self._interrupts[session.id] = interrupt
                    try:
                        more = await self.services.director.autonomous(
                            session,
                            user_name=user_name,
                            rounds=rounds,
                            events=events,
                            interrupt=interrupt,
                        )
                        self._observe(more, time.perf_counter())
                    finally:
                        self._interrupts.pop(session.id, None)
        except Exception as exc:  # a worker must survive: report, log type and message
            log.error(
                "turn for message %s in session %s failed: %s: %s",
                message.id,
                session.id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            self.metrics.turn_errors.labels(code="internal").inc()
            await events.failed(None, "internal", "the reply failed; the message is kept")
        finally:
            await self.limiter.release_turn(principal.user_id, held)
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._session_locks.pop(session.id, None)

    def _observe(self, results: Sequence[TurnResult], started: float) -> None:
        for r in results:
            self.metrics.turns.labels(status=r.status).inc()
            if r.error_code:
                self.metrics.turn_errors.labels(code=r.error_code).inc()
            t = r.timings
            critical = sum(t.get(k, 0.0) for k in ("load_persona_ms", "retrieve_ms", "compose_ms"))
            if critical:
                self.metrics.critical_path.observe(critical / 1000)
            if "first_token_ms" in t:
                self.metrics.first_token.observe((critical + t["first_token_ms"]) / 1000)
            if "turn_ms" in t:
                self.metrics.turn_latency.observe(t["turn_ms"] / 1000)

    def _spawn(self, coro: Any, *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_s: float) -> int:
        """Stop taking turns and wait up to ``grace_s`` for running ones; returns how many
        were still running and got cancelled."""
        self.accepting = False
        pending = set(self._tasks)
        if not pending:
            return 0
        log.info("waiting up to %.0f s for %d turn(s) to finish", grace_s, len(pending))
        _, still = await asyncio.wait(pending, timeout=grace_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=5.0)
        return len(still)

    async def feedback(
        self, principal: Principal, message_id: uuid.UUID, rating: int, comment: str = ""
    ) -> Feedback:
        """Rate a message of one of the caller's sessions; a second rating replaces it."""
        transcripts = self.services.memory.transcripts
        stored = await transcripts.rate(message_id, principal.user_id, rating, comment)
        if stored is not None:
            return stored
        if await transcripts.message_exists(message_id):
            raise ChatError("forbidden", f"message '{message_id}' is not in one of your sessions")
        raise ChatError("message_not_found", f"message '{message_id}' not found")

    # memory inspection ----------------------------------------------------------------

    async def _scope(self, principal: Principal, persona: str, user: str | None) -> tuple[str, str]:
        p = await self.services.personas.get(persona)
        if user is not None and user != principal.user_id and not principal.is_admin:
            raise ChatError("forbidden", "only an admin may inspect another user's memories")
        return str(p.id), user or principal.user_id

    async def list_memories(
        self,
        principal: Principal,
        persona: str,
        *,
        session_id: uuid.UUID | None = None,
        kind: MemoryKind | None = None,
        user: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> MemoryPage:
        persona_id, user_id = await self._scope(principal, persona, user)
        where = MemoryFilter(
            persona_id=persona_id,
            user_id=user_id,
            session_id=str(session_id) if session_id else None,
            kinds=frozenset({kind}) if kind else None,
        )
        return await self.services.memory.list(where, limit=limit, cursor=cursor)

    async def search_memories(
        self,
        principal: Principal,
        persona: str,
        query: str,
        *,
        k: int = 10,
        session_id: uuid.UUID | None = None,
        user: str | None = None,
    ) -> list[ScoredMemory]:
        persona_id, user_id = await self._scope(principal, persona, user)
        return await self.services.memory.search(
            persona_id=persona_id,
            user_id=user_id,
            text=query,
            k=k,
            session_id=str(session_id) if session_id else None,
        )

    async def delete_memory(
        self, principal: Principal, persona: str, memory_id: uuid.UUID, *, user: str | None = None
    ) -> None:
        persona_id, user_id = await self._scope(principal, persona, user)
        await self.services.memory.delete(memory_id, persona_id=persona_id, user_id=user_id)

    async def pin_memory(
        self,
        principal: Principal,
        persona: str,
        memory_id: uuid.UUID,
        pinned: bool,
        *,
        user: str | None = None,
    ) -> MemoryRecord:
        persona_id, user_id = await self._scope(principal, persona, user)
        return await self.services.memory.set_pinned(
            memory_id, pinned, persona_id=persona_id, user_id=user_id
        )

    async def traits(
        self, principal: Principal, persona: str, session_id: uuid.UUID | None = None
    ) -> TraitsView:
        p = await self.services.personas.get(persona)
        if session_id is not None:
            await self.session_for(principal, session_id)
        tracker = self.services.agents.tracker
        observed, turns = await tracker.profile(p.id, session_id)
        return TraitsView(p, observed, turns, await tracker.drift(p, session_id))


def _all_complete(results: Sequence[TurnResult]) -> bool:
    return bool(results) and all(r.status == "complete" for r in results)
