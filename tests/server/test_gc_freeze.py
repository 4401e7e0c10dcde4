"""A started worker keeps its start-up heap out of the garbage collector's full collections (gc.freeze)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from fastapi.testclient import TestClient

from hybrid.server import create_app
from tests.server.conftest import make_config


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


def test_started_app_freezes_the_heap_after_collecting_and_unfreezes_when_stopped(tmp_path: Path) -> None:
    app = create_app(tmp_path / "db", make_config())
    cycle = _Node()
    gone = weakref.ref(cycle)
    del cycle  # garbage now, but still in memory until a collection finds it
    assert gone() is not None
    with TestClient(app) as started:
        assert started.get("/v1/ready").json()["status"] == "ready"
        assert gone() is None  # collected before the freeze, not frozen in for good
        assert gc.get_freeze_count() > 10_000  # the modules of numpy, pyarrow, DuckDB ... are out of reach
    assert gc.get_freeze_count() == 0
