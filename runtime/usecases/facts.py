"""What a persona knows about a user, as the user sees and corrects it: the facts with
their history and sources (list), a correction (a new fact that supersedes the one
corrected) and a deletion. Every interface (REST, Socket.IO, the CLI) calls this; the
caller sees only their own facts unless an admin names another user."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from memory.record.facts import Fact
from runtime.errors import ChatError
from runtime.infra.auth import Principal, speaker_name
from runtime.services import Services

MAX_FACT_CHARS = 500


@dataclass(frozen=True, slots=True)
class FactScope:
    persona_id: uuid.UUID
    user_id: str


class Facts:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def _scope(self, principal: Principal, persona: str, user: str | None) -> FactScope:
        p = await self.services.personas.get(persona)
        if user is not None and user != principal.user_id and not principal.is_admin:
            raise ChatError("forbidden", "only an admin may see another user's facts")
        return FactScope(p.id, user or principal.user_id)

    async def list(
        self, principal: Principal, persona: str, *, user: str | None = None
    ) -> list[Fact]:
        """Every fact, current and superseded, by subject, the most recent first."""
        scope = await self._scope(principal, persona, user)
        return await self.services.facts.history(scope.persona_id, scope.user_id)

    async def _fact(self, scope: FactScope, fact_id: uuid.UUID) -> Fact:
        fact = await self.services.facts.get(fact_id, scope.persona_id, scope.user_id)
        if fact is None:
            raise ChatError("fact_not_found", f"no fact {fact_id} of this user and persona")
        return fact

    async def correct(
        self,
        principal: Principal,
        persona: str,
        fact_id: uuid.UUID,
        text: str,
        *,
        user: str | None = None,
    ) -> Fact:
        """Replace a current fact by what the user says is true: a new fact on the same
        subject, which supersedes it (it stays as history)."""
        said = " ".join(text.split())
        if not said:
            raise ChatError("invalid_payload", "text: must not be blank")
        if len(said) > MAX_FACT_CHARS:
            raise ChatError("text_too_long", f"text: longer than {MAX_FACT_CHARS} characters")
        scope = await self._scope(principal, persona, user)
        old = await self._fact(scope, fact_id)
        if not old.current:
            raise ChatError("fact_superseded", "only a current fact can be corrected")
        recorded = await self.services.facts.record(
            persona_id=scope.persona_id,
            user_id=scope.user_id,
            subject=old.subject,
            text=said,
            valid_from=dt.datetime.now(dt.UTC),
            source_ids=old.source_ids,
            origin="corrected",
        )
        if recorded.fact is None:  # the same text: nothing changes
            return old
        consolidator = self.services.consolidator
        await consolidator.index_fact(recorded.fact, speaker_name(scope.user_id), session_id=None)
        await consolidator.unindex(recorded.superseded)
        return recorded.fact

    async def delete(
        self, principal: Principal, persona: str, fact_id: uuid.UUID, *, user: str | None = None
    ) -> None:
        """Forget a fact (and its history entry): it is no longer shown or recalled."""
        scope = await self._scope(principal, persona, user)
        await self._fact(scope, fact_id)
        await self.services.facts.delete(fact_id, scope.persona_id, scope.user_id)
        await self.services.memory.index.delete([fact_id], persona_id=str(scope.persona_id))


__all__ = ["MAX_FACT_CHARS", "Facts"]
