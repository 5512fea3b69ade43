"""How socket_server is put together: its modules import each other without a cycle
and only at module level, no interface imports the app module that wires them, the
order routes are registered in does not decide which one answers, and the web page and
Socket.IO stay on the root application beside the nested APIs."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from socket_server import rest
from socket_server.app import MOUNTS
from socket_server.routes import Mount, Route, sub_app
from tests.socket_server.conftest import Server

PACKAGE = Path(__file__).resolve().parents[2] / "socket_server"
_SAMPLES = {
    "key": "tutor",
    "version": "3",
    "session_id": str(uuid.UUID(int=1)),
    "message_id": str(uuid.UUID(int=2)),
    "memory_id": str(uuid.UUID(int=3)),
    "fact_id": str(uuid.UUID(int=4)),
    "channel": "blog",
    "template": "gentle-tutor",
    "model": "persona/tutor",
}


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """Each socket_server module's imports of socket_server modules, and whether each is
    at module level."""
    modules = {f"socket_server.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    found: dict[str, list[tuple[str, bool]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(map(id, tree.body))
        edges: list[tuple[str, bool]] = []
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "socket_server":
                    targets = [f"socket_server.{a.name}" for a in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            edges += [(t, id(node) in top) for t in targets if t in modules]
        found[name] = edges
    return found


def test_modules_import_one_another_at_module_level_without_a_cycle() -> None:
    graph = _imports()
    assert len(graph) > 10, "socket_server's modules were not found"
    nested = [(m, t) for m, edges in graph.items() for t, at_top in edges if not at_top]
    assert not nested, f"imports inside functions: {nested}"
    importers_of_app = [
        m for m, edges in graph.items() if any(t.endswith(".app") for t, _ in edges)
    ]
    assert not importers_of_app, f"the app is wired, never imported: {importers_of_app}"

    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            cycle = " -> ".join((*path[path.index(module) :], module))
            pytest.fail(f"import cycle: {cycle}")
        if module in done:
            return
        for target, _ in graph[module]:
            visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


async def _resolved(routes: tuple[Route, ...], route: Route) -> object:
    """The handler the sub-application of ``routes`` picks for a request to ``route``."""
    app = sub_app(Mount("", "", routes, MOUNTS[0].error), rest.errors_middleware)
    path = re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: _SAMPLES[m[1]], route.path)
    match = await app.router.resolve(make_mocked_request(route.method, path, app=app))
    return match.handler


@pytest.mark.parametrize("mount", MOUNTS, ids=lambda m: m.prefix)
async def test_each_route_answers_whatever_the_order_of_registration(mount: Mount) -> None:
    for routes in (mount.routes, tuple(reversed(mount.routes))):
        for route in mount.routes:
            assert await _resolved(routes, route) is route.handler, (route.method, route.path)


async def test_the_page_its_files_and_socket_io_are_served_beside_the_apis(
    server: Server,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/") as page:
            assert page.status == 200 and page.content_type == "text/html"
        async with http.get(server.url + "/static/app.js") as script:
            assert script.status == 200
        async with http.get(server.url + "/static/no-such-file.js") as missing:
            # a static file's 404 is aiohttp's own, not an API's JSON error
            assert missing.status == 404 and missing.content_type != "application/json"
        handshake = server.url + "/socket.io/?EIO=4&transport=polling"
        async with http.get(handshake) as polling:
            assert polling.status == 200 and '"sid"' in await polling.text()
