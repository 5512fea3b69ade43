"""Errors raised by the persona layer."""

from __future__ import annotations


class PersonaError(Exception):
    """Root of every error the persona layer raises."""


class PersonaNotFound(PersonaError):
    def __init__(self, key: str) -> None:
        super().__init__(f"persona {key!r} not found")
        self.key = key


class VersionNotFound(PersonaError):
    def __init__(self, key: str, version: int) -> None:
        super().__init__(f"persona {key!r} has no version {version}")
        self.key = key
        self.version = version


class PersonaExists(PersonaError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"persona {slug!r} already exists")
        self.slug = slug


class PersonaProtected(PersonaError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"persona {slug!r} is protected: only an admin may change it")
        self.slug = slug


class PersonaReadOnly(PersonaError):
    def __init__(self, who: str) -> None:
        super().__init__(f"{who!r} may not change personas: an editor or admin may")
        self.who = who


class InvalidPersonaChange(PersonaError):
    """A change would leave the persona invalid (unknown mode, value out of range...)."""


class DefinitionError(PersonaError):
    """A persona definition file is invalid; names the file, persona and field."""

    def __init__(self, file: str, persona: str | None, field: str | None, reason: str) -> None:
        where = file
        if persona:
            where += f", persona {persona!r}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.persona = persona
        self.field = field
        self.reason = reason
