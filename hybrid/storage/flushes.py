"""A commit's syncs made together, so that the disk's flushes overlap instead of queueing.

A single-row append used to make four syncs one after the other: its data file, the
data folder, the manifest's temporary file, and (after the manifest is linked) the
versions folder. Each is a flush of the disk's write cache (about 4-6 ms on a virtual
disk, even for a folder with nothing new), and a search right after the write paid
for the CPU caches other work had taken meanwhile.

Crash safety needs an order, not one sync after another: every file a manifest lists
(its bytes and its name) and the manifest's own bytes must be durable *before* the
manifest's name is linked, and that name must be durable before the commit returns.
So inside :func:`together`, a sync of a new file or of a folder (:func:`sync_file`,
:func:`sync_folder`) is put off until the version is published: :func:`flush` then
makes all of them, and the manifest's, at once (concurrently, one thread per sync,
each a real ``fsync`` through :mod:`hybrid.storage.disk`), and the link happens only
after every one has returned without error. The versions folder is still synced
after the link, alone (nothing may be linked before what it lists is durable). No
sync is skipped; each is only moved to the last moment the order allows. Outside
:func:`together` (the default: a process that writes files another process will
publish, as the Ray sink does) every sync is made at once, as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from hybrid.storage import disk

_state = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
WORKERS = 4
"""Syncs made at once by the flushing threads (the caller's thread makes one more); 0: one after the other,
in the caller's thread (what a benchmark compares against)."""


def _pending() -> list[tuple[Path, bool]] | None:
    return getattr(_state, "pending", None)


@contextmanager
def together() -> Iterator[None]:
    """Put off this thread's syncs of new files and folders until the next :func:`flush` (a publish);
    on leaving the block normally, make those still pending. Nested blocks share the outermost's."""
    if _pending() is not None:
        yield
        return
    _state.pending = []
    try:
        yield
        flush()
    finally:  # on an error nothing published lists the files put off: they are the caller's to remove
        _state.pending = None


def sync_file(path: Path) -> None:
    """Make the bytes of the new file `path` durable: now, or at the flush of the enclosing :func:`together`."""
    pending = _pending()
    if pending is None:
        _sync(path, False)
    else:
        pending.append((path, False))


def sync_folder(path: Path) -> None:
    """Make the names in folder `path` durable: now, or at the flush of the enclosing :func:`together`."""
    pending = _pending()
    if pending is None:
        _sync(path, True)
    elif (path, True) not in pending:
        pending.append((path, True))


def flush(*files: Path) -> None:
    """Make this thread's pending syncs and those of `files` (new files) durable, all at once; raises the
    first error after every sync has returned (the caller then publishes nothing)."""
    pending = _pending() or []
    work = [*pending, *((f, False) for f in files)]
    pending.clear()
    if not work:
        return
    if len(work) == 1 or WORKERS <= 0:
        for item in work:
            _sync(*item)
        return
    futures: list[Future[None]] = [_executor().submit(_sync, *item) for item in work[1:]]
    errors: list[BaseException] = []
    try:
        _sync(*work[0])
    except BaseException as exc:  # noqa: BLE001 - raised below, once the other syncs are done
        errors.append(exc)
    for future in futures:
        failed = future.exception()
        if failed is not None:
            errors.append(failed)
    if errors:
        raise errors[0]


def _sync(path: Path, folder: bool) -> None:
    if folder:
        disk.current().sync_dir(path)
        return
    # a new descriptor of the same file: its dirty pages and any write error not yet reported are the file's,
    # not the descriptor's (fsync needs no write access on Linux); a file gone since raises, and nothing is published
    with open(path, "rb") as fh:
        disk.current().sync(fh)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="hybrid-flush")
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's flushing threads do not exist there; start new ones when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
