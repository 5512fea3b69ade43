from __future__ import annotations

import uuid

import pytest

from personas import (
    Actor,
    InvalidPersonaChange,
    PersonaExists,
    PersonaNotFound,
    PersonaProtected,
    PersonaStore,
    SettingsPatch,
    VersionNotFound,
    to_definition,
)
from tests.personas.factory import definition

ADMIN = Actor("admin", is_admin=True)
USER = Actor("alice")


async def test_create_then_get_by_id_and_slug(store: PersonaStore) -> None:
    created = await store.create(definition(), USER)
    assert created.version == 1
    by_id = await store.get(created.id)
    by_slug = await store.get("test-tutor")
    by_id_text = await store.get(str(created.id))
    assert by_id == by_slug == by_id_text == created
    assert [b.text for b in created.beliefs] == ["Questions teach better than answers."]
    assert created.enabled_modes == ("educator",)
    assert created.style.default_mode == "educator"
    assert to_definition(created).canonical() == definition().canonical()


async def test_unknown_persona_is_not_found(store: PersonaStore) -> None:
    with pytest.raises(PersonaNotFound, match="'nobody'"):
        await store.get("nobody")
    with pytest.raises(PersonaNotFound):
        await store.get(uuid.uuid4())


async def test_duplicate_slug_is_refused(store: PersonaStore) -> None:
    await store.create(definition(), USER)
    with pytest.raises(PersonaExists):
        await store.create(definition(), USER)


async def test_core_traits_are_inherited_and_overridable(store: PersonaStore) -> None:
    persona = await store.create(definition(), USER)
    honesty = persona.trait("honesty")
    assert honesty is not None and honesty.inherited and honesty.type == "core"
    # the persona's own 'curiosity' (0.3) overrides the core one (0.6)
    curiosity = persona.trait("curiosity")
    assert curiosity is not None and not curiosity.inherited and curiosity.value == 0.3
    assert [t.name for t in persona.traits].count("curiosity") == 1
    assert all(not t.inherited for t in persona.own_traits)
    core = await store.repository.core_traits()
    assert {t.name for t in core} <= {t.name for t in persona.traits}


async def test_update_bumps_version_and_snapshots(store: PersonaStore) -> None:
    created = await store.create(definition(), USER)
    changed = definition(description="Now explains cell division as well.")
    updated = await store.update(created.id, changed, USER, reason="broader")
    assert updated.version == 2
    assert updated.description == "Now explains cell division as well."
    versions = await store.versions(created.id)
    assert [(v.version, v.reason) for v in versions] == [(1, "created"), (2, "broader")]
    assert versions[0].snapshot["description"] == created.description
    assert versions[1].snapshot == changed.canonical()
    again = await store.update(created.id, changed, USER)
    assert again.version == 2, "an identical definition must not create a version"


async def test_restore_makes_old_version_current_as_new_version(store: PersonaStore) -> None:
    created = await store.create(definition(), USER)
    await store.update(created.id, definition(name="Renamed Tutor"), USER)
    restored = await store.restore(created.id, 1, USER)
    assert restored.version == 3
    assert restored.name == created.name
    assert (await store.get(created.id)).name == created.name
    versions = await store.versions(created.id)
    assert versions[-1].reason == "restored version 1"
    with pytest.raises(VersionNotFound):
        await store.restore(created.id, 42, USER)


async def test_slug_cannot_change(store: PersonaStore) -> None:
    created = await store.create(definition(), USER)
    with pytest.raises(InvalidPersonaChange, match="slug"):
        await store.update(created.id, definition(slug="other-slug"), USER)


async def test_protected_persona_refuses_non_admin(store: PersonaStore) -> None:
    with pytest.raises(PersonaProtected):
        await store.create(definition(protected=True), USER)
    persona = await store.create(definition(protected=True), ADMIN)
    patch = SettingsPatch.model_validate({"traits": [{"name": "patience", "intensity": 0.1}]})
    for attempt in (
        store.update(persona.id, definition(protected=True, name="X"), USER),
        store.patch_settings(persona.id, patch, USER),
        store.restore(persona.id, 1, USER),
        store.delete(persona.id, USER),
    ):
        with pytest.raises(PersonaProtected):
            await attempt
    assert (await store.get(persona.id)).version == 1
    # an unprotected persona cannot be made protected by a non-admin either
    other = await store.create(definition("other-tutor"), USER)
    with pytest.raises(PersonaProtected):
        await store.update(other.id, definition("other-tutor", protected=True), USER)
    patched = await store.patch_settings(persona.id, patch, ADMIN)
    assert patched.version == 2 and patched.trait("patience").value == 0.1  # type: ignore[union-attr]


