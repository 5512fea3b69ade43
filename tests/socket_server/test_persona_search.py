"""Semantic persona search: the catalog in the vector store follows every write (create,
edit, delete) and ranks by meaning and text together. With the real MiniLM model, a few
plain-language queries find the persona a person would pick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from psycopg_pool import AsyncConnectionPool

from memory import EdgeMemoryIndex, SentenceTransformerEmbedder
from personas import Actor, PersonaStore
from personas.definitions import load_path, shipped_library
from runtime.infra.catalog import PersonaCatalog
from tests.personas.factory import definition
from tests.socket_server.conftest import Server
from tests.socket_server.openapi_check import check_answer
from tests.socket_server.test_rest import Api, error_code

ADMIN = Actor("admin", is_admin=True)


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(server, http)


async def slugs(api: Api, q: str) -> list[str]:
    reply = await api("GET", f"/api/personas/search?q={q}")
    assert reply.status == 200, reply.body
    return [item["slug"] for item in reply.body["items"]]


async def test_the_catalog_follows_every_write(server: Server, api: Api) -> None:
    store = server.services.personas
    await store.create(definition("tutor"), ADMIN)
    await store.create(
        definition(
            "navigator",
            description="An old sea captain who tells of ships, storms and sailing routes.",
            domains=["sailing"],
            beliefs=[],
        ),
        ADMIN,
    )
    assert (await slugs(api, "ships and sailing"))[0] == "navigator"
    assert (await slugs(api, "photosynthesis questions"))[0] == "tutor"

    # an edit is re-embedded before the next search
    await api(
        "PATCH",
        "/api/personas/tutor",
        user="ed",
        role="editor",
        json_body={"description": "A tutor of knots, ships and sailing at sea.", "beliefs": []},
    )
    found = await slugs(api, "knots at sea")
    assert found[0] == "tutor"
    # a deleted persona leaves the catalog
    await store.delete("navigator", ADMIN)
    assert "navigator" not in await slugs(api, "ships and sailing")

    blank = await api("GET", "/api/personas/search?q=%20")
    assert (blank.status, error_code(blank)) == (400, "invalid_payload")
    doc = (await api("GET", "/api/openapi.json", user=None)).body
    reply = await api("GET", "/api/personas/search?q=sailing")
    path = "/api/personas/search"
    assert not check_answer(doc, path, "get", reply.status, reply.body, "application/json")
    item = reply.body["items"][0]
    assert item["score"] >= item["meaning"] and 0 <= item["text"] <= 1


QUERIES = {
    "someone to teach me about evolution": "charles-darwin",
    "I want to understand relativity and the speed of light": "albert-einstein",
    "help me get ready for a job interview": "interview-coach",
    "who can review my pull request and be brutally honest": "harsh-code-reviewer",
}


@pytest.mark.slow
async def test_plain_language_queries_find_the_right_persona(
    db: AsyncConnectionPool[Any], store: PersonaStore, tmp_path: Path
) -> None:
    for d in load_path(shipped_library()):
        await store.upsert(d, ADMIN)
    async with (
        SentenceTransformerEmbedder() as embedder,
        EdgeMemoryIndex(tmp_path / "qdrant", dim=embedder.dim) as index,
    ):
        catalog = PersonaCatalog(store, index, embedder)
        for query, expected in QUERIES.items():
            hits = await catalog.search(query, limit=3)
            assert hits[0].persona.slug == expected, (query, [h.persona.slug for h in hits])
