"""What a turn asks of a model, fitted to the model: how long a prompt it can use, how
long its replies run and how it samples.

A small local model (SmolLM2-135M, the embedded default) loops and rambles when asked for
640 tokens at a persona's temperature: it gets a short persona card, a reply length from
the persona's verbosity (64-128 tokens), a cooler temperature and repetition penalties.
A capable model gets the full card and the persona's own settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from personas import StyleConfig

__all__ = ["CAPABLE", "LOCAL_GGUF", "SMALL_LOCAL", "Decoding", "ModelProfile", "decoding_for"]

Card = Literal["short", "full"]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How the runtime fits a turn to a model.

    ``card``: the persona card the prompt carries; ``prompt_tokens``: the prompt budget
    (None: the configured ``PERSONAE_PROMPT_BUDGET_TOKENS``); ``penalties``: the model
    takes llama.cpp's repetition penalties; ``reply_tokens``: the reply length range a
    persona's verbosity maps into (None: the persona's ``max_tokens``); ``memories`` and
    ``transcript_lines``: at most that many in the prompt (None: as configured);
    ``own_lines``: the transcript keeps the persona's own replies (a small model copies
    its last reply word for word, so it sees only what the others said)."""

    name: str
    card: Card = "full"
    prompt_tokens: int | None = None
    penalties: bool = False
    reply_tokens: tuple[int, int] | None = None
    temperature_cap: float | None = None
    memories: int | None = None
    transcript_lines: int | None = None
    own_lines: bool = True


CAPABLE = ModelProfile("capable")
SMALL_LOCAL = ModelProfile(
    "small-local",
    card="short",
    prompt_tokens=640,
    penalties=True,
    reply_tokens=(64, 128),
    temperature_cap=0.5,
    memories=2,  # measured: a third memory distracts the 135M model from the right one
    transcript_lines=2,
    own_lines=False,
)
LOCAL_GGUF = ModelProfile("local", penalties=True)


@dataclass(frozen=True, slots=True)
class Decoding:
    """Sampling options for one reply; ``options()`` is what the model is called with."""

    temperature: float
    max_tokens: int
    top_p: float | None = None
    repeat_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None

    def options(self) -> dict[str, float | int]:
        values: dict[str, float | int | None] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
        return {k: v for k, v in values.items() if v is not None}


# a persona's max_tokens (its verbosity; the shipped library uses 384-768)
_TERSE, _VERBOSE = 256, 768


def reply_tokens(profile: ModelProfile, style: StyleConfig) -> int:
    """The reply's token limit: the persona's own, or its verbosity mapped into the
    profile's range (terse personas at the low end, verbose ones at the high end)."""
    if profile.reply_tokens is None:
        return style.max_tokens
    low, high = profile.reply_tokens
    share = (min(max(style.max_tokens, _TERSE), _VERBOSE) - _TERSE) / (_VERBOSE - _TERSE)
    return int(round((low + share * (high - low)) / 8) * 8)


def decoding_for(profile: ModelProfile, style: StyleConfig) -> Decoding:
    temperature = style.temperature
    if profile.temperature_cap is not None:
        # keep the persona's relative warmth, within what the model stays coherent at
        temperature = round(0.15 + (profile.temperature_cap - 0.15) * min(temperature, 1.0), 2)
    if not profile.penalties:
        return Decoding(temperature=temperature, max_tokens=reply_tokens(profile, style))
    return Decoding(
        temperature=temperature,
        max_tokens=reply_tokens(profile, style),
        top_p=0.9,
        repeat_penalty=1.1,
        frequency_penalty=0.2,
        presence_penalty=0.0,
    )
