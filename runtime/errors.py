"""Errors raised by the runtime layer."""

from __future__ import annotations


class RuntimeLayerError(Exception):
    """Root of every error the runtime layer raises."""


class SettingsError(RuntimeLayerError):
    """A setting is missing or has a bad value; the message names it."""


class EmbeddedServiceError(RuntimeLayerError):
    """An embedded PostgreSQL or Redis could not be started or stopped."""


class MigrationError(RuntimeLayerError):
    """A migration file failed to apply; the message names the file."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"migration {name!r} failed: {reason}")
        self.name = name
        self.reason = reason


class ChatError(RuntimeLayerError):
    """A request the chat service refuses; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
