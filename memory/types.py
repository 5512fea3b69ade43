"""Values and seams of the memory layer: records, queries, filters, results, Protocols."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Protocol, Self, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

from memory.errors import InvalidMemory

SpeakerRole: TypeAlias = Literal["user", "persona", "system"]
MemoryKind: TypeAlias = Literal["turn", "fact", "summary", "reflection"]
JSONValue: TypeAlias = (
    str | int | float | bool | None | Sequence["JSONValue"] | Mapping[str, "JSONValue"]
)
Vector: TypeAlias = npt.NDArray[np.float32]
"""One dense embedding, shape ``(dim,)``."""
Matrix: TypeAlias = npt.NDArray[np.float32]
"""Several dense embeddings, shape ``(n, dim)``."""

SPEAKER_ROLES: tuple[SpeakerRole, ...] = get_args(SpeakerRole)
MAX_SPEAKER_NAME = 60
_NOT_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def check_name(value: str, what: str = "name", *, max_chars: int = MAX_SPEAKER_NAME) -> str:
    """A speaker's name as every interface takes it (a socket's ``auth.name``, a ``/v1``
    message's ``name``, an imported memory's ``speaker``, the chat service's
    ``user_name``): stripped, at most ``max_chars`` characters, one line with no control
    characters, line or paragraph separators or lone surrogates, since it is stored and
    written into prompts as a line's label. Raises ``ValueError`` naming ``what``."""
    name = value.strip()
    if not name:
        raise ValueError(f"{what}: must not be blank")
    if len(name) > max_chars:
        raise ValueError(f"{what}: longer than {max_chars} characters")
    bad = _NOT_IN_NAMES.search(name)
    if bad is not None:
        raise ValueError(f"{what}: must be one line of text (U+{ord(bad.group()):04X} not allowed)")
    return name


MEMORY_KINDS: tuple[MemoryKind, ...] = get_args(MemoryKind)


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime, what: str) -> datetime:
    """Return ``value`` in UTC, rejecting naive datetimes (their zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidMemory(what, "datetime must be timezone-aware")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One remembered item: a chat turn, an extracted fact, a summary or a reflection.

    Build new ones with :meth:`new`; the constructor is for rebuilding stored records.
    ``metadata`` must be JSON-able; it is stored as given and never interpreted.
    """

    id: uuid.UUID
    persona_id: str
    user_id: str
    session_id: str | None
    speaker_name: str
    speaker_role: SpeakerRole
    text: str
    kind: MemoryKind = "turn"
    importance: float = 0.5
    created_at: datetime = field(default_factory=utc_now)
    pinned: bool = False
    external_id: str | None = None
    metadata: Mapping[str, JSONValue] = field(default_factory=dict, hash=False)
    context: tuple[str, ...] = ()
    """The lines said around this one in its conversation (``"Speaker: text"``), which
    its keywords are searched with: an answer often shares its words with the question
    it answers, not with the question asked about it later."""

    def __post_init__(self) -> None:
        if not self.persona_id:
            raise InvalidMemory("persona_id", "must not be empty")
        if not self.user_id:
            raise InvalidMemory("user_id", "must not be empty")
        if self.speaker_role not in SPEAKER_ROLES:
            raise InvalidMemory(
                "speaker_role", f"{self.speaker_role!r} is not one of {SPEAKER_ROLES}"
            )
        if self.kind not in MEMORY_KINDS:
            raise InvalidMemory("kind", f"{self.kind!r} is not one of {MEMORY_KINDS}")
        check_importance(self.importance)
        object.__setattr__(self, "created_at", as_utc(self.created_at, "created_at"))

    @classmethod
    def new(
        cls,
        *,
        persona_id: str,
        user_id: str,
        text: str,
        speaker_name: str,
        speaker_role: SpeakerRole,
        kind: MemoryKind = "turn",
        session_id: str | None = None,
        importance: float = 0.5,
        created_at: datetime | None = None,
        pinned: bool = False,
        external_id: str | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        context: Sequence[str] = (),
    ) -> MemoryRecord:
        """A fresh record with a random id, stamped now unless ``created_at`` is given."""
        return cls(
            id=uuid.uuid4(),
            persona_id=persona_id,
            user_id=user_id,
            session_id=session_id,
            speaker_name=speaker_name,
            speaker_role=speaker_role,
            text=text,
            kind=kind,
            importance=importance,
            created_at=created_at if created_at is not None else utc_now(),
            pinned=pinned,
            external_id=external_id,
            metadata=dict(metadata or {}),
            context=tuple(context),
        )

    @property
    def spoken(self) -> str:
        """The memory as a line of its conversation, ``"Speaker: text"``: what its stored
        vector stands for (questions about the past name who said it: "what did Caroline
        research?"; see :func:`memory.service.stored_vectors`)."""
        return spoken_line(self.speaker_name, self.text)

    @property
    def keyword_document(self) -> str:
        """What the keyword channel indexes: the line and the lines around it. Nothing for
        a user's question (not evidence: searches leave it out) nor for the answer to it
        (found by meaning): their words, repeated with every asking, would lower those
        words' weight (IDF) for every search and crowd the keyword candidates."""
        if self.metadata and self.metadata.get("act") in NOT_INDEXED_ACTS:
            return ""
        return "\n".join((self.spoken, *self.context))


NOT_INDEXED_ACTS = ("question", "answer")
"""Acts (``metadata["act"]``) whose lines get no keyword vector: a question, and the
persona's answer to it, which takes up its words (found by meaning only)."""
UNSEARCHED_ACTS = ("question",)
"""Acts whose lines searches leave out (a listing still shows them)."""


