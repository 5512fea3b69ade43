"""The web client in a real headless Chromium (Debian's, driven by Playwright) against a
real server: pick a persona, chat with a streamed reply, inspect its memories, and catch
up after the connection drops mid-reply."""

from __future__ import annotations

import importlib.util
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agents.fake_llm import FakeStreamingChatModel
from memory.service import NewMemory
from personas import Actor, Persona
from socket_server.keys import SIO
from tests.personas.factory import definition
from tests.socket_server.conftest import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN = Actor("admin", is_admin=True)
USER_LINE = "Hello! Could you explain how leaves turn light into sugar?"
REPLY = (
    "Of course. Leaves catch sunlight with chlorophyll, split water, and use that energy "
    "to build sugar from carbon dioxide. What do you think the oxygen is?"
)

# Snapshots of the n-th persona bubble after every change, taken in the page, so that the
# test sees the reply grow without polling races.
WATCH_REPLY = """(n) => {
  window.__snapshots = [];
  const list = document.querySelector('[data-testid="messages"]');
  const take = () => {
    const bubble = list.querySelectorAll('[data-testid="message"][data-role="persona"]')[n];
    if (!bubble) return;
    const text = bubble.querySelector('[data-testid="message-text"]').textContent;
    const last = window.__snapshots[window.__snapshots.length - 1];
    if (!last || last.text !== text || last.status !== bubble.dataset.status) {
      window.__snapshots.push({status: bubble.dataset.status, text});
    }
  };
  new MutationObserver(take).observe(list, {
    subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ["data-status"],
  });
}"""

WATCH_CONNECTION = """() => {
  window.__states = [];
  const status = document.querySelector('[data-testid="connection-status"]');
  new MutationObserver(() => window.__states.push(status.dataset.state))
    .observe(status, {attributes: true, attributeFilter: ["data-state"]});
}"""


