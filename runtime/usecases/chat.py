"""ChatService: what the transports (Socket.IO, REST, ``/v1``) call — sessions, sending
and retrying messages and running their turns in the background (in order per session,
see :mod:`runtime.infra.turn_order`; the running ones kept by message id), history and
feedback, with ownership checks and per-user limits; memory and trait views are its
:class:`~runtime.usecases.inspection.Inspection`. Transports only translate payloads and
errors."""

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
from agents.types import TurnEvents, TurnResult
from memory import (
    MemoryPage,
    MemoryRecord,
    ScoredMemory,
    SessionExists,
    SessionNotFound,
    check_name,
)
from memory.record.transcripts import Message, MessagePage, Session
from personas import Persona
from runtime.errors import ChatError
from runtime.infra.auth import MAX_USER_ID, Principal
from runtime.infra.metrics import Metrics
from runtime.infra.ratelimit import RateLimited, RateLimiter
from runtime.infra.turn_order import Interrupts, SessionOrder
from runtime.services import Services
from runtime.usecases.facts import Facts
from runtime.usecases.feedback import GivenFeedback, give_feedback
from runtime.usecases.greetings import greet
from runtime.usecases.inspection import Inspection, TraitsView

__all__ = ["ChatError", "ChatService", "Sent", "TraitsView"]
log = logging.getLogger(__name__)
_OWNERS_KEPT = 100_000  # sessions whose owner a send can check without a read


@dataclass(frozen=True, slots=True)
class Sent:
    message: Message
    duplicate: bool


EventsFor = Callable[[uuid.UUID], TurnEvents]


