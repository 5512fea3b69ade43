"""How internal values look on the wire, and how errors become ``{code, message}``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from agents.errors import LLMStreamBroken, LLMUnavailable
from agents.traits import DriftReport
from memory import MemoryRecord, ScoredMemory
from memory.errors import IndexUnavailable, InvalidMemory, MemoryNotFound, SessionNotFound
from memory.record.transcripts import Message, Session
from personas import (
    DefinitionError,
    InvalidPersonaChange,
    Persona,
    PersonaError,
    PersonaExists,
    PersonaNotFound,
    PersonaProtected,
    VersionNotFound,
)
from runtime.errors import ChatError
from runtime.infra.auth import AuthError
from runtime.infra.ratelimit import RateLimited

log = logging.getLogger(__name__)


class ClientError(Exception):
    """An error meant for the client, with its code."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def error_payload(exc: BaseException, *, where: str) -> dict[str, Any]:
    """``{code, message}`` for any exception; unexpected ones are logged with an id and
    reported as ``internal`` without details."""
    if isinstance(exc, ClientError):
        return exc.payload()
    if isinstance(exc, ChatError):
        return {"code": exc.code, "message": str(exc)}
    if isinstance(exc, ValidationError):
        return {"code": "invalid_payload", "message": validation_message(exc)}
    if isinstance(exc, RateLimited):
        return {"code": "rate_limited", "message": str(exc), "retry_after": exc.retry_after_s}
    if isinstance(exc, AuthError):
        return {"code": "unauthorized", "message": str(exc)}
    if isinstance(exc, psycopg.DataError):
        return {"code": "invalid_payload", "message": "a value cannot be stored (out of range)"}
    if isinstance(exc, psycopg.OperationalError | PoolTimeout):
        log.warning("database unavailable in %s: %s", where, type(exc).__name__)
        return {
            "code": "service_unavailable",
            "message": "the database is unavailable; retry shortly",
        }
    mapped = _map(exc)
    if mapped is not None:
        return {"code": mapped, "message": str(exc)}
    incident = uuid.uuid4().hex[:12]
    log.error(
        "internal error %s in %s: %s: %s", incident, where, type(exc).__name__, exc, exc_info=exc
    )
    return {"code": "internal", "message": f"internal error (incident {incident})"}


def _map(exc: BaseException) -> str | None:
    table: list[tuple[type[BaseException], str]] = [
        (PersonaNotFound, "persona_not_found"),
        (VersionNotFound, "version_not_found"),
        (PersonaProtected, "forbidden"),
        (PersonaExists, "conflict"),
        (InvalidPersonaChange, "invalid_payload"),
        (DefinitionError, "invalid_payload"),
        (PersonaError, "invalid_payload"),
        (SessionNotFound, "session_not_found"),
        (MemoryNotFound, "memory_not_found"),
        (InvalidMemory, "invalid_payload"),
        (IndexUnavailable, "service_unavailable"),
        (LLMUnavailable, "llm_unavailable"),
        (LLMStreamBroken, "llm_stream_broken"),
    ]
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    return None


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def persona_ref(p: Persona) -> dict[str, Any]:
    return {"id": str(p.id), "slug": p.slug, "name": p.name}


def persona_view(p: Persona) -> dict[str, Any]:
    return {
        **persona_ref(p),
        "description": p.description,
        "role": p.role,
        "domains": list(p.domains),
        "persona_type": p.persona_type,
        "is_real": p.is_real,
        "birth_date": p.birth_date.isoformat() if p.birth_date else None,
        "avatar_url": p.avatar_url,
        "version": p.version,
        "active": p.active,
        "protected": p.protected,
        "traits": [trait_view(t) for t in p.traits],
        "beliefs": [{"text": b.text, "source": b.source} for b in p.beliefs],
        "modes": [{"mode": m.mode, "enabled": m.enabled} for m in p.modes],
        "style": {
            "humour_usage": p.style.humour_usage,
            "emotional_style": p.style.emotional_style,
            "language_style": p.style.language_style,
            "voice_enabled": p.style.voice_enabled,
            "default_mode": p.style.default_mode,
            "temperature": p.style.temperature,
            "max_tokens": p.style.max_tokens,
        },
        "updated_at": p.updated_at.isoformat(),
    }


def trait_view(t: Any) -> dict[str, Any]:
    return {
        "name": t.name,
        "type": t.type,
        "value": t.value,
        "inherited": t.inherited,
        "evolves": t.evolves,
        "locked": t.locked,
        "description": t.description,
    }


def session_view(s: Session, personas: list[Persona]) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "policy": s.policy,
        "title": s.title,
        "personas": [persona_ref(p) for p in personas],
        "created_at": s.created_at.isoformat(),
    }


def message_view(m: Message) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "session_id": str(m.session_id),
        "seq": m.seq,
        "role": m.role,
        "persona_id": str(m.persona_id) if m.persona_id else None,
        "speaker": m.speaker,
        "text": m.text,
        "client_msg_id": m.client_msg_id,
        "reply_to": str(m.reply_to) if m.reply_to else None,
        "status": m.status,
        "cut": m.cut,
        "traits": dict(m.extracted_traits),
        "timings": dict(m.timings),
        "created_at": m.created_at.isoformat(),
    }


def memory_view(r: MemoryRecord) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "persona_id": r.persona_id,
        "user_id": r.user_id,
        "session_id": r.session_id,
        "speaker": {"name": r.speaker_name, "role": r.speaker_role},
        "text": r.text,
        "kind": r.kind,
        "importance": r.importance,
        "pinned": r.pinned,
        "created_at": r.created_at.isoformat(),
        "external_id": r.external_id,
        "metadata": dict(r.metadata),
    }


def scored_view(m: ScoredMemory) -> dict[str, Any]:
    s = m.score
    return {
        **memory_view(m.record),
        "score": {
            "total": round(s.total, 4),
            "relevance": round(s.relevance, 4),
            "keyword": round(s.keyword, 4),
            "relevance_z": round(s.relevance_z, 4),
            "keyword_z": round(s.keyword_z, 4),
            "speaker": s.speaker,
            "recency": round(s.recency, 4),
            "importance": round(s.importance, 4),
            "pinned": s.pinned,
        },
    }


def drift_view(d: DriftReport) -> dict[str, Any]:
    return {
        "score": round(d.score, 4),
        "drifting": list(d.drifting),
        "traits": {
            name: {
                "configured": round(g.configured, 3),
                "observed": round(g.observed, 3),
                "gap": round(g.gap, 3),
                "count": g.count,
            }
            for name, g in d.per_trait.items()
        },
    }


def timings_view(timings: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in timings.items()}