async def test_patch_settings_traits_modes_style(store: PersonaStore) -> None:
    persona = await store.create(definition(), USER)
    patch = SettingsPatch.model_validate(
        {
            "traits": [
                {"name": "patience", "action": "decrease", "intensity": 0.5},
                {"name": "openness", "action": "increase", "intensity": 0.5},
                {"name": "humour", "intensity": 0.7, "type": "style"},
            ],
            "modes": {"mentor": True, "critic": True},
            "style": {"default_mode": "mentor", "temperature": 0.9},
        }
    )
    updated = await store.patch_settings(persona.id, patch, USER)
    assert updated.version == 2
    assert updated.trait("patience").value == pytest.approx(0.4)  # type: ignore[union-attr]
    assert updated.trait("openness").value == 1.0  # type: ignore[union-attr]  # clamped
    humour = updated.trait("humour")
    assert humour is not None and humour.type == "style" and humour.value == 0.7
    assert updated.enabled_modes == ("educator", "mentor", "critic")
    assert updated.style.default_mode == "mentor" and updated.style.temperature == 0.9
    assert updated.style.humour_usage == 0.2, "unpatched style fields stay"


async def test_invalid_patch_changes_nothing(store: PersonaStore) -> None:
    persona = await store.create(definition(), USER)
    bad_mode = SettingsPatch.model_validate({"style": {"default_mode": "debater"}})
    with pytest.raises(InvalidPersonaChange, match="default_mode"):
        await store.patch_settings(persona.id, bad_mode, USER)
    missing = SettingsPatch.model_validate(
        {"traits": [{"name": "wit", "action": "increase", "intensity": 0.1}]}
    )
    with pytest.raises(InvalidPersonaChange, match="wit"):
        await store.patch_settings(persona.id, missing, USER)
    assert (await store.get(persona.id)).version == 1


async def test_soft_delete_hides_but_keeps_history(store: PersonaStore) -> None:
    persona = await store.create(definition(), USER)
    await store.delete(persona.id, USER)
    with pytest.raises(PersonaNotFound):
        await store.get(persona.id)
    with pytest.raises(PersonaNotFound):
        await store.get("test-tutor")
    assert (await store.list()).total == 0
    async with store.repository._pool.connection() as conn:
        cur = await conn.execute(
            "SELECT deleted_at IS NOT NULL, (SELECT count(*) FROM persona_versions v"
            " WHERE v.persona_id = p.id) FROM personas p WHERE id = %s",
            (persona.id,),
        )
        assert await cur.fetchone() == (True, 1)
    # the slug is free again
    again = await store.create(definition(), USER)
    assert again.id != persona.id


async def test_list_pages_and_filters(store: PersonaStore) -> None:
    for i in range(5):
        await store.create(definition(f"tutor-{i}", domains=["math"] if i % 2 else ["art"]), USER)
    await store.create(
        definition("old-sage", persona_type="historical", is_real=True, active=False), USER
    )
    page = await store.list(offset=0, limit=2)
    assert page.total == 6 and len(page.items) == 2
    rest = await store.list(offset=2, limit=10)
    assert len(rest.items) == 4
    assert not {p.slug for p in page.items} & {p.slug for p in rest.items}
    assert {p.slug for p in (await store.list(domain="MATH")).items} == {"tutor-1", "tutor-3"}
    assert [p.slug for p in (await store.list(persona_type="historical")).items] == ["old-sage"]
    assert [p.slug for p in (await store.list(active=False)).items] == ["old-sage"]


async def test_full_text_search(store: PersonaStore) -> None:
    await store.create(definition(), USER)
    await store.create(
        definition(
            "albert-einstein",
            name="Albert Einstein",
            description="Theoretical physicist who developed relativity.",
            domains=["physics", "philosophy"],
            persona_type="historical",
            is_real=True,
            beliefs=[{"text": "Imagination is more important than knowledge.", "source": "1929"}],
        ),
        USER,
    )
    assert [h.persona.slug for h in await store.search("physics")] == ["albert-einstein"]
    assert [h.persona.slug for h in await store.search("relativity")] == ["albert-einstein"]
    # beliefs are searched too, with stemming
    assert [h.persona.slug for h in await store.search("imagine")] == ["albert-einstein"]
    assert [h.persona.slug for h in await store.search("photosynthesis")] == ["test-tutor"]
    assert await store.search("quantum chromodynamics") == []
    assert await store.search("   ") == []
    # hostile query text is just text
    assert await store.search("'; DROP TABLE personas; --") == []
    assert (await store.list()).total == 2
