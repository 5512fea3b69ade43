"""The ``prepare`` node, the critical path before the first token: it announces the
turn, retrieves memories (Qdrant) and reads the recent transcript (PostgreSQL) at once,
and composes the prompt. Also the prompt a turn would use, for ``personae prompt``."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

from langgraph.runtime import Runtime

from agents.facts_prompt import KnownFact, asks_about_past
from agents.prompt import Line, Prompt, PromptInput, Recollection, compose
from agents.turn.state import TurnContext, TurnState, ms_since
from agents.types import AgentServices, TurnRequest
from memory.errors import IndexUnavailable
from memory.record.facts import Fact
from memory.record.transcripts import SpokenLine
from memory.service import Recall
from memory.types import ScoredMemory, spoken_line
from personas.cards import CardPrompt, card_prompt
from personas.channels import channel_of

log = logging.getLogger(__name__)
MEMORY_UNAVAILABLE = "memory_unavailable"
"""In a reply's timings (1): the vector store was down, so it was answered without
memories."""


async def prepare(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    """Report ``started`` and build the turn's prompt. Never ends the turn: the persona
    came loaded, and a vector store that is down costs the memories, not the reply."""
    t0 = time.perf_counter()
    context, request = runtime.context, state["request"]
    services = context.services
    await context.events.started(request.persona, request.reply_id)
    t1 = time.perf_counter()
    # the memories (Qdrant) and, meanwhile, the recent transcript and the user's facts
    # (PostgreSQL, one after the other in the turn's own transaction)
    (found, retrieve_ms), (recent, known) = await asyncio.gather(
        _recall(services, request, t1), _record(services, request)
    )
    memories = found.memories if found is not None else []
    facts = relevant_first(known, memories)
    prompt = await compose_from(services, request, memories, recent, facts)
    timings = {
        "load_persona_ms": context.persona_load_ms,
        "retrieve_ms": retrieve_ms,
        # the rest: reporting ``started``, the transcript read outlasting the recall,
        # and composing
        "compose_ms": ms_since(t0) - retrieve_ms,
    }
    if found is None:
        timings[MEMORY_UNAVAILABLE] = 1.0
    return {
        "memories": memories,
        "said_before": said_before(request, recent),
        "replied_before": replied_before(request, recent),
        "facts": facts,
        "query_vector": found.vector if found is not None else None,
        "prompt": prompt,
        "timings": timings,
    }


async def _recall(
    services: AgentServices, request: TurnRequest, t0: float
) -> tuple[Recall | None, float]:
    """The memories for the user's line (``None`` when the vector store is down), and
    the milliseconds since ``t0`` when they came."""
    cfg = services.config
    try:
        found = await services.memory.recall(
            persona_id=str(request.persona.id),
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
        return None, ms_since(t0)
    return found, ms_since(t0)


async def prompt_for(
    services: AgentServices, request: TurnRequest, memories: Sequence[ScoredMemory]
) -> Prompt:
    """The prompt a turn for ``request`` uses with ``memories``: also what
    ``personae prompt`` prints."""
    recent, known = await _record(services, request)
    facts = relevant_first(known, memories)
    return await compose_from(services, request, memories, recent, facts)


async def _record(
    services: AgentServices, request: TurnRequest
) -> tuple[tuple[SpokenLine, ...], list[Fact]]:
    recent = await recent_lines(services, request)
    return recent, await facts_for(services, request)


async def facts_for(services: AgentServices, request: TurnRequest) -> list[Fact]:
    """The user's current facts; with the superseded ones too when the line asks about
    the past."""
    if services.facts is None:
        return []
    if asks_about_past(request.user_message.text):
        return await services.facts.history(request.persona.id, request.user_id)
    return await services.facts.current(request.persona.id, request.user_id)


def relevant_first(facts: Sequence[Fact], memories: Sequence[ScoredMemory]) -> list[Fact]:
    """Facts the search found (their memories carry their ids), in its order, then the
    others (current before superseded, the most recently true first)."""
    rank = {m.record.id: i for i, m in enumerate(memories) if m.record.kind == "fact"}
    return sorted(
        facts,
        key=lambda f: (
            rank.get(f.id, len(rank)),
            f.valid_until is not None,
            -f.valid_from.timestamp(),
        ),
    )


async def recent_lines(services: AgentServices, request: TurnRequest) -> tuple[SpokenLine, ...]:
    """The session's latest lines, enough for the prompt's transcript."""
    return await services.memory.transcripts.recent_lines(
        request.session_id, services.config.transcript_lines + 1
    )


async def compose_from(
    services: AgentServices,
    request: TurnRequest,
    memories: Sequence[ScoredMemory],
    recent: Sequence[SpokenLine],
    facts: Sequence[Fact] = (),
) -> Prompt:
    """The prompt from what ``prepare`` gathered: the persona's card, what it knows about
    the user, its memories, the transcript before the user's line, the drift
    reinforcement and the channel. Fact memories are shown as facts, not twice."""
    found = {m.record.id for m in memories if m.record.kind == "fact"}
    if facts:
        memories = [m for m in memories if m.record.kind != "fact"]
    cfg, persona = services.config, request.persona
    keep = cfg.transcript_lines
    if cfg.model.transcript_lines is not None:
        keep = min(keep, cfg.model.transcript_lines)
    # the lines after the user's message are the others' replies to it (a room's turn):
    # they come after it in the prompt, as what the others said
    at = next((i for i, m in enumerate(recent) if m.id == request.user_message.id), len(recent))
    lines = [
        Line(m.speaker, m.text, own=m.persona_id == persona.id)
        for m in recent[:at]
        if m.status != "failed"
    ]
    replies = [
        Line(m.speaker, m.text, own=False)
        for m in recent[at + 1 :]
        if m.status != "failed" and m.persona_id != persona.id and m.text.strip()
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
            replies=replies,
            facts=[
                KnownFact(f.text, f.valid_from, f.valid_until, f.id in found, f.subject)
                for f in facts
            ],
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


def replied_before(request: TurnRequest, recent: Sequence[SpokenLine]) -> uuid.UUID | None:
    """The id of this persona's reply just before the user's line, if that is what came
    before it."""
    lines = [m for m in recent if m.id != request.user_message.id and m.status != "failed"]
    if lines and lines[-1].persona_id == request.persona.id:
        return lines[-1].id
    return None


def _recollection(m: ScoredMemory) -> Recollection:
    r = m.record
    return Recollection(
        r.text, r.speaker_name, r.created_at, r.kind, m.score.total, role=r.speaker_role
    )


__all__ = [
    "MEMORY_UNAVAILABLE",
    "compose_from",
    "facts_for",
    "prepare",
    "prompt_for",
    "recent_lines",
    "said_before",
]
