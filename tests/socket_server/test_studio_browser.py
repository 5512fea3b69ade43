"""The studio page in a real headless Chromium against a real server: reached from the
chat page at ``/studio``; edit a persona (slider, belief with source, mode) as a new
version, generate a draft from writing and activate it, and see quality and charts of
the persona's days; readable at common widths (every field shows its text, the cards
use the width), with empty charts saying what will appear there and when."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from typing import Any

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

    await page.goto(server.url + "/")
    await by("studio-link").click()  # the chat page's header leads to the studio
    await page.wait_for_url(server.url + "/studio")
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


BELIEFS = [
    {
        "text": "The laws of physics are the same for every observer moving at constant speed.",
        "source": "On the Electrodynamics of Moving Bodies (1905)",
    },
    {
        "text": "Imagination is more important than knowledge, for knowledge is limited.",
        "source": "interview in The Saturday Evening Post (1929)",
    },
]
WIDTHS = (1440, 1280, 1024, 768)
"""Common viewport widths: desktops, a laptop, a tablet held upright."""


def png_width(png: bytes) -> int:
    """The width in pixels of a screenshot (a PNG's IHDR)."""
    return int(struct.unpack(">I", png[16:20])[0])


async def _shows_all_its_text(field: Any) -> bool:
    return bool(
        await field.evaluate(
            "el => el.scrollHeight <= el.clientHeight + 1 && el.scrollWidth <= el.clientWidth"
        )
    )


async def test_the_studio_is_readable_at_common_widths(
    start_server: Callable[..., Awaitable[Server]],
    tab: Tab,  # noqa: F811
) -> None:
    server = await start_server(auth_secret=None)
    await server.services.personas.create(definition("physicist", beliefs=BELIEFS), ADMIN)
    by, expect, page = tab.by, tab.expect, tab.page
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        await page.goto(server.url + "/studio")
        await expect(by("studio-status")).to_have_text("Ready")
        await expect(by("belief-text")).to_have_count(2)
        await page.screenshot(path=str(ARTIFACTS / f"studio-{width}.png"), full_page=True)
        fields = [
            by("editor-description"),
            *[by(name).nth(i) for name in ("belief-text", "belief-source") for i in range(2)],
        ]
        for field in fields:
            assert await _shows_all_its_text(field), (width, await field.input_value())
        # the screenshot of a belief: wide enough to read a sentence, not a word
        shot = await by("belief-text").first.screenshot()
        assert png_width(shot) >= min(0.3 * width, 360), (width, png_width(shot))
        assert png_width(await by("belief-source").first.screenshot()) >= 200, width
        # the cards use the width: the editor and the generator side by side on a wide
        # screen, reaching its right side; one above the other on a narrow one
        editor = await page.locator("section.studio-card").nth(0).bounding_box()
        generator = await page.locator("section.studio-card").nth(1).bounding_box()
        assert editor is not None and generator is not None
        if width >= 1100:
            assert generator["x"] > editor["x"] + editor["width"], width
            assert generator["x"] + generator["width"] >= width - 40, width
            assert editor["width"] > generator["width"], "the editor has the room"
        else:
            assert generator["y"] > editor["y"] + editor["height"], width
            assert editor["width"] >= width - 60 and generator["width"] >= width - 60, width
    chat = await by("chat-link").evaluate(
        "el => [getComputedStyle(el).textDecorationLine, getComputedStyle(el).borderStyle]"
    )
    assert chat == ["none", "solid"], "the way back to the chat is a styled link"
    assert not tab.problems, tab.problems


async def test_empty_analytics_say_what_will_appear_and_when(
    start_server: Callable[..., Awaitable[Server]],
    tab: Tab,  # noqa: F811
) -> None:
    server = await start_server(auth_secret=None)
    await server.services.personas.create(definition("tutor"), ADMIN)
    by, expect, page = tab.by, tab.expect, tab.page
    await page.goto(server.url + "/studio")
    await expect(by("studio-status")).to_have_text("Ready")
    for chart, says in (
        ("chart-turns", "after its first reply in a chat"),
        ("chart-feedback", "once someone rates one of its replies"),
        ("chart-drift", "seconds after its first reply"),
    ):
        await expect(by(f"{chart}-empty")).to_be_visible()
        await expect(by(f"{chart}-empty")).to_contain_text(says)
        await expect(by(chart)).to_be_hidden()  # no empty frame

    await chat_turn(server, "alice", "How do leaves make sugar?")
    await page.reload()
    await expect(by("studio-status")).to_have_text("Ready")
    await expect(by("chart-turns")).to_be_visible()
    await expect(by("chart-turns-empty")).to_be_hidden()
    await expect(by("chart-feedback-empty")).to_be_visible()
    assert not tab.problems, tab.problems
