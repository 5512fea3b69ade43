"""Views of how a persona holds up: its quality (four parts scored 0-100 with the numbers
behind them) and its analytics per day. :mod:`runtime.usecases.quality` computes both;
these views check and describe what it returns."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from runtime.views.base import Number, View
from runtime.views.personas import PersonaRef

QualityPart = Literal["consistency", "linguistic_match", "channel_compliance", "satisfaction"]


class Consistency(View):
    """How close replies stay to the configured traits (drift)."""

    score: Number
    drift_score: Number
    turns: int
    drifting: list[str]
    compared_traits: int


class LinguisticMatch(View):
    """How much replies read like the source writing (or the configured style traits):
    per measure, the target (``source`` or ``configured``), the replies' value and the
    match 0..1."""

    score: Number
    against: str
    replies: int
    words: int
    measures: dict[str, dict[str, Number]]


class ChannelStatsView(View):
    replies: int
    compliant: int
    failed: dict[str, int] = Field(description="failed checks by name")


class ChannelCompliance(View):
    score: Number
    replies: int
    compliant: int
    channels: dict[str, ChannelStatsView]


class Satisfaction(View):
    score: Number
    up: int
    neutral: int
    down: int
    reasons: dict[str, int]


class QualityParts(View):
    """Each part, or null when there is not enough data for it yet."""

    consistency: Consistency | None
    linguistic_match: LinguisticMatch | None
    channel_compliance: ChannelCompliance | None
    satisfaction: Satisfaction | None


class PersonaQuality(View):
    persona: PersonaRef
    overall: Number | None
    parts: QualityParts
    weakest: QualityPart | None
    next: str = Field(description="what to do about the weakest part")

    @classmethod
    def of(cls, computed: dict[str, Any]) -> PersonaQuality:
        return cls.model_validate(computed)


class Percentiles(View):
    p50: Number
    p95: Number


class AnalyticsDay(View):
    day: dt.date
    turns: int
    users: int
    sessions: int
    feedback_up: int
    feedback_down: int
    first_token_ms: Percentiles | None
    turn_ms: Percentiles | None
    drift: Number | None


class AnalyticsTotals(View):
    turns: int
    feedback_up: int
    feedback_down: int


class PersonaAnalytics(View):
    persona: PersonaRef
    from_: dt.date = Field(alias="from")
    to: dt.date
    days: list[AnalyticsDay]
    totals: AnalyticsTotals

    @classmethod
    def of(cls, computed: dict[str, Any]) -> PersonaAnalytics:
        return cls.model_validate(computed)
