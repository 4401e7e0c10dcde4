"""The web page of ``hybrid serve``: search, compare, chat and table views over the public ``/v1`` API.

Served at ``/`` (a Jinja2 template) and ``/static/`` (JavaScript and CSS shipped in the wheel; no CDN,
no build step). The page asks for an API key, keeps it in the tab's ``sessionStorage`` and sends it
with every ``/v1`` call, so it can do exactly what the key may. Page responses carry a strict
Content-Security-Policy: scripts and styles only from this origin, no inline script, no ``eval``,
calls only to this origin; every value from a table is put in the page as text.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hybrid

HERE = Path(__file__).parent
STATIC = HERE / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
"""Sent with the page and its static files."""


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )


@cache
def asset_version() -> str:
    """A digest of the static files, appended to their URLs so a new release is not served from cache."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def page_bytes() -> dict[str, int]:
    """Bytes of the page's HTML (rendered), JavaScript and CSS: the page weight."""
    sizes = {"html": len(render().encode("utf-8"))}
    for path in sorted(STATIC.iterdir()):
        sizes[path.name] = path.stat().st_size
    return sizes


def render() -> str:
    """The page's HTML."""
    return _environment().get_template("index.html").render(version=hybrid.__version__, assets=asset_version())


class _SecurityHeaders:
    """ASGI middleware: the page's security headers on ``/`` and ``/static/``; API responses pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith("/static/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static/`` on `app`."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(render(), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_SecurityHeaders)
