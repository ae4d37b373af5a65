"""The command-centre console (web/, built into api/console/ by `make console`): its pages
at `/` and the client-side routes, its files under `/assets`. Without a build, `/` says how
to make one."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.permissions import public_route

BUILT = Path(str(files("api").joinpath("console")))
# The console's own routes (web/src/router.ts): each answers its one page, index.html.
PAGES = (
    "/",
    "/login",
    "/map",
    "/devices",
    "/stats",
    "/rules",
    "/departments",
    "/wall",
    "/incidents/{incident_id}",
)
_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>哨兵</title>
<p>The console is not built in this installation: run <code>make console</code> (Node 20).
The API is at <a href="/docs">/docs</a>.</p>"""


@public_route("the console's page: it signs in with a token and calls the API with it")
async def page() -> FileResponse | HTMLResponse:
    index = BUILT / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503)
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


def install_console(app: FastAPI) -> None:
    router = APIRouter(include_in_schema=False)
    for path in PAGES:
        router.add_api_route(path, page, methods=["GET"], response_model=None)
    app.include_router(router)
    if (BUILT / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=BUILT / "assets"), name="console-assets")
