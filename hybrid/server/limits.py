"""`BodyLimit`: refuse request bodies over a size with 413, or slower than a deadline with 408.

A body over the limit (declared by ``Content-Length``, or a chunked one once it passes
the limit) is refused without being kept: the rest of it is read and dropped first, up to
`DRAIN_FACTOR` times the limit and within the deadline, because a server that answers and
closes while the client is still sending makes the client's kernel reset the connection,
and the client sees a broken connection instead of the 413 (beyond that bound the answer
goes out at once). A body within the limit is handed on whole, so no handler ever sees
more than the limit. Once the body is in, the request has arrived: a search's time budget
counts from then, and the response's
``Server-Timing: app;dur=<ms>`` header says how long the server held it. A client that
sends its body slower than `max_seconds` allow (a slow-loris upload holding a worker's
connection) gets 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import time

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid.server.admission import mark_arrival
from hybrid.server.errors import body

DRAIN_FACTOR = 4  # a refused body is read and dropped up to this many times the limit before the answer
DRAIN_FLOOR = 16 * 1024 * 1024  # ...and at least this many bytes, so a small limit still answers cleanly


class BodyLimit:
    """Pure ASGI middleware (no buffering of responses, works with every route)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_seconds: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, receive, send, 400, "BadRequest", "the Content-Length header is not a number")
            return
        deadline = asyncio.get_running_loop().time() + self.max_seconds
        if declared is not None and declared > self.max_bytes:
            if declared <= self._drain_bytes:
                await _drain(receive, deadline, self._drain_bytes)
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - asyncio.get_running_loop().time(), 0))
            except asyncio.TimeoutError:
                text = f"the request body did not arrive within {self.max_seconds:g} s"
                await _refuse(scope, receive, send, 408, "RequestTimeout", text)
                return
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                if message.get("more_body", False):
                    await _drain(receive, deadline, self._drain_bytes - size)
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        mark_arrival()  # a search's time budget counts from here (hybrid.server.admission)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return whole
            return await receive()

        arrived = time.monotonic()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":  # how long the server held the request (Server-Timing)
                took = (time.monotonic() - arrived) * 1e3
                message["headers"] = [*message.get("headers", []), (b"server-timing", f"app;dur={took:.1f}".encode())]
            await send(message)

        await self.app(scope, replay, timed)

    @property
    def _drain_bytes(self) -> int:
        return max(DRAIN_FACTOR * self.max_bytes, DRAIN_FLOOR)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than this server's limit of {self.max_bytes} bytes"
        await _refuse(scope, receive, send, 413, "PayloadTooLarge", message)


async def _drain(receive: Receive, deadline: float, budget: int) -> None:
    """Read and drop the rest of a request body: until it ends, `budget` bytes pass or `deadline` comes."""
    loop = asyncio.get_running_loop()
    while budget >= 0:
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
        except asyncio.TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        budget -= len(message.get("body", b""))


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


class KeyGates:
    """How many requests each API key has in progress, bounded by `limit` (one key cannot take every thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def enter(self, key: str) -> bool:
        """Count one more request of `key`; False (nothing counted) when it already has `limit`.

        Called on the event loop only, so no lock is needed.
        """
        held = self._open.get(key, 0)
        if held >= self.limit:
            return False
        self._open[key] = held + 1
        return True

    def leave(self, key: str) -> None:
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)
