"""Group commit: appends that arrive together in one worker become one version.

Every version costs more than its rows: a manifest published and synced, a small
fragment, and, in every reader, a new version's manifest, filter checks over the new
fragment and its rows logged for search. Under load several append requests wait for the
table's write lock at once; here they wait in a queue instead, and one committer thread
per table takes what is queued (at most `max_requests` requests and `max_rows` rows) and
commits it as one append. A request is answered only after the version holding its rows
is published (durable), with its own row count and that shared version.

A request's rows are validated before they join a batch (grant, row scope, schema and
embedding, in the request's own thread: :meth:`hybrid.server.tables.Tables.prepare_append`),
so a bad request is refused alone. Should a batch still fail (the schema changed between
validation and commit, say), each of its requests is committed alone, so each gets its
own outcome. Waiting requests hold no request thread; the committer thread runs only while
something is queued and is not a daemon, so an interpreter shutting down finishes the
writes it accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

from hybrid.commits import Commit

WINDOW_S = 0.002
"""How long the committer waits for more requests before it takes a batch: a few ms against a
commit's ~5-20 ms (publish and fsync), so a write waits little more than it would for the lock."""

MAX_REQUESTS = 64
"""Requests one commit takes at most (the rest wait for the next one)."""


@dataclass(frozen=True)
class Appended:
    """A committed append request: the version that holds its rows (shared with its batch-mates),
    the table's version before that commit, its own row count and how many requests the commit held."""

    commit: Commit
    before: int | None
    batch: int


CommitParts = Callable[[str, list[pa.Table]], tuple[int | None, Commit]]
"""Commits validated row tables of one table as one append: (version before, the commit)."""


@dataclass
class _Queue:
    items: list[tuple[pa.Table, Future[Appended]]] = field(default_factory=list)
    running: bool = False


class GroupCommit:
    """Per-table queues of validated appends, each drained by a committer thread while not empty."""

    def __init__(
        self,
        commit: CommitParts,
        *,
        window_s: float = WINDOW_S,
        max_requests: int = MAX_REQUESTS,
        max_rows: int = 10_000,
    ) -> None:
        if window_s < 0 or max_requests < 1 or max_rows < 1:
            raise ValueError(f"group commit needs window_s >= 0, max_requests >= 1, max_rows >= 1, got {window_s}")
        self._commit = commit
        self.window_s, self.max_requests, self.max_rows = window_s, max_requests, max_rows
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._threads: set[threading.Thread] = set()

    def submit(self, name: str, rows: pa.Table) -> Future[Appended]:
        """Queue the validated `rows` for table `name`; the future holds its commit (or its error)."""
        future: Future[Appended] = Future()
        with self._lock:
            queue = self._queues.setdefault(name, _Queue())
            queue.items.append((rows, future))
            if not queue.running:
                queue.running = True
                thread = threading.Thread(target=self._drain, args=(name, queue), name=f"group-commit-{name}")
                self._threads.add(thread)
                thread.start()
        return future

    def append(self, name: str, rows: pa.Table) -> Appended:
        """:meth:`submit` and wait for the outcome (for callers on plain threads)."""
        return self.submit(name, rows).result()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every queued append has been committed (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                return
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                return

    def _take(self, name: str, queue: _Queue) -> list[tuple[pa.Table, Future[Appended]]]:
        """The next batch from the front of `queue` (cancelled requests dropped); [] ends the thread."""
        with self._lock:
            batch: list[tuple[pa.Table, Future[Appended]]] = []
            rows = 0
            while queue.items and len(batch) < self.max_requests:
                part, future = queue.items[0]
                if batch and rows + part.num_rows > self.max_rows:
                    break
                queue.items.pop(0)
                if future.set_running_or_notify_cancel():  # a client gone before its commit began
                    batch.append((part, future))
                    rows += part.num_rows
            if not batch and not queue.items:
                queue.running = False
                if self._queues.get(name) is queue:
                    del self._queues[name]
                self._threads.discard(threading.current_thread())
            return batch

    def _drain(self, name: str, queue: _Queue) -> None:
        try:
            self._drain_until_empty(name, queue)
        except BaseException as exc:  # never leave requests waiting on a thread that is gone
            with self._lock:
                left, queue.items = queue.items, []
                queue.running = False
                if self._queues.get(name) is queue:
                    del self._queues[name]
                self._threads.discard(threading.current_thread())
            for _, future in left:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            raise

    def _drain_until_empty(self, name: str, queue: _Queue) -> None:
        while True:
            if self.window_s:
                with self._lock:
                    waiting = len(queue.items)
                if waiting < self.max_requests:
                    time.sleep(self.window_s)
            batch = self._take(name, queue)
            if not batch:
                with self._lock:
                    if not queue.running:
                        return
                continue
            self._commit_batch(name, batch)

    def _commit_batch(self, name: str, batch: list[tuple[pa.Table, Future[Appended]]]) -> None:
        try:
            before, commit = self._commit(name, [part for part, _ in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for one in batch:  # each alone, so a request that cannot commit fails by itself
                self._commit_batch(name, [one])
            return
        for part, future in batch:
            future.set_result(
                Appended(
                    Commit(commit.version, commit.operation, inserted=part.num_rows), before=before, batch=len(batch)
                )
            )
