"""`BodyLimit`: refuse request bodies over a size with 413, before anything parses them.

A declared ``Content-Length`` over the limit is refused without reading a byte; a body
without one (chunked) is read up to the limit and refused as soon as it passes it. The
body is then handed on whole, so no handler ever sees more than the limit.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid.server.errors import body


class BodyLimit:
    """Pure ASGI middleware (no buffering of responses, works with every route)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, receive, send, 400, "BadRequest", "the Content-Length header is not a number")
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return whole
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than this server's limit of {self.max_bytes} bytes"
        await _refuse(scope, receive, send, 413, "PayloadTooLarge", message)


def _content_length(scope: Scope) -> int | None:
    """The declared length, None if absent, -1 if it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, type: str, message: str) -> None:
    response = JSONResponse(body(type, message), status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)