def _playwright() -> Any:
    """``playwright.async_api``, or skip (fail on CI, which installs both) with the reason."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium, or .ci/install-browser)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return importlib.import_module("playwright.async_api")


@dataclass
class Tab:
    """A page of the web client, with the errors it logged."""

    page: Any
    expect: Any
    problems: list[str] = field(default_factory=list)

    def by(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)

    def message(self, role: str) -> Any:
        return self.by("message").and_(self.page.locator(f'[data-role="{role}"]'))


@pytest.fixture
async def tab() -> AsyncIterator[Tab]:
    api = _playwright()
    api.expect.set_options(timeout=15_000)
    async with api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(15_000)
            tab = Tab(page, api.expect)
            page.on("pageerror", lambda exc: tab.problems.append(f"uncaught: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    tab.problems.append(f"console: {msg.text}")
                    if msg.type == "error" and "Failed to load resource" not in msg.text
                    else None
                ),
            )
            yield tab
        finally:
            await browser.close()


async def _serve(start_server: Callable[..., Awaitable[Server]]) -> tuple[Server, Persona]:
    model = FakeStreamingChatModel(reply=REPLY, token_delay_s=0.05)
    server = await start_server(model=model, auth_secret=None)
    persona = await server.services.personas.create(definition("tutor"), ADMIN)
    return server, persona


async def _open_session(tab: Tab, server: Server, persona: Persona) -> uuid.UUID:
    """Open the page, pick the persona and start a session; its id."""
    by, expect = tab.by, tab.expect
    await tab.page.goto(server.url + "/")
    await expect(by("connection-status")).to_have_attribute("data-state", "connected")
    # from the list (searching by domain), or by slug when the server has no list
    persona_list = by("persona-list")
    await expect(persona_list).not_to_have_attribute("data-state", "loading")
    if await persona_list.get_attribute("data-state") == "ready":
        await by("persona-search").fill("biology")
        option = by("persona-option").and_(tab.page.locator('[data-slug="tutor"]'))
        await expect(option).to_contain_text(persona.name)
        await option.get_by_test_id("persona-checkbox").check()
    else:
        await by("persona-search").fill("tutor")
        await by("persona-manual").click()
    await expect(by("selected-persona")).to_have_count(1)
    await by("start-button").click()
    await expect(by("composer-input")).to_be_enabled()
    await expect(by("session-personas")).to_contain_text(persona.name)
    return uuid.UUID((await tab.page.evaluate("location.hash")).split("=", 1)[1])


async def _send(tab: Tab, text: str) -> None:
    await tab.by("composer-input").fill(text)
    await tab.by("send-button").click()


async def _stored_replies(server: Server, session_id: uuid.UUID) -> list[Any]:
    page = await server.services.memory.transcripts.history(session_id)
    return [m for m in page.items if m.role == "persona"]


async def test_a_reply_streams_into_the_page_and_into_the_memory_inspector(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    expect = tab.expect
    server, persona = await _serve(start_server)
    session_id = await _open_session(tab, server, persona)
    by = tab.by

    await tab.page.evaluate(WATCH_REPLY, 0)
    await _send(tab, USER_LINE)
    user, reply = tab.message("user"), tab.message("persona")
    await expect(user).to_have_count(1)
    await expect(user).not_to_have_attribute("data-id", "")
    await expect(reply).to_have_attribute("data-status", "complete")

    stored = await _stored_replies(server, session_id)
    assert len(stored) == 1 and stored[0].text.strip() == REPLY
    shown = await reply.get_by_test_id("message-text").text_content()
    assert shown == stored[0].text
    assert await reply.get_attribute("data-id") == str(stored[0].id)
    assert await user.get_by_test_id("message-text").text_content() == USER_LINE

    snapshots = await tab.page.evaluate("window.__snapshots")
    partial = [s["text"] for s in snapshots if s["status"] == "streaming" and s["text"]]
    assert len(partial) >= 3, snapshots
    assert all(len(a) < len(b) for a, b in itertools.pairwise(partial)), partial
    assert all(shown.startswith(p) for p in partial), (shown, partial)
    assert len(partial[0]) < len(shown) // 2, partial

    memories = by("memory-item")
    await expect(memories.filter(has_text=USER_LINE)).to_have_count(1)
    await expect(memories.filter(has_text=REPLY)).to_have_count(1)
    await expect(by("trait-row")).to_have_count(len(persona.traits))
    # one reply is too few to judge consistency by: no score yet, and the page says why
    await expect(by("drift-score")).to_have_text("–")
    await expect(by("drift-note")).to_contain_text("Not enough replies yet (1 reply observed")

    # a search shows the score breakdown; a pin is stored (the full list shows it)
    await by("memory-search-input").fill("chlorophyll sunlight")
    await by("memory-search-button").click()
    found = memories.filter(has_text=REPLY)
    await expect(found.get_by_test_id("memory-score")).to_contain_text("meaning")
    await found.get_by_test_id("memory-pin").click()
    await expect(memories.filter(has_text=REPLY)).to_have_attribute("data-pinned", "true")
    await by("memory-clear-search").click()
    await expect(by("memory-score")).to_have_count(0)
    await expect(memories.filter(has_text=REPLY)).to_have_attribute("data-pinned", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    await tab.page.set_viewport_size({"width": 1440, "height": 1000})
    await tab.page.evaluate("document.querySelector('.inspector').scrollTop = 0")
    await tab.page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)
    await tab.page.set_viewport_size({"width": 390, "height": 844})
    await tab.page.screenshot(path=str(ARTIFACTS / "browser-chat-narrow.png"), full_page=True)
    assert tab.problems == []


async def test_after_a_dropped_connection_the_page_reconnects_and_catches_up(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    expect = tab.expect
    server, persona = await _serve(start_server)
    session_id = await _open_session(tab, server, persona)
    sio = server.app[SIO]

    await tab.page.evaluate(WATCH_CONNECTION)
    await tab.page.evaluate(WATCH_REPLY, 0)
    await _send(tab, USER_LINE)
    reply = tab.message("persona")
    await expect(reply.get_by_test_id("message-text")).not_to_have_text("")
    # drop the transport mid-reply, as a network failure would
    for _sid, eio_sid in list(sio.manager.get_participants("/chat", f"session:{session_id}")):
        await sio.eio.disconnect(eio_sid)

    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(tab.by("connection-status")).to_have_attribute("data-state", "connected")
    states = await tab.page.evaluate("window.__states")
    assert "waiting" in states and states[-1] == "connected", states
    stored = await _stored_replies(server, session_id)
    assert len(stored) == 1
    assert await reply.get_by_test_id("message-text").text_content() == stored[0].text

    # the rejoined connection is in the session's room again: the next reply streams
    await tab.page.evaluate(WATCH_REPLY, 1)
    await _send(tab, "And what happens at night?")
    second = tab.message("persona").nth(1)
    await expect(second).to_have_attribute("data-status", "complete")
    snapshots = await tab.page.evaluate("window.__snapshots")
    assert any(s["status"] == "streaming" and s["text"] for s in snapshots), snapshots
    stored = await _stored_replies(server, session_id)
    assert await second.get_by_test_id("message-text").text_content() == stored[1].text
    await expect(tab.message("user")).to_have_count(2)
    assert tab.problems == []


async def test_without_the_persona_list_a_persona_is_added_by_slug(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    server, persona = await _serve(start_server)
    await tab.page.route("**/api/personas*", lambda route: route.fulfill(status=404))
    by, expect = tab.by, tab.expect
    await tab.page.goto(server.url + "/")
    await expect(by("persona-list")).to_have_attribute("data-state", "unavailable")
    await expect(by("persona-list-status")).to_contain_text("Cannot list personas")
    await by("persona-search").fill("tutor")
    await by("persona-search").press("Enter")
    await expect(by("selected-persona")).to_have_text("tutor×")
    await by("start-button").click()
    await expect(by("session-personas")).to_contain_text(persona.name)
    await expect(by("trait-row")).to_have_count(len(persona.traits))
    assert tab.problems == []


async def test_with_auth_the_page_asks_for_a_token_and_keeps_it(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    server = await start_server()
    assert server.settings.auth_enabled
    token = server.token("alice")
    by, expect = tab.by, tab.expect
    await tab.page.goto(server.url + "/")
    await expect(by("connection-status")).to_have_attribute("data-state", "refused")
    await expect(by("token-input")).to_be_visible()
    await by("token-input").fill(token)
    await by("name-input").fill("Alice")
    await by("connect-button").click()
    await expect(by("connection-status")).to_have_attribute("data-state", "connected")
    await tab.page.reload()
    await expect(by("connection-status")).to_have_attribute("data-state", "connected")
    await expect(by("token-input")).to_have_value(token)
    await expect(by("name-input")).to_have_value("Alice")
    assert tab.problems == []


async def test_a_reply_cut_by_the_guard_shows_as_cut(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    loop = "Space is only a dimension of time. "
    server = await start_server(model=FakeStreamingChatModel(reply=loop * 12), auth_secret=None)
    persona = await server.services.personas.create(definition("tutor"), ADMIN)
    session_id = await _open_session(tab, server, persona)
    await _send(tab, "What is space?")
    reply = tab.message("persona")
    await tab.expect(reply).to_have_attribute("data-cut", "repetition")
    await tab.expect(reply.get_by_test_id("message-cut")).to_have_text("cut")
    [stored] = await _stored_replies(server, session_id)
    assert (stored.text, stored.cut) == (loop.strip(), "repetition")
    assert await reply.get_by_test_id("message-text").text_content() == stored.text


async def test_without_a_secret_the_page_chooses_who_you_are(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    server, persona = await _serve(start_server)
    long_fact = "Uma keeps a cat called Planck. " * 12  # long: shown collapsed
    await server.services.memory.remember(
        [
            NewMemory(
                persona_id=str(persona.id),
                user_id="uma",
                session_id=None,
                speaker_name="Uma",
                speaker_role="user",
                text=long_fact.strip(),
            )
        ]
    )
    by, expect = tab.by, tab.expect
    await tab.page.goto(server.url + "/")
    await expect(by("who")).to_have_text("as local")
    await tab.page.locator(".settings summary").click()
    await expect(by("user-hint")).to_contain_text("takes this as who you are")
    await by("user-input").fill("uma")
    await by("connect-button").click()
    await expect(by("who")).to_have_text("as uma")
    session_id = await _open_session(tab, server, persona)
    # a new session says what to try
    await expect(by("chat-empty")).to_contain_text(f"A new conversation with {persona.name}")
    memory = by("memory-item").filter(has_text="Planck")
    await expect(memory).to_have_count(1)
    text = memory.get_by_test_id("memory-text")
    await expect(text).to_have_class("memory-text collapsed")
    await memory.get_by_test_id("memory-expand").click()
    await expect(text).to_have_class("memory-text")
    session = await server.services.memory.transcripts.get_session(session_id)
    assert session.user_id == "uma"
    await _send(tab, USER_LINE)
    await expect(by("chat-empty")).to_have_count(0)
    await expect(tab.message("persona")).to_have_attribute("data-status", "complete")
    assert tab.problems == []


async def test_the_message_box_counts_to_its_limit(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    server, persona = await _serve(start_server)
    await _open_session(tab, server, persona)
    by, expect = tab.by, tab.expect
    limit = server.settings.max_message_chars
    await expect(by("char-count")).to_be_hidden()
    await by("composer-input").fill("x" * (limit + 1000))
    await expect(by("char-count")).to_contain_text("1,000 characters too long")
    await expect(by("send-button")).to_be_disabled()
    await by("composer-input").press("Enter")
    await expect(tab.message("user")).to_have_count(0)  # nothing sent that must fail
    await by("composer-input").fill("x" * (limit - 10))
    await expect(by("char-count")).to_have_text(f"{limit - 10:,} / {limit:,}")
    await expect(by("send-button")).to_be_enabled()
    assert tab.problems == []


async def test_after_a_reload_names_timings_and_the_top_bar_stay_readable(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    model = FakeStreamingChatModel(reply=REPLY)
    server = await start_server(model=model, auth_secret=None)
    traits = [{"name": "conscientiousness", "type": "ocean", "value": 0.8}]
    persona = await server.services.personas.create(definition("tutor", traits=traits), ADMIN)
    await _open_session(tab, server, persona)
    by, expect = tab.by, tab.expect
    await _send(tab, USER_LINE)
    reply = tab.message("persona")
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(reply.get_by_test_id("message-meta")).to_contain_text("first token")
    await tab.page.reload()
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(reply.get_by_test_id("message-meta")).to_contain_text("first token")

    name = by("trait-row").filter(has_text="conscientiousness").locator(".trait-name span").first
    await expect(name).to_have_text("conscientiousness")
    cut = await name.evaluate("e => e.scrollWidth > e.clientWidth + 1")
    assert not cut, "the trait's name is cut"

    await tab.page.set_viewport_size({"width": 390, "height": 844})
    await tab.page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await expect(by("drift")).to_be_in_viewport()
    box = await tab.page.locator(".topbar").bounding_box()
    assert box is not None and abs(box["y"]) < 1, box
    assert tab.problems == []


async def test_an_empty_home_says_how_to_import_personas(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    server = await start_server(auth_secret=None)
    await tab.page.goto(server.url + "/")
    await tab.expect(tab.by("persona-list-status")).to_contain_text("personae personas import")
    assert tab.problems == []


async def test_a_message_stored_before_a_crash_is_answered_when_the_page_resends_it(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    """The server stored the page's message, then died before answering (its ack never
    came): the page's resend gets ``duplicate: true``, and the page asks for the answer
    with ``message.retry`` instead of waiting for one that will not come."""
    expect = tab.expect
    server, persona = await _serve(start_server)
    # the page's next message id is known: its random bytes are fixed
    await tab.page.add_init_script("crypto.getRandomValues = (a) => { a.fill(7); return a; };")
    session_id = await _open_session(tab, server, persona)
    client_msg_id = await tab.page.evaluate(
        """() => { const b = crypto.getRandomValues(new Uint8Array(16));
        b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
        const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
        return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`; }"""
    )
    await server.services.memory.transcripts.store_user_message(
        session_id, user_id="local", speaker="You", text=USER_LINE, client_msg_id=client_msg_id
    )
    await _send(tab, USER_LINE)
    reply = tab.message("persona")
    await expect(reply).to_have_attribute("data-status", "complete")
    stored = await _stored_replies(server, session_id)
    assert len(stored) == 1 and server.model.calls == 1
    await expect(tab.message("user")).to_have_count(1)


async def test_the_inspector_shows_what_is_known_about_the_user_with_its_history(
    start_server: Callable[..., Awaitable[Server]], tab: Tab
) -> None:
    """Facts consolidated in the background after the turns: the current one first, the
    one it superseded marked as no longer true; a current fact can be deleted."""
    expect, by = tab.expect, tab.by
    server, persona = await _serve(start_server)
    await _open_session(tab, server, persona)
    facts = by("fact-item")
    await _send(tab, "I live in Lyon.")
    await expect(tab.message("persona")).to_have_attribute("data-status", "complete")
    await expect(facts.filter(has_text="Lyon")).to_have_attribute("data-current", "true")

    await _send(tab, "I moved to Berlin.")
    await expect(tab.message("persona").nth(1)).to_have_attribute("data-status", "complete")
    current = facts.filter(has_text="Berlin")
    await expect(current).to_have_attribute("data-current", "true")
    old = facts.filter(has_text="Lyon")
    await expect(old).to_have_attribute("data-current", "false")
    await expect(old).to_contain_text("no longer true")
    await expect(facts.first).to_contain_text("Berlin")  # the current fact comes first

    await current.get_by_test_id("fact-delete").click()
    await expect(facts.filter(has_text="Berlin")).to_have_count(0)
    assert tab.problems == []
