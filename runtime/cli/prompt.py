"""``personae prompt``: the exact prompt a persona's next turn in a session would use,
with its memories and transcript, printed instead of sent to the model."""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from typing import Any

from agents.turn import prompt_for
from agents.types import TurnRequest
from memory.record.transcripts import Message
from runtime.cli.args import CliInputError
from runtime.services import Overrides, Services, open_services
from runtime.settings import Settings

_NO_SCORER = Overrides(trait_scorer=False)  # a prompt extracts no traits


def add_commands(sub: Any) -> None:
    prompt = sub.add_parser("prompt", help="print the exact prompt a turn would use")
    prompt.add_argument("--persona", required=True, help="slug or id")
    prompt.add_argument("--session", required=True, type=uuid.UUID, help="the session id")
    prompt.add_argument("--text", help="the user's message (default: the session's last one)")
    prompt.set_defaults(run=_prompt)


async def _prompt(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, overrides=_NO_SCORER) as services:
        print(await render_prompt(services, args.persona, args.session, args.text))
    return 0


async def render_prompt(
    services: Services, persona_key: str, session_id: uuid.UUID, text: str | None
) -> str:
    """The prompt ``persona_key`` would get next in the session, as text."""
    transcripts = services.memory.transcripts
    session = await transcripts.get_session(session_id)
    persona = await services.personas.get(persona_key)
    recent = await transcripts.recent(session.id, 50)
    last_user = next((m for m in reversed(recent) if m.role == "user"), None)
    if text is None and last_user is None:
        raise CliInputError("the session has no user message yet: pass --text")
    if text is not None or last_user is None:
        now = dt.datetime.now(dt.UTC)
        last_user = _draft(session.id, session.user_id, text or "", now)
    participants = await services.director.participants(session)
    request = TurnRequest(
        session_id=session.id,
        persona=persona,
        user_id=session.user_id,
        user_name=last_user.speaker,
        user_message=last_user,
        others=tuple(p.name for p in participants if p.id != persona.id),
    )
    recall = await services.memory.recall(
        persona_id=str(persona.id),
        user_id=session.user_id,
        text=last_user.text,
        k=services.agents.config.memory_k,
    )
    prompt = await prompt_for(services.agents, request, recall.memories)
    header = (
        f"# prompt for {persona.slug} in session {session.id}: ~{prompt.estimated_tokens} tokens, "
        f"{len(recall.memories)} memories, {prompt.dropped_lines} transcript line(s) and "
        f"{prompt.dropped_memories} memory(ies) trimmed; stop: {list(prompt.stop)}"
    )
    return header + "\n" + prompt.render()


def _draft(session_id: uuid.UUID, user_id: str, text: str, now: dt.datetime) -> Message:
    return Message(
        id=uuid.uuid4(),
        session_id=session_id,
        seq=0,
        role="user",
        persona_id=None,
        user_id=user_id,
        speaker=user_id,
        text=text,
        client_msg_id=None,
        reply_to=None,
        status="complete",
        extracted_traits={},
        timings={},
        created_at=now,
    )