def spoken_line(speaker: str, text: str) -> str:
    return f"{speaker}: {text}" if speaker else text


def check_importance(value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidMemory("importance", f"{value!r} is not a number in 0..1")
    return float(value)


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """Which memories of one persona to list, count or forget. ``None`` means any."""

    persona_id: str
    user_id: str | None = None
    session_id: str | None = None
    kinds: frozenset[MemoryKind] | None = None
    since: datetime | None = None
    until: datetime | None = None
    pinned: bool | None = None

    def __post_init__(self) -> None:
        if not self.persona_id:
            raise InvalidMemory("persona_id", "must not be empty")
        _check_kinds(self.kinds)
        _check_range(self.since, self.until)


@dataclass(frozen=True, slots=True)
class MemoryQuery:
    """A retrieval request: the text (for keywords) and its embedding (for meaning).

    ``user_id=None`` searches every user of the persona (inspection, persona-wide
    reflection); a chat turn always passes its user so nobody sees another's memories.
    Filters (session, kinds, time range) also bound pinned memories. ``now`` fixes the
    clock for recency (tests, replays); it defaults to the current time.
    """

    persona_id: str
    user_id: str | None
    text: str
    vector: Vector = field(compare=False, repr=False)
    k: int = 8
    session_id: str | None = None
    kinds: frozenset[MemoryKind] | None = None
    since: datetime | None = None
    until: datetime | None = None
    now: datetime | None = None

    def __post_init__(self) -> None:
        if not self.persona_id:
            raise InvalidMemory("persona_id", "must not be empty")
        if self.k < 1:
            raise InvalidMemory("k", f"{self.k} must be at least 1")
        vector = np.asarray(self.vector, dtype=np.float32)
        if vector.ndim != 1 or not np.all(np.isfinite(vector)):
            raise InvalidMemory("query vector", "must be one finite 1-d vector")
        object.__setattr__(self, "vector", vector)
        _check_kinds(self.kinds)
        _check_range(self.since, self.until)
        if self.now is not None:
            object.__setattr__(self, "now", as_utc(self.now, "now"))

    def as_filter(self) -> MemoryFilter:
        return MemoryFilter(
            persona_id=self.persona_id,
            user_id=self.user_id,
            session_id=self.session_id,
            kinds=self.kinds,
            since=self.since,
            until=self.until,
        )


def _check_kinds(kinds: frozenset[MemoryKind] | None) -> None:
    if kinds is None:
        return
    if not kinds:
        raise InvalidMemory("kinds", "must not be empty; pass None for any kind")
    unknown = set(kinds) - set(MEMORY_KINDS)
    if unknown:
        raise InvalidMemory("kinds", f"unknown kinds {sorted(unknown)}")


def _check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None:
        as_utc(since, "since")
    if until is not None:
        as_utc(until, "until")
    if since is not None and until is not None and since > until:
        raise InvalidMemory("since", "is after until")


@dataclass(frozen=True, slots=True)
class ScoreBreakdown:
    """How a retrieved memory's total came about (see :mod:`memory.vector.scoring`).

    ``relevance`` is the cosine of query and memory (0..1), ``keyword`` the BM25 score
    (0 when no term is shared); ``relevance_z`` and ``keyword_z`` are those two as
    standard scores among the search's candidates, which is what the total weighs;
    ``speaker`` is 1 when the query names the memory's speaker; ``recency`` and
    ``importance`` are 0..1."""

    total: float
    relevance: float
    keyword: float
    recency: float
    importance: float
    pinned: bool
    relevance_z: float = 0.0
    keyword_z: float = 0.0
    speaker: float = 0.0


@dataclass(frozen=True, slots=True)
class ScoredMemory:
    record: MemoryRecord
    score: ScoreBreakdown


@dataclass(frozen=True, slots=True)
class MemoryPage:
    """One page of a newest-first listing; pass ``next_cursor`` back for the next page."""

    records: tuple[MemoryRecord, ...]
    next_cursor: str | None


Purpose: TypeAlias = Literal["query", "line", "speaker", "trait", "memory", "other"]
"""Why texts are embedded, for the embedder's counts: a search's ``query`` (a turn's is
the user's line), a new ``line`` to remember (a turn's reply, an import), a
``speaker``'s vector (once per name and process), the trait prototypes (``trait``, at
start-up), a ``memory`` background work derives (a fact, a session's summary), and
anything else."""
TURN_PURPOSES: frozenset[Purpose] = frozenset({"query", "line"})
"""The purposes a turn's own texts are embedded for; the rest is background."""


class Embedder(Protocol):
    """Turns texts into normalised float32 vectors. Open it with ``async with``."""

    @property
    def dim(self) -> int: ...

    async def embed(
        self, texts: Sequence[str], *, urgent: bool = False, purpose: Purpose = "other"
    ) -> Matrix:
        """``urgent``: someone waits on these (a search): not queued behind the others.
        ``purpose``: what the texts are counted as (:data:`Purpose`)."""
        ...

    async def embed_one(
        self, text: str, *, urgent: bool = True, purpose: Purpose = "query"
    ) -> Vector: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ImportanceRater(Protocol):
    """Rates how worth remembering a text is, 0 (chit-chat) .. 1 (core fact)."""

    async def rate(
        self, text: str, *, kind: MemoryKind = "turn", speaker_role: SpeakerRole = "user"
    ) -> float: ...
