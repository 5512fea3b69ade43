"""The turn graph: one compiled LangGraph ``StateGraph`` serves every persona.

``prepare -> respond -> extract_traits``. ``prepare`` is the critical path before the
first token: it loads the persona, then retrieves memories (Qdrant) and reads the recent
transcript (PostgreSQL) at once, and composes the prompt. ``respond`` streams the reply
from the model, stores it and reports ``done``; ``extract_traits`` then embeds the reply
once, stores both lines as memories and the reply's trait observations.

Each run gets a :class:`TurnContext` (LangGraph's runtime context) holding the
transport's events: nodes report as they go (``started``, every token as the model
streams it, ``done``, ``failed``, ``traits``). ``prepare`` and ``respond`` may end a
turn early and route with ``Command``; the last edge is plain. LangGraph costs about
0.3 ms of CPU per node run (``bench/graph_overhead.py``), so steps that always run
together share a node."""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict, cast

from langchain_core.messages import BaseMessageChunk
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.decoding import decoding_for
from agents.errors import LLMStreamBroken, LLMUnavailable
from agents.guards import Cut, ReplyGuard
from agents.prompt import Line, Prompt, PromptInput, Recollection, compose
from agents.tracker import TraitUpdate
from agents.traits import TraitObservation, extract
from agents.types import AgentServices, TurnEvents, TurnRequest, TurnResult, TurnStatus
from memory.errors import IndexUnavailable
from memory.record.transcripts import Message, SpokenLine
from memory.service import NewMemory, Recall
from memory.types import ScoredMemory, spoken_line
from personas import Persona, PersonaError
from personas.cards import CardPrompt, card_prompt
from personas.channels import channel_of

log = logging.getLogger(__name__)
MEMORY_UNAVAILABLE = "memory_unavailable"
"""In a reply's timings (1): the vector store was down, so it was answered without
memories."""
_END: Literal["__end__"] = "__end__"  # LangGraph's END, typed as the literal it is
assert _END == END


class TurnState(TypedDict, total=False):
    request: TurnRequest
    persona: Persona
    memories: list[ScoredMemory]
    said_before: tuple[str, ...]
    prompt: Prompt
    reply: str
    status: TurnStatus
    cut: Cut | None
    error_code: str
    error: str
    message: Message
    observations: list[TraitObservation]
    traits: TraitUpdate
    timings: Annotated[dict[str, float], operator.or_]
    late_errors: list[str]
    memories_lost: list[str]


@dataclass(frozen=True, slots=True)
class TurnContext:
    """One run's runtime context: where its events go, and when the turn began."""

    events: TurnEvents
    started_at: float