class ChatService:
    def __init__(
        self,
        services: Services,
        limiter: RateLimiter,
        metrics: Metrics,
        order: SessionOrder | None = None,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.services = services
        self.limiter = limiter
        self.metrics = metrics
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[uuid.UUID, set[asyncio.Task[None]]] = {}  # by user message
        self._order = order or SessionOrder(None)
        self.inspection = Inspection(services, self.session_for, limiter)
        self.facts = Facts(services)
        self._interrupts = interrupts or Interrupts(None)
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
        await self.limiter.admit_session(principal.user_id)
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

    async def open_session(
        self, principal: Principal, persona: Persona, *, session_id: uuid.UUID, title: str = ""
    ) -> Session:
        """The caller's session ``session_id``, created with ``persona`` when there is
        none yet (a parallel request creating it too gets the same one; a new one counts
        against the caller's sessions per minute); it must include ``persona``."""
        try:
            session = await self.session_for(principal, session_id)
        except SessionNotFound:
            await self.limiter.admit_session(principal.user_id)  # as start_session does
            try:
                session = await self.services.memory.transcripts.create_session(
                    principal.user_id, [persona.id], session_id=session_id, title=title
                )
            except SessionExists:  # created meanwhile by a parallel request
                session = await self.session_for(principal, session_id)
        if persona.id not in session.persona_ids:
            raise ChatError(
                "invalid_payload", f"session '{session.id}' does not include {persona.slug}"
            )
        return session

    async def discard_if_unused(self, principal: Principal, session_id: uuid.UUID) -> bool:
        """Delete the caller's session if nothing was said in it (no user message; a
        card's greeting does not count): call it when the caller leaves a session it
        started, so that trying a persona and leaving leaves nothing behind. Whether it
        was deleted."""
        try:
            await self.session_for(principal, session_id)
        except SessionNotFound:
            return False
        gone = await self.services.memory.transcripts.delete_if_unused(session_id)
        if gone:
            self._owners.pop(session_id, None)
            log.info("session %s left unused: deleted", session_id)
        return gone

    async def end_session(self, session_id: uuid.UUID) -> None:
        """The session ended (its terminal chat closed, its last connection left): its
        summary is written at once instead of after the quiet time. One statement, off
        any reply's path; a failure is logged (the quiet time still comes)."""
        try:
            await self.services.summaries.end(session_id)
        except Exception as exc:  # noqa: BLE001 (a leave never fails for it)
            log.warning("session %s not marked ended: %s: %s", session_id, type(exc).__name__, exc)

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
        channel: str | None = None,
    ) -> Sent:
        """Store the user message exactly once and start its turns in the background.
        A resend of an accepted ``client_msg_id`` returns the stored message and starts
        nothing new. ``on_accepted`` runs once the session is known to be the caller's,
        before any turn starts (the transport joins its room there)."""
        if not self.accepting:
            raise ChatError("shutting_down", "the server is shutting down; retry on another")
        user_name = _speaker(user_name)
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
        if session.policy == "autonomous":
            # a user message stops the personas' round, on whichever process runs it
            await self._interrupts.interrupt(session.id)
        self._spawn(
            self._turns(
                principal, session, message, user_name, events, to, mode, held, channel=channel
            ),
            name=f"turn-{message.id}",
            message_id=message.id,
        )
        return Sent(message, duplicate=False)

    async def retry(
        self,
        principal: Principal,
        *,
        user_name: str,
        session_id: uuid.UUID,
        message_id: uuid.UUID,
        events: TurnEvents,
        on_accepted: Callable[[uuid.UUID], Awaitable[None]] | None = None,
    ) -> Message:
        """Answer a stored user message again: each persona the policy picks that has not
        answered it yet answers now; one that has re-sends its stored reply. Runs after
        the session's other turns, like a send."""
        if not self.accepting:
            raise ChatError("shutting_down", "the server is shutting down; retry on another")
        user_name = _speaker(user_name)
        session = await self.session_for(principal, session_id)
        message = await self.services.memory.transcripts.message(session_id, message_id)
        if message is None or message.role != "user":
            raise ChatError("message_not_found", f"no user message '{message_id}' in this session")
        if on_accepted is not None:
            await on_accepted(session_id)
        held = await self.limiter.admit(principal.user_id)
        self._spawn(
            self._turns(
                principal, session, message, user_name, events, (), None, held, fresh=False
            ),
            name=f"retry-{message.id}",
            message_id=message.id,
        )
        return message

    async def answer_unanswered(
        self,
        principal: Principal,
        *,
        user_name: str,
        session: Session,
        recent: Sequence[Message],
        events: TurnEvents,
    ) -> int:
        """Answer the user messages among ``recent`` that no persona has answered (a
        failed or never-run turn), oldest first, like :meth:`retry`; returns how many.
        Stops quietly at the caller's rate limit."""
        user_name = _speaker(user_name)
        answered = {m.reply_to for m in recent if m.reply_to is not None}
        pending = [m for m in recent if m.role == "user" and m.id not in answered]
        started = 0
        for message in pending:
            if not self.accepting:
                break
            try:
                held = await self.limiter.admit(principal.user_id)
            except RateLimited:
                log.info("session %s: %d unanswered left for later", session.id, len(pending))
                break
            self._spawn(
                self._turns(
                    principal, session, message, user_name, events, (), None, held, fresh=False
                ),
                name=f"rejoin-{message.id}",
                message_id=message.id,
            )
            started += 1
        return started

    async def wait_for_turn(self, message_id: uuid.UUID, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the turns answering this user message that run in
        this process; returns whether none is still running."""
        running = self._running.get(message_id)
        if not running:
            return True
        _, pending = await asyncio.wait(set(running), timeout=timeout_s)
        return not pending

    async def answer_again(
        self,
        principal: Principal,
        session: Session,
        message: Message,
        *,
        user_name: str,
        events: TurnEvents,
        to: Sequence[str] = (),
        wait_s: float = 600.0,
    ) -> list[TurnResult]:
        """For a user message stored before and sent again (its answer was lost): wait up
        to ``wait_s`` for the turn answering it here, then report each persona's stored
        reply, or answer it where there is none (its turn failed, or ran on a process
        that stopped). Answering takes one of the caller's turn slots
        (:class:`~runtime.infra.ratelimit.RateLimited` past its limits) and runs in the
        session's order, under its lock: of parallel resends, the first answers and the
        others find its reply, so nothing is stored or remembered twice."""
        user_name = _speaker(user_name)
        await self.wait_for_turn(message.id, wait_s)
        director = self.services.director
        if not await self._unanswered(session, message, to):
            return await director.respond(
                session, message, user_name=user_name, events=events, to=to
            )
        held = await self.limiter.admit(principal.user_id)
        try:
            async with self._order.turn(session.id):
                return await director.respond(
                    session, message, user_name=user_name, events=events, to=to
                )
        finally:
            await self.limiter.release_turn(principal.user_id, held)

    async def _unanswered(self, session: Session, message: Message, to: Sequence[str]) -> bool:
        """Whether one of the personas ``to`` names (or, naming none, of the session's)
        has no stored reply to ``message``."""
        transcripts = self.services.memory.transcripts
        for persona in await self.services.director.participants(session):
            if to and persona.slug not in to:
                continue
            if await transcripts.reply_to(message.id, persona.id) is None:
                return True
        return False

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
        *,
        fresh: bool = True,
        channel: str | None = None,
    ) -> None:
        started = time.perf_counter()
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await self.limiter.release_turn(principal.user_id, held)

        try:
            async with self._order.turn(session.id):  # one session's turns run in order
                results = await self.services.director.respond(
                    session,
                    message,
                    user_name=user_name,
                    events=events,
                    to=to,
                    mode=mode,
                    fresh=fresh,
                    channel=channel,
                )
                self._observe(results, started)
                rounds = int(session.metadata.get("rounds", 0))
                if session.policy == "autonomous" and rounds > 0 and _all_complete(results):
                    interrupt = self._interrupts.watch(session.id)
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
                        self._interrupts.unwatch(session.id)
                # the slot goes before the session's lock: the user's next turn may start
                await release()
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
            await release()

    def _observe(self, results: Sequence[TurnResult], started: float) -> None:
        for r in results:
            self.metrics.turns.labels(status=r.status).inc()
            if r.error_code:
                self.metrics.turn_errors.labels(code=r.error_code).inc()
            for step in r.late_errors:
                self.metrics.step_errors.labels(step=step).inc()
            if r.memories_lost:
                self.metrics.memories_lost.inc(len(r.memories_lost))
            t = r.timings
            critical = sum(t.get(k, 0.0) for k in ("load_persona_ms", "retrieve_ms", "compose_ms"))
            if critical:
                self.metrics.critical_path.observe(critical / 1000)
            if "first_token_ms" in t:
                self.metrics.first_token.observe((critical + t["first_token_ms"]) / 1000)
            if "turn_ms" in t:
                self.metrics.turn_latency.observe(t["turn_ms"] / 1000)

    def _spawn(self, coro: Any, *, name: str, message_id: uuid.UUID) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        self._running.setdefault(message_id, set()).add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._finished(message_id, done))

    def _finished(self, message_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        running = self._running.get(message_id)
        if running is not None:
            running.discard(task)
            if not running:
                del self._running[message_id]

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
        self,
        principal: Principal,
        message_id: uuid.UUID,
        rating: int,
        comment: str = "",
        reason: str | None = None,
    ) -> GivenFeedback:
        """Rate a message of one of the caller's sessions (a second rating replaces it),
        with an optional reason that may move the persona's matching setting
        (:func:`~runtime.usecases.feedback.give_feedback`)."""
        return await give_feedback(
            self.services, principal.user_id, message_id, rating, comment, reason
        )

    # memory and trait views: the inspection service's, here too for existing callers

    async def traits(
        self, principal: Principal, persona: str, session_id: uuid.UUID | None = None
    ) -> TraitsView:
        return await self.inspection.traits(principal, persona, session_id)

    async def list_memories(self, principal: Principal, persona: str, **kw: Any) -> MemoryPage:
        return await self.inspection.list_memories(principal, persona, **kw)

    async def search_memories(
        self, principal: Principal, persona: str, query: str, **kw: Any
    ) -> list[ScoredMemory]:
        return await self.inspection.search_memories(principal, persona, query, **kw)

    async def delete_memory(
        self, principal: Principal, persona: str, memory_id: uuid.UUID, **kw: Any
    ) -> None:
        await self.inspection.delete_memory(principal, persona, memory_id, **kw)

    async def pin_memory(
        self, principal: Principal, persona: str, memory_id: uuid.UUID, pinned: bool, **kw: Any
    ) -> MemoryRecord:
        return await self.inspection.pin_memory(principal, persona, memory_id, pinned, **kw)


def _speaker(user_name: str) -> str:
    """The caller's name as the transcript and the prompts take it, checked here for
    every interface (:func:`memory.check_name`): one line, bounded (a user id, the name
    of a user who gave none, may be as long as ``MAX_USER_ID``)."""
    try:
        return check_name(user_name, "name", max_chars=MAX_USER_ID)
    except ValueError as exc:
        raise ChatError("invalid_payload", str(exc)) from None


def _all_complete(results: Sequence[TurnResult]) -> bool:
    return bool(results) and all(r.status == "complete" for r in results)
