"""The ``respond`` node: the reply streamed from the model through the reply guard,
stored, and reported ``done``. It ends the turn early (``Command`` to the end) when the
model is unavailable, times out or says nothing, and after storing a broken stream's
partial reply, which is not mined for traits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Literal, cast

from langchain_core.messages import BaseMessage, BaseMessageChunk, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.answers import said_back
from agents.decoding import decoding_for
from agents.errors import LLMStreamBroken, LLMUnavailable, ReplyStopped
from agents.guards import (
    Cut,
    GuardedReply,
    ReplyGuard,
    copies_another,
    ends_mid_sentence,
    second_person,
)
from agents.turn.state import TurnContext, TurnState, ms_since
from agents.types import AgentServices, TurnEvents
from memory.record.transcripts import Message

log = logging.getLogger(__name__)
_END: Literal["__end__"] = "__end__"  # LangGraph's END, typed as the literal it is
assert _END == END

PROMPT_TOKENS = "prompt_tokens"
COMPLETION_TOKENS = "completion_tokens"
"""Keys of a stored reply's ``timings``: the tokens of the prompt its model read and of
what it wrote, as the model counted them (its ``usage_metadata``); absent when the model
reports none."""


async def respond(
    state: TurnState, runtime: Runtime[TurnContext]
) -> Command[Literal["extract_traits", "__end__"]]:
    """Stream, store and report the reply; on to ``extract_traits`` only with a complete
    one."""
    context = runtime.context
    events, persona = context.events, state["request"].persona
    outcome = await stream_reply(context.services, state, events)
    if outcome["status"] == "failed":
        await events.failed(persona, outcome["error_code"], outcome["error"])
        return Command(update=outcome, goto=_END)
    timings = {**state.get("timings", {}), **outcome["timings"]}
    message, stored = await store_reply(context, {**state, **outcome, "timings": timings})
    update: TurnState = {
        **outcome,
        "message": message,
        "timings": {**outcome["timings"], **stored},
    }
    if outcome["status"] == "incomplete":
        await events.failed(persona, outcome["error_code"], outcome["error"])
        return Command(update=update, goto=_END)
    return Command(update=update, goto="extract_traits")


async def stream_reply(services: AgentServices, state: TurnState, events: TurnEvents) -> TurnState:
    """Stream the reply through the guard (no other speaker's lines, no loops): the
    guard's text goes out as tokens; a reply it or the token limit cut is marked."""
    t0 = time.perf_counter()
    cfg, request, prompt = services.config, state["request"], state["prompt"]
    persona = request.persona
    model = services.chat_model()
    options: dict[str, Any] = decoding_for(cfg.model, persona.style).options()
    first: float | None = None
    usage: UsageMetadata | None = None
    messages = list(prompt.messages)
    stopped = False
    kept: GuardedReply | None = None
    guard = ReplyGuard(prompt.speakers)
    expected = prompt.expected
    try:
        async with asyncio.timeout(cfg.llm_timeout_s):
            for attempt in range(_ATTEMPTS):
                last = attempt == _ATTEMPTS - 1
                # the last try is not stopped for copying from its start: it is kept whole
                # and marked
                guard = ReplyGuard(
                    prompt.speakers,
                    prompt.facts,
                    prompt.replies,
                    again=not last,
                    answers=expected.named_in if expected is not None else None,
                )
                finish: str | None = None
                usage = None
                shown_any = False
                written = ""
                # an async generator: closing it stops the model (a guard's early end)
                stream = cast(
                    "AsyncGenerator[BaseMessageChunk, None]",
                    model.astream(messages, **options),
                )
                async with aclosing(stream) as chunks:
                    async for chunk in chunks:
                        finish = chunk.response_metadata.get("finish_reason") or finish
                        usage = getattr(chunk, "usage_metadata", None) or usage
                        text = chunk.content if isinstance(chunk.content, str) else ""
                        shown = guard.feed(text)
                        if shown:
                            shown_any = True
                            if first is None:
                                first = time.perf_counter()
                            written += shown
                            try:
                                await events.token(persona, request.reply_id, shown)
                            except ReplyStopped:
                                stopped = True
                                break
                        if guard.stopped:
                            break
                if stopped:  # by the user: kept as far as it was shown
                    reply = GuardedReply(written.strip(), "stopped")
                    break
                reply = guard.finish(finish)
                if reply.claimed and shown_any:
                    # part of the claiming sentence was shown already (it gave no sign
                    # of a claim until late): the claim is said back in the second
                    # person; the stored text replaces what was shown
                    said = _fallback(reply, finish)
                    if said is not None:
                        reply = said
                if not reply.text:
                    log.warning(
                        "reply %s of %s, try %d: nothing to show (cut %s, claimed %s, "
                        "copied %s, finish %s): %r",
                        request.reply_id,
                        persona.slug,
                        attempt + 1,
                        reply.cut,
                        reply.claimed,
                        reply.copied,
                        finish,
                        guard.raw[:80],
                    )
                if reply.unanswered and expected is not None and not shown_any:
                    if last:
                        # no try named the fact asked for: it is said back to the user
                        back = said_back(expected.fact, request.user_name)
                        reply = GuardedReply(back, None, back)
                        break
                    messages = _noted(
                        list(prompt.messages),
                        f"{request.user_name} asks about something {request.user_name} "
                        f"told you: {expected.fact} Answer with it, saying "
                        f'"you" and "your".',
                    )
                    options = _resampled(options, attempt)
                    continue
                if kept is None:
                    kept = _fallback(reply, finish)
                if last and not reply.text and not shown_any and kept is not None:
                    reply = kept  # nothing better came: the first try's best, marked
                if last or shown_any:  # a copy already shown is kept, marked below
                    break
                if reply.claimed and not reply.text:
                    # it began by saying the user's fact as its own: once more, told
                    # whose fact it is
                    messages = _whose(list(prompt.messages), request.user_name)
                elif reply.cut == "speaker" and not reply.text:
                    # it began another's line: once more, told to write only its own
                    messages = _noted(
                        list(prompt.messages),
                        f"Write only what {persona.name} says now, with no name in front.",
                    )
                elif reply.text and not reply.copied:
                    break
                # nothing to show (cut to nothing, empty, or another's reply again):
                # asked once more with changed sampling
                options = _resampled(options, attempt)
            if reply.cut is None and copies_another(reply.text, prompt.replies):
                reply = GuardedReply(reply.text, "repetition", reply.tail, copied=True)
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
    if reply.tail and not stopped:
        if first is None:
            first = time.perf_counter()
        await events.token(persona, request.reply_id, reply.tail)
    timings = {"llm_ms": ms_since(t0)}
    if first is not None:
        timings["first_token_ms"] = (first - t0) * 1000
    if usage is not None:  # the last attempt's: the reply is what it wrote
        timings[PROMPT_TOKENS] = usage["input_tokens"]
        timings[COMPLETION_TOKENS] = usage["output_tokens"]
    return {"reply": reply.text, "status": "complete", "cut": reply.cut, "timings": timings}


_ATTEMPTS = 3
"""A reply is asked for at most this often: once, again when nothing of it could be
shown (the guard cut it to nothing, it was empty, it began with the user's fact as the
persona's own, it copied another persona's reply of the turn, or, on the small model, it
did not name the user's fact that the user asked for: then the last time the fact is
said back instead)."""


def _resampled(options: dict[str, Any], attempt: int) -> dict[str, Any]:
    """The sampling for the next try: warmer, and another seed, so the model does not
    give the same (empty or copied) reply again."""
    out = dict(options)
    out["temperature"] = round(min(1.0, float(options.get("temperature", 0.7)) + 0.15), 2)
    out["seed"] = 7919 * (attempt + 1)
    return out


def _fallback(reply: GuardedReply, finish: str | None = None) -> GuardedReply | None:
    """What a try that could not be shown leaves to fall back on when no later try does
    better: a claim of the user's fact said back to them in the second person ("Your dog
    is called Pixel."), or a reply that copied another persona's, marked."""
    if reply.claimed and reply.claim and ends_mid_sentence(reply.claim):
        # the claim was the unfinished last sentence (the reply ran out in it): dropped,
        # or said back when nothing else is left
        cut: Cut | None = "length" if finish == "length" else None
        said = reply.text or second_person(reply.claim)
        return GuardedReply(said, cut, "" if reply.text else said, claimed=True)
    if reply.claimed and reply.claim:
        said = " ".join(filter(None, [reply.text, second_person(reply.claim)]))
        shown = reply.text  # what may have been shown of it
        tail = said[len(shown) :] if shown and said.startswith(shown) else said
        return GuardedReply(said, None, tail, claimed=True)
    if reply.copied and reply.text:
        return GuardedReply(reply.text, "repetition", reply.text, copied=True)
    return None


def _whose(messages: list[BaseMessage], user: str) -> list[BaseMessage]:
    """The prompt again, reminded before the user's line that what the user told is
    theirs: the reply speaks of it with "you" and "your"."""
    return _noted(
        messages,
        f'Answer {user} about {user}\'s own life with "you" and "your". '
        f"Never say {user}'s things are yours. If you were not told, say you do not know.",
    )


def _noted(messages: list[BaseMessage], note: str) -> list[BaseMessage]:
    """The prompt with ``note`` as a system line just before its last message."""
    return [*messages[:-1], SystemMessage(content=note), messages[-1]]


async def store_reply(context: TurnContext, state: TurnState) -> tuple[Message, dict[str, float]]:
    """Store the reply (complete, or a broken stream's partial one) and report ``done``
    with the turn's timings."""
    t0 = time.perf_counter()
    request = state["request"]
    persona = request.persona
    message, _ = await context.services.memory.transcripts.append_persona_message(
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
    timings = {"persist_ms": ms_since(t0), "turn_ms": ms_since(context.started_at)}
    await context.events.done(persona, message, {**state["timings"], **timings})
    return message, timings


def _failed(code: str, reason: str, t0: float) -> TurnState:
    return {
        "status": "failed",
        "error_code": code,
        "error": reason,
        "timings": {"llm_ms": ms_since(t0)},
    }


def _incomplete(partial: str, reason: str, t0: float, first: float | None) -> TurnState:
    timings = {"llm_ms": ms_since(t0)}
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


__all__ = ["COMPLETION_TOKENS", "PROMPT_TOKENS", "respond", "store_reply", "stream_reply"]
