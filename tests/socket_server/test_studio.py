"""The persona studio over real HTTP: roles (user, editor, admin) and protected
personas, partial edits, version diffs and restore, generation from writing samples,
channel overlays, templates, and the OpenAPI document of it all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from personas import Actor
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.test_rest import Api, error_code

ADMIN = Actor("admin", is_admin=True)

ESSAY = (
    "I have always believed that small observations add up to great truths. When I walked "
    "the shore this morning, I noticed the barnacles again. Why do they cling so stubbornly "
    "to the rocks? Perhaps it is the tide, or perhaps it is something older. We should never "
    "dismiss a small thing because it seems ordinary. The garden teaches patience, and "
    "patience teaches everything else. Every species carries the marks of its history. The "
    "finches of the islands differ in their beaks, and those differences matter. I think the "
    "key is time: immense stretches of it, acting on tiny variations."
)
LETTER = (
    "You might ask what an earthworm can teach us. A great deal, I suspect! The worms turn "
    "the soil of every field in England, slowly, patiently, without rest. Their work is "
    "invisible to the hurried eye. But the careful observer sees that the stones sink, the "
    "ruins are buried, and the ground is made anew. Small causes, acting over long periods, "
    "produce great effects. That is the lesson I return to again and again, in the garden "
    "and in the study, with the worms and with the barnacles."
)


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(server, http)


async def editor(api: Api, method: str, path: str, **kw: Any) -> Any:
    return await api(method, path, user="edna", role="editor", **kw)


async def test_roles_decide_who_edits_which_persona(server: Server, api: Api) -> None:
    store = server.services.personas
    await store.create(definition("guarded", protected=True), ADMIN)
    await store.create(definition("open"), ADMIN)
    edit = {"description": "Rewritten by someone.", "reason": "clearer"}
    for slug in ("guarded", "open"):
        as_user = await api("PATCH", f"/api/personas/{slug}", json_body=edit)
        assert (as_user.status, error_code(as_user)) == (403, "forbidden")
        gen = await api("POST", "/api/personas/generate", json_body={"samples": [ESSAY, LETTER]})
        assert (gen.status, error_code(gen)) == (403, "forbidden")

    # an editor changes an unprotected persona: identity and beliefs with sources
    beliefs = [{"text": "Evidence first.", "source": "notebook B"}]
    changed = await editor(
        api, "PATCH", "/api/personas/open", json_body={**edit, "beliefs": beliefs}
    )
    assert changed.status == 200, changed.body
    assert changed.body["description"] == "Rewritten by someone."
    assert changed.body["beliefs"] == beliefs and changed.body["version"] == 2
    versions = (await editor(api, "GET", "/api/personas/open/versions")).body["versions"]
    assert versions[-1]["reason"] == "clearer" and versions[-1]["created_by"] == "edna"
    assert "snapshot" in versions[-1], "editors see snapshots"

    # ...but not a protected one, and may not make one protected
    for method, path, body in (
        ("PATCH", "/api/personas/guarded", edit),
        ("DELETE", "/api/personas/guarded", None),
        ("PATCH", "/api/personas/guarded/settings", {"style": {"temperature": 1.0}}),
        ("POST", "/api/personas/guarded/versions/1/restore", None),
        ("PUT", "/api/personas/guarded/channels/blog", {"max_words": 500}),
        ("PATCH", "/api/personas/open", {"protected": True}),
    ):
        refused = await editor(api, method, path, json_body=body)
        assert (refused.status, error_code(refused)) == (403, "forbidden"), (path, refused.body)
    assert (await api("GET", "/api/personas/guarded")).body["version"] == 1
    assert not (await api("GET", "/api/personas/open")).body["protected"]

    # an admin changes protected personas and their protection
    unguard = await api.admin("PATCH", "/api/personas/guarded", json_body={"protected": False})
    assert unguard.status == 200 and not unguard.body["protected"]
    now_open = await editor(api, "PATCH", "/api/personas/guarded", json_body=edit)
    assert now_open.status == 200 and now_open.body["version"] == 3
    gone = await editor(api, "DELETE", "/api/personas/guarded")
    assert gone.status == 204


async def test_edit_diff_and_restore(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    edited = await editor(
        api,
        "PATCH",
        "/api/personas/tutor",
        json_body={
            "name": "Photosynthesis Tutor",
            "traits": [{"name": "patience", "type": "behaviour", "value": 0.5}],
            "modes": [{"mode": "educator"}, {"mode": "critic"}],
            "style": {"temperature": 0.9},
        },
    )
    assert edited.status == 200, edited.body
    assert edited.body["style"]["default_mode"] == "educator", "style fields not given stay"
    diff = await editor(api, "GET", "/api/personas/tutor/diff?from=1&to=2")
    assert diff.status == 200
    changes = {(c["path"], c["kind"]) for c in diff.body["changes"]}
    assert ("name", "changed") in changes
    assert ("traits.patience.value", "changed") in changes
    assert ("traits.openness", "removed") in changes
    assert ("modes.critic", "added") in changes
    assert ("style.temperature", "changed") in changes
    assert ("description", "changed") not in changes

    invalid = await editor(
        api, "PATCH", "/api/personas/tutor", json_body={"style": {"default_mode": "debater"}}
    )
    assert (invalid.status, error_code(invalid)) == (400, "invalid_payload")
    assert "default_mode" in invalid.body["error"]["message"]

    restored = await editor(api, "POST", "/api/personas/tutor/versions/1/restore")
    assert restored.status == 200 and restored.body["version"] == 3
    same = await editor(api, "GET", "/api/personas/tutor/diff?from=1")
    assert same.body == {"from": 1, "to": 3, "changes": []}
    as_user = await api("GET", "/api/personas/tutor/diff?from=1")
    assert (as_user.status, error_code(as_user)) == (403, "forbidden")
    missing = await editor(api, "GET", "/api/personas/tutor/diff?from=9")
    assert (missing.status, error_code(missing)) == (404, "version_not_found")


async def test_generate_a_persona_from_writing(server: Server, api: Api) -> None:
    for body, needle in (
        ({"samples": []}, "no samples"),
        ({"samples": ["Too short. Far too short."]}, "at least 150 words and 5 sentences"),
        ({"samples": [ESSAY, 42]}, "sample 2: not text"),
        ({"samples": ["0101 1100 #### 2222 ==== ---- 9999 $$$$"]}, "not prose"),
    ):
        bad = await editor(api, "POST", "/api/personas/generate", json_body=body)
        assert (bad.status, error_code(bad)) == (400, "invalid_payload"), bad.body
        assert needle in bad.body["error"]["message"]
    assert (await api.admin("GET", "/api/personas")).body["total"] == 0, "nothing stored"

    body = {"name": "Garden Naturalist", "samples": [ESSAY, LETTER], "channel": "blog"}
    made = await editor(api, "POST", "/api/personas/generate", json_body=body)
    assert made.status == 201, made.body
    persona, fp = made.body["persona"], made.body["fingerprint"]
    assert persona["slug"] == "garden-naturalist" and not persona["active"]
    assert fp["samples"] == 2 and fp["words"] >= 150
    assert fp["sentence_length"]["min"] <= fp["sentence_length"]["median"]
    assert fp["sentence_length"]["median"] <= fp["sentence_length"]["max"]
    assert 0 < fp["sentence_types"]["question"] < 1 and fp["mtld"] > 0
    assert {w["word"] for w in fp["characteristic_words"]} >= {"barnacles", "patience"}
    assert 0 < made.body["confidence"] < 0.5, "a few hundred words: low confidence"
    traits = {t["name"]: t["value"] for t in persona["traits"]}
    assert traits["formality"] == pytest.approx(fp["style"]["formality"], abs=1e-3)
    assert "openness" in traits
    assert any(b["source"] == "writing sample 1" for b in persona["beliefs"])
    blog = next(c for c in persona["channels"] if c["name"] == "blog")
    assert blog["overridden"] and blog["max_words"] == max(len(ESSAY.split()), len(LETTER.split()))

    versions = (await editor(api, "GET", "/api/personas/garden-naturalist/versions")).body
    assert [v["reason"] for v in versions["versions"]] == ["generated from 2 samples"]
    analyses = (await api("GET", "/api/personas/garden-naturalist/analyses")).body["analyses"]
    assert analyses[0]["words"] == fp["words"] and analyses[0]["fingerprint"]["mtld"] == fp["mtld"]

    # deterministic: the same samples give the same persona, under a free slug
    again = await editor(api, "POST", "/api/personas/generate", json_body=body)
    assert again.body["persona"]["slug"] == "garden-naturalist-2"
    assert again.body["persona"]["traits"] == persona["traits"]
    # a human activates it
    live = await editor(api, "PATCH", "/api/personas/garden-naturalist", json_body={"active": True})
    assert live.status == 200 and live.body["active"]


async def test_channels_and_templates(server: Server, api: Api) -> None:
    await server.services.personas.create(definition("tutor"), ADMIN)
    listed = (await api("GET", "/api/personas/tutor/channels")).body["channels"]
    assert {c["name"] for c in listed} == {"blog", "chat", "facebook", "linkedin"}
    assert all(c["builtin"] and not c["overridden"] for c in listed)

    custom = {"min_words": 80, "max_words": 200, "tone": "crisp", "lists": True}
    put = await editor(api, "PUT", "/api/personas/tutor/channels/newsletter", json_body=custom)
    assert put.status == 200 and put.body["version"] == 2
    news = next(c for c in put.body["channels"] if c["name"] == "newsletter")
    assert news["lists"] is True and not news["builtin"]
    bad = await editor(
        api, "PUT", "/api/personas/tutor/channels/x", json_body={"min_words": 9, "max_words": 3}
    )
    assert (bad.status, error_code(bad)) == (400, "invalid_payload")
    removed = await editor(api, "DELETE", "/api/personas/tutor/channels/newsletter")
    assert removed.status == 200 and removed.body["version"] == 3
    builtin = await editor(api, "DELETE", "/api/personas/tutor/channels/chat")
    assert (builtin.status, error_code(builtin)) == (400, "invalid_payload")
    assert "built-in" in builtin.body["error"]["message"]

    templates = (await api("GET", "/api/personas/templates")).body["templates"]
    assert "gentle-tutor" in {t["name"] for t in templates}
    applied = await editor(api, "POST", "/api/personas/tutor/templates/debate-ready")
    assert applied.status == 200, applied.body
    assert applied.body["style"]["default_mode"] == "debater"
    assert {m["mode"] for m in applied.body["modes"] if m["enabled"]} >= {"debater", "critic"}
    traits = {t["name"]: t["value"] for t in applied.body["traits"]}
    assert traits["assertiveness"] == 0.8 and traits["patience"] == 0.9, "others stay"
    unknown = await editor(api, "POST", "/api/personas/tutor/templates/nope")
    assert (unknown.status, error_code(unknown)) == (400, "invalid_payload")


async def test_generation_is_bounded_and_leaves_the_server_answering(
    server: Server, api: Api
) -> None:
    """Samples are bounded for every interface, and measuring them runs off the event
    loop: the server answers ``/healthz`` promptly while a large generation runs."""
    from runtime.usecases.studio import MAX_SAMPLE_CHARS

    huge = {"samples": [ESSAY * (MAX_SAMPLE_CHARS // len(ESSAY) + 1)]}
    refused = await editor(api, "POST", "/api/personas/generate", json_body=huge)
    assert (refused.status, error_code(refused)) == (400, "invalid_payload"), refused.body
    assert "at most 400,000 characters" in refused.body["error"]["message"]

    large = {"samples": [ESSAY * (MAX_SAMPLE_CHARS // len(ESSAY) - 1)]}
    generating = asyncio.create_task(editor(api, "POST", "/api/personas/generate", json_body=large))
    waits = []
    async with aiohttp.ClientSession() as http:
        while not generating.done():
            started = time.perf_counter()
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 200
            waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
    assert (await generating).status == 201
    assert len(waits) >= 5, "the generation took long enough to measure the loop"
    assert max(waits) < 0.25, f"/healthz waited {max(waits):.2f} s during the generation"
