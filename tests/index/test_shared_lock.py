"""The vector index's readers-writer lock: exclusion holds and neither side starves the other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from hybrid.index.vector import SharedLock

Acquire = Callable[[], AbstractContextManager[None]]
LIVENESS_S = 60.0  # a liveness bound, not a speed target: a starved side never gets through at all


def hammer(lock_of: Acquire, stop: threading.Event, inside: list[int], sleep: float) -> None:
    while not stop.is_set():
        with lock_of():
            inside.append(1)
            time.sleep(sleep)
            inside.pop()


def run_against(hammering: str, wanted: str) -> int:
    """Get `wanted` 50 times while other threads take `hammering` back to back; returns how many times."""
    lock = SharedLock()
    stop = threading.Event()
    writers_inside: list[int] = []
    readers_inside: list[int] = []
    violations: list[str] = []

    def check() -> None:
        if len(writers_inside) > 1 or (writers_inside and readers_inside):
            violations.append(f"writers {len(writers_inside)}, readers {len(readers_inside)}")

    def side(kind: str) -> Acquire:
        return lock.exclusive if kind == "exclusive" else lock.shared

    inside = writers_inside if hammering == "exclusive" else readers_inside
    threads = [
        threading.Thread(target=hammer, args=(side(hammering), stop, inside, 0.0005), daemon=True) for _ in range(3)
    ]
    for t in threads:
        t.start()
    got = 0

    def want() -> None:
        nonlocal got
        mine = writers_inside if wanted == "exclusive" else readers_inside
        for _ in range(50):
            with side(wanted)():
                mine.append(1)
                check()
                mine.pop()
            got += 1

    waiter = threading.Thread(target=want, daemon=True)
    waiter.start()
    waiter.join(LIVENESS_S)
    stop.set()
    for t in threads:
        t.join(LIVENESS_S)
    assert not violations, violations[:3]
    return got


def test_readers_get_in_while_writers_loop() -> None:
    assert run_against("exclusive", "shared") == 50


def test_a_writer_gets_in_while_readers_loop() -> None:
    assert run_against("shared", "exclusive") == 50
