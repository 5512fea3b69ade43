"""Errors raised by the agents layer."""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agents layer raises."""


class LLMUnavailable(AgentError):
    """The model produced nothing: it could not be built, loaded or reached, or the first
    token did not arrive in time. Nothing was streamed, so the turn may be retried."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"llm {provider!r} unavailable: {reason}")
        self.provider = provider
        self.reason = reason


class ReplyStopped(AgentError):
    """Raised by a turn's event sink when the user stopped the reply being written (the
    terminal chat's Ctrl-C): the turn stops the model and stores what was shown, cut
    ``"stopped"``."""


class LLMStreamBroken(AgentError):
    """The stream failed after some tokens were produced; ``partial`` holds them."""

    def __init__(self, provider: str, reason: str, partial: str) -> None:
        super().__init__(f"llm {provider!r} stream broke after {len(partial)} characters: {reason}")
        self.provider = provider
        self.reason = reason
        self.partial = partial