def build_graph(services: AgentServices) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled turn graph for ``services``; build once per process."""
    cfg = services.config

    async def prepare(
        state: TurnState, runtime: Runtime[TurnContext]
    ) -> Command[Literal["respond", "__end__"]]:
        t0 = time.perf_counter()
        request, events = state["request"], runtime.context.events
        try:
            persona = await services.personas.get(request.persona)
        except PersonaError as exc:
            return await _end_failed(events, None, "persona_not_found", str(exc), {})
        await events.started(persona, request.reply_id)
        t1 = time.perf_counter()

        async def recall() -> tuple[Recall | None, float]:
            try:
                found = await services.memory.recall(
                    persona_id=str(persona.id),
                    user_id=request.user_id,
                    text=request.user_message.text,
                    # a short card shows only what the user said: look further for it
                    k=cfg.memory_k * (2 if cfg.model.card == "short" else 1),
                )
            except IndexUnavailable as exc:
                # the vector store is down: answer without memories, and say so
                log.warning(
                    "turn %s of session %s answers without memories: %s",
                    request.reply_id,
                    request.session_id,
                    exc,
                )
                return None, _ms(t1)
            return found, _ms(t1)

        # the memories (Qdrant) and the recent transcript (PostgreSQL) at once
        (found, retrieve_ms), recent = await asyncio.gather(
            recall(), recent_lines(services, request)
        )
        memories = found.memories if found is not None else []
        prompt = await compose_from(services, request, persona, memories, recent)
        load_ms = (t1 - t0) * 1000
        timings = {
            "load_persona_ms": load_ms,
            "retrieve_ms": retrieve_ms,
            # the rest: the transcript read outlasting the recall, and composing
            "compose_ms": _ms(t0) - load_ms - retrieve_ms,
        }
        if found is None:
            timings[MEMORY_UNAVAILABLE] = 1.0
        return Command(
            update={
                "persona": persona,
                "memories": memories,
                "said_before": said_before(request, recent),
                "prompt": prompt,
                "timings": timings,
            },
            goto="respond",
        )

    async def respond(
        state: TurnState, runtime: Runtime[TurnContext]
    ) -> Command[Literal["extract_traits", "__end__"]]:
        events = runtime.context.events
        outcome = await stream_reply(state, events)
        if outcome["status"] == "failed":
            return await _end_failed(
                events,
                state["persona"],
                outcome["error_code"],
                outcome["error"],
                outcome["timings"],
            )
        timings = {**state.get("timings", {}), **outcome["timings"]}
        message, stored = await store_reply({**state, **outcome, "timings": timings}, runtime)
        update: TurnState = {
            **outcome,
            "message": message,
            "timings": {**outcome["timings"], **stored},
        }
        if outcome["status"] == "incomplete":
            await events.failed(state["persona"], outcome["error_code"], outcome["error"])
            return Command(update=update, goto=_END)
        return Command(update=update, goto="extract_traits")

    async def stream_reply(state: TurnState, events: TurnEvents) -> TurnState:
        """Stream the reply through the guard (no other speaker's lines, no loops): the
        guard's text goes out as tokens; a reply it or the token limit cut is marked."""
        t0 = time.perf_counter()
        request, persona, prompt = state["request"], state["persona"], state["prompt"]
        model = services.chat_model()
        decoding = decoding_for(cfg.model, persona.style)
        options: dict[str, Any] = decoding.options()
        first: float | None = None
        try:
            async with asyncio.timeout(cfg.llm_timeout_s):
                # a reply the guard cut to nothing (it began with another's line) is
                # asked for once more before the turn fails as empty
                for _ in range(2):
                    guard = ReplyGuard(prompt.speakers)
                    finish: str | None = None
                    # an async generator: closing it stops the model (a guard's early end)
                    stream = cast(
                        "AsyncGenerator[BaseMessageChunk, None]",
                        model.astream(list(prompt.messages), **options),
                    )
                    async with aclosing(stream) as chunks:
                        async for chunk in chunks:
                            finish = chunk.response_metadata.get("finish_reason") or finish
                            text = chunk.content if isinstance(chunk.content, str) else ""
                            shown = guard.feed(text)
                            if shown:
                                if first is None:
                                    first = time.perf_counter()
                                await events.token(persona, request.reply_id, shown)
                            if guard.stopped:
                                break
                    reply = guard.finish(finish)
                    if reply.text or reply.cut is None:
                        break
        except LLMUnavailable as exc:
            return _failed("llm_unavailable", str(exc), t0)
        except LLMStreamBroken as exc:
            return _incomplete(guard.finish().text or exc.partial, str(exc), t0, first)
        except TimeoutError:
            reason = f"llm {services.llm_name!r} timed out after {cfg.llm_timeout_s:g} s"
            partial = guard.finish().text
            if partial:
                return _incomplete(partial, reason, t0, first)
            return _failed("llm_unavailable", reason, t0)
        if not reply.text:
            return _failed("llm_empty", f"llm {services.llm_name!r} returned an empty reply", t0)
        if reply.tail:
            if first is None:
                first = time.perf_counter()
            await events.token(persona, request.reply_id, reply.tail)
        timings = {"llm_ms": _ms(t0)}
        if first is not None:
            timings["first_token_ms"] = (first - t0) * 1000
        return {"reply": reply.text, "status": "complete", "cut": reply.cut, "timings": timings}

    async def store_reply(
        state: TurnState, runtime: Runtime[TurnContext]
    ) -> tuple[Message, dict[str, float]]:
        """Store the reply (complete, or a broken stream's partial one) and report
        ``done`` with the turn's timings."""
        t0 = time.perf_counter()
        request, persona = state["request"], state["persona"]
        message, _ = await services.memory.transcripts.append_persona_message(
            request.session_id,
            persona_id=persona.id,
            speaker=persona.name,
            text=state["reply"],
            reply_to=request.user_message.id,
            status=state["status"],
            cut=state.get("cut"),
            timings={k: round(v, 2) for k, v in state["timings"].items()},
            message_id=request.reply_id,
        )
        timings = {"persist_ms": _ms(t0), "turn_ms": _ms(runtime.context.started_at)}
        await runtime.context.events.done(persona, message, {**state["timings"], **timings})
        return message, timings

    async def extract_traits(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
        # the reply is stored and delivered: what fails from here fails on its own
        try:
            return await remember_and_observe(state, runtime)
        except Exception as exc:  # logged, and reported in the result
            log.warning(
                "after reply %s was delivered, extract_traits failed: %s: %s",
                state["message"].id,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            return {"late_errors": ["extract_traits"]}

    async def remember_and_observe(
        state: TurnState, runtime: Runtime[TurnContext]
    ) -> TurnState:
        t0 = time.perf_counter()
        request, persona, message = state["request"], state["persona"], state["message"]
        base = NewMemory(
            persona_id=str(persona.id),
            user_id=request.user_id,
            session_id=str(request.session_id),
            speaker_name="",
            speaker_role="user",
            text="",
        )
        user_line = replace(
            base,
            speaker_name=request.user_message.speaker,
            speaker_role=request.user_message.role,
            text=request.user_message.text,
            created_at=request.user_message.created_at,
            metadata={"message_id": str(request.user_message.id)},
        )
        reply_line = replace(
            base,
            speaker_name=persona.name,
            speaker_role="persona",
            text=message.text,
            created_at=message.created_at,
            metadata={"message_id": str(message.id)},
        )
        before = state.get("said_before", ())
        # memories are embedded with their speaker; the trait prototypes read the reply
        vectors = await services.memory.embedder.embed(
            [user_line.spoken, reply_line.spoken, message.text]
        )
        reply_vector = vectors[2]
        lost: list[str] = []
        lines = [
            replace(user_line, vector=vectors[0], context=(*before, reply_line.spoken)),
            replace(reply_line, vector=vectors[1], context=(*before[-1:], user_line.spoken)),
        ]
        try:
            await services.memory.remember(lines)
        except IndexUnavailable as exc:
            # the transcript holds both lines; only their memories are lost
            lost = [str(request.user_message.id), str(message.id)]
            log.warning("memories of messages %s not stored: %s", ", ".join(lost), exc)
        observations = extract(
            message.text, reply_vector, request.user_message.text, scorer=services.scorer
        )
        if services.judge is not None:
            observations += await services.judge.judge(
                message.text, [t.name for t in persona.own_traits]
            )
        update = await services.tracker.record(
            persona,
            request.session_id,
            message.id,
            observations,
            _observed_summary(observations),
        )
        await runtime.context.events.traits(persona, update)
        channel = channel_of(persona, request.channel)
        if channel is not None:  # did the reply meet the overlay's constraints?
            await services.personas.record_channel(message.id, persona.id, channel, message.text)
        return {
            "observations": observations,
            "traits": update,
            "timings": {"extract_ms": _ms(t0)},
            "memories_lost": lost,
        }

    graph = StateGraph(TurnState, context_schema=TurnContext)
    graph.add_node("prepare", prepare)
    graph.add_node("respond", respond)
    graph.add_node("extract_traits", extract_traits)
    graph.add_edge(START, "prepare")
    graph.add_edge("extract_traits", END)
    return graph.compile(name="persona-turn")


async def run_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any], request: TurnRequest, events: TurnEvents
) -> TurnResult:
    """Run one turn; ``events`` hear of it as it goes (the reply's tokens as the model
    streams them, ``done`` as soon as the reply is stored). Returns after memories and
    traits are written too."""
    try:
        state = await graph.ainvoke(
            {"request": request, "timings": {}},
            context=TurnContext(events, time.perf_counter()),
        )
    except Exception as exc:  # this persona's turn fails; the others go on
        log.error(
            "turn %s for message %s failed: %s: %s",
            request.reply_id,
            request.user_message.id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        await events.failed(None, "internal", "the reply failed; the message is kept")
        return TurnResult(None, None, "failed", error_code="internal", error=type(exc).__name__)
    return TurnResult(
        persona=state.get("persona"),
        message=state.get("message"),
        status=state.get("status", "failed"),
        error_code=state.get("error_code"),
        error=state.get("error"),
        timings=state.get("timings", {}),
        observations=tuple(state.get("observations", ())),
        traits=state.get("traits"),
        late_errors=tuple(state.get("late_errors", ())),
        memories_lost=tuple(state.get("memories_lost", ())),
    )


async def prompt_for(
    services: AgentServices,
    request: TurnRequest,
    persona: Persona,
    memories: Sequence[ScoredMemory],
) -> Prompt:
    """The prompt a turn uses: also what ``personae prompt`` prints."""
    recent = await recent_lines(services, request)
    return await compose_from(services, request, persona, memories, recent)


async def recent_lines(services: AgentServices, request: TurnRequest) -> tuple[SpokenLine, ...]:
    """The session's latest lines, enough for the prompt's transcript."""
    return await services.memory.transcripts.recent_lines(
        request.session_id, services.config.transcript_lines + 1
    )


async def compose_from(
    services: AgentServices,
    request: TurnRequest,
    persona: Persona,
    memories: Sequence[ScoredMemory],
    recent: Sequence[SpokenLine],
) -> Prompt:
    cfg = services.config
    keep = cfg.transcript_lines
    if cfg.model.transcript_lines is not None:
        keep = min(keep, cfg.model.transcript_lines)
    lines = [
        Line(m.speaker, m.text, own=m.persona_id == persona.id)
        for m in recent
        if m.id != request.user_message.id and m.status != "failed"
    ]
    lines = lines[len(lines) - min(keep, len(lines)) :]
    card = await services.cards.get(persona.id) if services.cards is not None else None
    extras = (
        card_prompt(
            card,
            persona_name=persona.name,
            user_name=request.user_name,
            recent=[ln.text for ln in lines] + [request.user_message.text],
        )
        if card is not None
        else CardPrompt()
    )
    return compose(
        PromptInput(
            persona=persona,
            user_name=request.user_name,
            user_text=request.user_message.text,
            speaker=request.user_message.speaker,
            memories=[_recollection(m) for m in memories],
            transcript=lines,
            others=request.others,
            handles=request.handles,
            mode=request.mode,
            reinforcement=await services.tracker.reinforcement(persona, request.session_id),
            channel=channel_of(persona, request.channel),
            card_sections=extras.sections,
            card_closing=extras.closing,
        ),
        budget_tokens=cfg.budget_tokens,
        profile=cfg.model,
    )


def said_before(request: TurnRequest, recent: Sequence[SpokenLine]) -> tuple[str, ...]:
    """The two lines before the user's, which its memory is indexed with."""
    lines = [
        spoken_line(m.speaker, m.text)
        for m in recent
        if m.id != request.user_message.id and m.status != "failed"
    ]
    return tuple(lines[-2:])


def _recollection(m: ScoredMemory) -> Recollection:
    r = m.record
    return Recollection(
        r.text, r.speaker_name, r.created_at, r.kind, m.score.total, role=r.speaker_role
    )


def _observed_summary(observations: list[TraitObservation]) -> dict[str, Any]:
    return {
        o.trait: {
            "value": round(o.value, 3),
            "method": o.method,
            "confidence": round(o.confidence, 2),
        }
        for o in observations
    }


def _failed(code: str, reason: str, t0: float) -> TurnState:
    return {"status": "failed", "error_code": code, "error": reason, "timings": {"llm_ms": _ms(t0)}}


def _incomplete(partial: str, reason: str, t0: float, first: float | None) -> TurnState:
    timings = {"llm_ms": _ms(t0)}
    if first is not None:
        timings["first_token_ms"] = (first - t0) * 1000
    if not partial.strip():
        return {
            "status": "failed",
            "error_code": "llm_stream_broken",
            "error": reason,
            "timings": timings,
        }
    return {
        "reply": partial.strip(),
        "status": "incomplete",
        "error_code": "llm_stream_broken",
        "error": reason,
        "timings": timings,
    }


async def _end_failed(
    events: TurnEvents,
    persona: Persona | None,
    code: str,
    reason: str,
    timings: dict[str, float],
) -> Command[Any]:
    """Report a turn that cannot go on, and end the run."""
    await events.failed(persona, code, reason)
    return Command(
        update={"status": "failed", "error_code": code, "error": reason, "timings": timings},
        goto=_END,
    )


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


__all__ = ["TurnContext", "TurnState", "build_graph", "prompt_for", "run_turn"]
