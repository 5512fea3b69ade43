"""The ``extract_traits`` node, after the reply was stored and delivered: each new text
of the turn is embedded once. The user's line was embedded for the search in
``prepare``; the reply is embedded here, once, for both its memory and the trait
prototypes. Both memories are stored from those vectors with their speaker's added
(:func:`memory.service.stored_vectors`); then the trait observations, the profiles and
drift are written and ``traits`` reported. What fails here fails on its own: the reply
stands."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from agents.traits import TraitObservation, extract
from agents.turn.state import TurnContext, TurnState, ms_since
from agents.types import AgentServices
from memory.acts import act_of, is_correction
from memory.errors import IndexUnavailable, MemoryNotFound
from memory.service import NewMemory
from personas.channels import channel_of

log = logging.getLogger(__name__)


async def extract_traits(state: TurnState, runtime: Runtime[TurnContext]) -> TurnState:
    """Remember both lines and observe the reply's traits; a failure is logged and
    named in ``late_errors``, never raised."""
    try:
        return await remember_and_observe(runtime.context, state)
    except Exception as exc:  # logged, and reported in the result
        log.warning(
            "after reply %s was delivered, extract_traits failed: %s: %s",
            state["message"].id,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        return {"late_errors": ["extract_traits"]}


async def remember_and_observe(context: TurnContext, state: TurnState) -> TurnState:
    """The work of ``extract_traits``, which raises what fails."""
    t0 = time.perf_counter()
    services, request, message = context.services, state["request"], state["message"]
    persona = request.persona
    base = NewMemory(
        persona_id=str(persona.id),
        user_id=request.user_id,
        session_id=str(request.session_id),
        speaker_name="",
        speaker_role="user",
        text="",
    )
    user_act = act_of(request.user_message.text, request.user_message.role)
    user_line = replace(
        base,
        speaker_name=request.user_message.speaker,
        speaker_role=request.user_message.role,
        text=request.user_message.text,
        created_at=request.user_message.created_at,
        metadata={"message_id": str(request.user_message.id), "act": user_act},
        # the same question asked again is one memory, updated to its latest asking; a
        # statement's memory has its message's id, so consolidation can find it
        id=question_id(base.persona_id, base.user_id, request.user_message.text)
        if user_act == "question"
        else request.user_message.id,
    )
    reply_line = replace(
        base,
        speaker_name=persona.name,
        speaker_role="persona",
        text=message.text,
        created_at=message.created_at,
        # a reply to a question is an answer (ranked as a reply; told apart for inspection)
        metadata={
            "message_id": str(message.id),
            "act": "answer" if user_act == "question" else "reply",
        },
        # the reply's memory has its message's id, so a correction can find it
        id=message.id,
    )
    before = state.get("said_before", ())
    query_vector = state.get("query_vector")
    if query_vector is None:  # the search did not run (the vector store was down)
        vectors = await services.memory.embedder.embed(
            [request.user_message.text, message.text], purpose="line"
        )
        query_vector, reply_vector = vectors[0], vectors[1]
    else:
        reply_vector = await services.memory.embedder.embed_one(
            message.text, urgent=False, purpose="line"
        )
    lost: list[str] = []
    lines = [
        replace(user_line, vector=query_vector, context=(*before, reply_line.spoken)),
        replace(reply_line, vector=reply_vector, context=(*before[-1:], user_line.spoken)),
    ]
    try:
        await services.memory.remember(lines)
    except IndexUnavailable as exc:
        # the transcript holds both lines; only their memories are lost
        lost = [str(request.user_message.id), str(message.id)]
        log.warning("memories of messages %s not stored: %s", ", ".join(lost), exc)
    corrected = state.get("replied_before")
    if corrected is not None and is_correction(request.user_message.text):
        await _mark_contradicted(services, base, corrected)
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
    await context.events.traits(persona, update)
    channel = channel_of(persona, request.channel)
    if channel is not None:  # did the reply meet the overlay's constraints?
        await services.personas.record_channel(message.id, persona.id, channel, message.text)
    return {
        "observations": observations,
        "traits": update,
        "timings": {"extract_ms": ms_since(t0)},
        "memories_lost": lost,
    }


def question_id(persona_id: str, user_id: str, text: str) -> uuid.UUID:
    """The memory id of a user's question: the same words asked again (case and
    punctuation aside) overwrite the one memory instead of piling up copies."""
    words = " ".join(re.findall(r"\w+", text.casefold()))
    return uuid.uuid5(_QUESTIONS, f"{persona_id}\x1f{user_id}\x1f{words}")


_QUESTIONS = uuid.UUID("6f1d2a8e-3c55-4b7e-9a41-5d0c7e2b9f13")


async def _mark_contradicted(services: AgentServices, base: NewMemory, reply_id: uuid.UUID) -> None:
    """The user said the reply before was wrong: it no longer comes back as if true."""
    try:
        await services.memory.index.set_metadata(
            reply_id,
            {"contradicted": True},
            persona_id=base.persona_id,
            user_id=base.user_id,
        )
    except MemoryNotFound:
        pass  # its memory was never stored, or was forgotten


def _observed_summary(observations: list[TraitObservation]) -> dict[str, Any]:
    return {
        o.trait: {
            "value": round(o.value, 3),
            "method": o.method,
            "confidence": round(o.confidence, 2),
        }
        for o in observations
    }


__all__ = ["extract_traits", "question_id", "remember_and_observe"]
