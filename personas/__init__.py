"""Personas: the model, the PostgreSQL repository, the cache and the definitions library."""

from personas.cache import PersonaCache
from personas.definitions import (
    PersonaDef,
    SettingsPatch,
    StylePatch,
    TraitPatch,
    to_definition,
)
from personas.errors import (
    DefinitionError,
    InvalidPersonaChange,
    PersonaError,
    PersonaExists,
    PersonaNotFound,
    PersonaProtected,
    VersionNotFound,
)
from personas.repository import PersonaRepository
from personas.store import PersonaStore
from personas.types import (
    Actor,
    Belief,
    ImportResult,
    Mode,
    Persona,
    PersonaPage,
    PersonaVersion,
    SearchHit,
    StyleConfig,
    Trait,
)

__all__ = [
    "Actor",
    "Belief",
    "DefinitionError",
    "ImportResult",
    "InvalidPersonaChange",
    "Mode",
    "Persona",
    "PersonaCache",
    "PersonaDef",
    "PersonaError",
    "PersonaExists",
    "PersonaNotFound",
    "PersonaPage",
    "PersonaProtected",
    "PersonaRepository",
    "PersonaStore",
    "PersonaVersion",
    "SearchHit",
    "SettingsPatch",
    "StyleConfig",
    "StylePatch",
    "Trait",
    "TraitPatch",
    "VersionNotFound",
    "to_definition",
]
