"""A new session with a persona imported from a character card opens with one of the
card's greetings, stored as the persona's first message."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from memory.record.transcripts import Session
from personas import Persona
from personas.cards import fill_names
from runtime.services import Services

log = logging.getLogger(__name__)


async def greet(
    services: Services, session: Session, personas: Sequence[Persona], user: str
) -> int:
    """Store a greeting of each card persona of a new session; returns how many."""
    cards = services.agents.cards
    if cards is None:
        return 0
    stored = 0
    for persona in personas:
        card = await cards.get(persona.id)
        if card is None or not card.greetings:
            continue
        text = fill_names(random.choice(card.greetings), persona.name, user)
        await services.memory.transcripts.append_persona_message(
            session.id, persona_id=persona.id, speaker=persona.name, text=text, reply_to=None
        )
        stored += 1
    if stored:
        log.info("session %s opens with %d greeting(s)", session.id, stored)
    return stored
