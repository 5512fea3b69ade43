"""The studio page in a real headless Chromium against a real server: edit a persona
(slider, belief with source, mode) as a new version, generate a draft from writing and
activate it, and see quality and charts of the persona's days."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agents.fake_llm import FakeStreamingChatModel
from personas import Actor
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.test_browser import ARTIFACTS, Tab, tab  # noqa: F401 (fixture)
from tests.socket_server.test_rest import chat_turn
from tests.socket_server.test_studio import ESSAY, LETTER

ADMIN = Actor("admin", is_admin=True)


async def test_edit_generate_and_quality_in_the_studio_page(
    start_server: Callable[..., Awaitable[Server]],
    tab: Tab,  # noqa: F811
) -> None:
    model = FakeStreamingChatModel(reply="Leaves catch light. What do you think happens next?")
    server = await start_server(model=model, auth_secret=None)
    store = server.services.personas
    await store.create(definition("tutor"), ADMIN)
    await chat_turn(server, "alice", "How do leaves make sugar?")
    await server.services.agents.tracker.fold()
    by, expect, page = tab.by, tab.expect, tab.page

    await page.goto(server.url + "/static/studio.html")
    await expect(by("studio-status")).to_have_text("Ready")
    await expect(by("editor-version")).to_have_text("v1")
    await expect(by("trait-row")).to_have_count(3)
    await expect(by("quality-part")).to_have_count(4)
    await expect(by("chart-turns").locator("rect")).not_to_have_count(0)
    turns = await by("chart-turns").locator('rect[data-value="1"]').count()
    assert turns == 1, "one turn today"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "studio-editor.png"), full_page=True)

    # edit: a slider, a new belief with its source, a mode, with a reason
    await by("trait-slider").and_(page.locator('[data-name="patience"]')).fill("0.4")
    await by("belief-add").click()
    await by("belief-text").last.fill("Plants are patient teachers.")
    await by("belief-source").last.fill("field notes")
    await by("mode-checkbox").and_(page.locator('[data-mode="mentor"]')).check()
    await by("editor-reason").fill("gentler pace")
    await by("editor-save").click()
    await expect(by("studio-status")).to_have_text("Saved tutor as version 2")
    await expect(by("editor-version")).to_have_text("v2")
    saved = await store.get("tutor")
    assert saved.trait("patience").value == 0.4  # type: ignore[union-attr]
    assert saved.beliefs[-1].text == "Plants are patient teachers."
    assert saved.beliefs[-1].source == "field notes"
    assert "mentor" in saved.enabled_modes
    assert (await store.versions("tutor"))[-1].reason == "gentler pace"

    # generate from writing: the fingerprint shows, the draft is inactive until activated
    await by("generate-name").fill("Garden Voice")
    await by("generate-samples").fill(f"{ESSAY}\n---\n{LETTER}")
    await by("generate-button").click()
    await expect(by("fingerprint-row")).to_have_count(10)
    await expect(by("fingerprint-summary")).to_contain_text("2 sample(s)")
    await expect(by("editor-version")).to_have_text("v1 (inactive)")
    assert not (await store.get("garden-voice")).active
    await page.screenshot(path=str(ARTIFACTS / "studio-generated.png"), full_page=True)
    await by("activate-button").click()
    await expect(by("studio-status")).to_have_text("Activated garden-voice (version 2)")
    assert (await store.get("garden-voice")).active
    assert not tab.problems, tab.problems
