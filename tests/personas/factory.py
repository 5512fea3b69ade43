"""Small persona definitions for tests."""

from __future__ import annotations

from typing import Any

from personas import PersonaDef


def definition(slug: str = "test-tutor", **overrides: Any) -> PersonaDef:
    data: dict[str, Any] = {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "description": "A patient tutor who explains photosynthesis with questions.",
        "role": "Tutor",
        "system_prompt": "You are a patient tutor.",
        "domains": ["biology", "teaching"],
        "traits": [
            {"name": "openness", "type": "ocean", "value": 0.8},
            {"name": "patience", "type": "behaviour", "value": 0.9, "evolves": True},
            {"name": "curiosity", "type": "behaviour", "value": 0.3},
        ],
        "beliefs": [{"text": "Questions teach better than answers.", "source": "character design"}],
        "modes": [{"mode": "educator"}, {"mode": "mentor", "enabled": False}],
        "style": {"humour_usage": 0.2, "default_mode": "educator", "temperature": 0.6},
    }
    data.update(overrides)
    return PersonaDef.model_validate(data)
