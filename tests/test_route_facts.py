"""What a route answers is declared on the route: the errors it documents come from its own
declaration (`responses=refusals(...)`, its token, path and body), and which routes take only
JSON is read from the routes, never from lists of paths kept elsewhere. A route's connection
is a dependency that behaves as the block it replaced."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import compile_path

from api.app import create_app
from api.deps import Conn
from api.errors import install_error_handlers
from api.limits import json_operations
from gb28181.cascade import api as uplinks_api
from hub.db import connect, open_pool
from hub.errors import Conflict
from hub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
_SETTINGS = Settings(database_url="postgresql://nobody@127.0.0.1/none", _env_file=None)  # type: ignore[call-arg]
APP = create_app(_SETTINGS, routers=[uplinks_api.router])
SPEC: dict[str, Any] = APP.openapi()


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in SPEC["paths"].items() for m, op in item.items()]


def test_the_json_routes_are_the_documents_json_bodies() -> None:
    """The 415 guard (api/limits.py) and the document agree on which bodies must be JSON."""
    documented = set()
    for method, path, operation in _operations():
        types = set(operation.get("requestBody", {}).get("content", {}))
        if types and all(t == "application/json" for t in types):
            documented.add((method, compile_path(path)[0].pattern))
    found = {(method, pattern.pattern) for method, pattern in json_operations(APP.routes)}
    assert found == documented
    assert ("post", "^/api/v1/areas$") in found and ("post", "^/api/v1/rules$") not in found


def test_each_error_is_documented_in_the_one_shape() -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for method, path, operation in _operations():
        responses = operation["responses"]
        for code, response in responses.items():
            if int(code) >= 400:
                assert response["content"] == error, (method, path, code)
        if operation.get("security"):  # a role the capability leaves out is refused
            assert {"401", "403", "429"} <= set(responses), (method, path)


def test_routes_declare_their_own_errors() -> None:
    """A sample of what only the route knows, declared next to it."""
    paths = SPEC["paths"]
    assert "409" in paths["/api/v1/areas"]["post"]["responses"]
    assert "409" in paths["/api/v1/gb/uplinks"]["post"]["responses"]
    assert "404" in paths["/api/v1/evidence"]["get"]["responses"]
    assert "415" in paths["/api/v1/devices/import"]["post"]["responses"]
    assert "409" not in paths["/api/v1/areas"]["get"]["responses"]
    photo = paths["/api/v1/incidents/{incident_id}/attachments"]["post"]["responses"]
    assert photo["413"]["description"] == "the picture is too large"


def test_no_module_keeps_lists_of_paths() -> None:
    """The document's and the guards' code name no route: each fact is on its route."""
    for name in ("api/openapi.py", "api/limits.py"):
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        paths = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("/api/")
        ]
        assert paths == [], name


async def test_a_routes_connection_commits_when_it_returns_and_rolls_back_when_it_raises(
    database_url: str,
) -> None:
    """`Conn` (api/deps.py) acts as `async with pool.connection()` did in each route: what a
    route wrote is committed before its answer is sent, and nothing of a route that raised."""
    app = FastAPI()
    install_error_handlers(app)
    table = f"conn_probe_{uuid.uuid4().hex[:8]}"

    @app.post("/write")
    async def write(conn: Conn, fail: bool = False) -> dict[str, str]:
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
        if fail:
            raise Conflict("refused after writing")
        return {"written": table}

    async def count() -> int:
        async with await connect(database_url) as other:
            cur = await other.execute(f"SELECT count(*) AS n FROM {table}")
            row = await cur.fetchone()
            assert row is not None
            return int(row["n"])

    async with await connect(database_url) as setup:
        await setup.execute(f"CREATE TABLE {table} (n int)")
        await setup.commit()
    app.state.pool = await open_pool(database_url, max_size=2)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.post("/write", params={"fail": True})).status_code == 409
            assert await count() == 0
            assert (await client.post("/write")).status_code == 200
            assert await count() == 1
    finally:
        await app.state.pool.close()
        async with await connect(database_url) as setup:
            await setup.execute(f"DROP TABLE {table}")
            await setup.commit()
