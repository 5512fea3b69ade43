"""What a failed tool call tells the client: one line an assistant can act on, with the
error's code where it has one (``forbidden: ...``, ``persona 'x' not found``). Bad
arguments name the argument; an unexpected failure is logged with an incident id and
reported by that id alone, never with a traceback."""

from __future__ import annotations

import logging
import uuid

from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from agents.errors import AgentError
from memory import MemoryLayerError
from personas import PersonaError
from runtime.errors import ChatError, RuntimeLayerError

log = logging.getLogger(__name__)


def failure_text(exc: Exception, *, where: str) -> str:
    """``exc`` as the text of an error result."""
    if isinstance(exc, ValidationError):
        return "invalid arguments: " + arguments_problem(exc)
    if isinstance(exc, ChatError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, PersonaError | MemoryLayerError | RuntimeLayerError | AgentError):
        return str(exc)  # the layers' errors are written for the user: "persona 'x' not found"
    if isinstance(exc, OperationalError | PoolTimeout):
        log.warning("database unavailable in %s: %s", where, type(exc).__name__)
        return "service_unavailable: the database is unavailable; retry shortly"
    incident = uuid.uuid4().hex[:12]
    log.error(
        "internal error %s in %s: %s: %s", incident, where, type(exc).__name__, exc, exc_info=exc
    )
    return f"internal error (incident {incident})"


def arguments_problem(exc: ValidationError) -> str:
    """The first few problems, each naming its argument: ``k: Input should be ...``."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
