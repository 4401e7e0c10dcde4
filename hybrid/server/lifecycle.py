"""`Lifecycle`: whether a worker is ready to take requests, for ``GET /v1/ready``.

A worker is ``starting`` until its application has started (the lifespan startup), then
``ready`` while its database folder can be read, ``unavailable`` while it cannot (a lost
mount, changed permissions), and ``stopping`` from the application's shutdown on. uvicorn
stops accepting connections as soon as a shutdown begins, so a load balancer sees a
stopping worker as refused connections; the requests it already holds still finish.

Once started, a worker moves the objects then alive (the imported modules of numpy, pyarrow,
pandas, DuckDB, ...: some 70,000) out of the garbage collector's reach (``gc.freeze``, after a
collection), for as long as it runs: a full collection otherwise scans all of them while holding
the GIL, ~50 ms of CPU in which the event loop serves nobody (``eval/results/gil_holds.md``).
They are still freed when no longer referenced; only cycles among them are never collected.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

Status = Literal["ready", "starting", "stopping", "unavailable"]


class Lifecycle:
    """The start / stop state of one worker over the database folder `path`."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        self.threads = threads
        self.state: Status = "starting"

    def status(self) -> Status:
        """``ready`` only when started, not stopping, and the database folder can be listed.

        >>> import tempfile
        >>> life = Lifecycle(Path(tempfile.mkdtemp()))
        >>> life.status()
        'starting'
        >>> life.state = "ready"; life.status()
        'ready'
        >>> life.path = life.path / "gone"; life.status()
        'unavailable'
        """
        if self.state != "ready":
            return self.state
        try:
            with os.scandir(self.path) as entries:
                next(entries, None)
        except OSError:
            return "unavailable"
        return "ready"

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """The application's lifespan: ready between startup and shutdown (and at most `threads`
        requests running at once in the worker's thread pool)."""
        if self.threads is not None:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
        gc.collect()
        gc.freeze()
        self.state = "ready"
        try:
            yield
        finally:
            self.state = "stopping"
            gc.unfreeze()
