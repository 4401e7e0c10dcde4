"""Test-wide hygiene, for tests/ and the doctests in hybrid/: nothing is written outside pytest's
temporary folders. Derived model files go to one folder of the session, and ``tempfile`` (used by
doctests and by the library's own scratch folders) makes its folders in the test's `tmp_path`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Derived model files (the int8 ONNX MiniLM) go to a folder of this session, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("HYBRID_CACHE_DIR"):
            mp.setenv("HYBRID_CACHE_DIR", str(tmp_path_factory.mktemp("hybrid-cache")))
        yield


@pytest.fixture(autouse=True)
def _temp_files_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tempfile.mkdtemp()`` and friends make their folders in this test's `tmp_path`."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _without_ray() -> list[str]:
    """hybrid/ray needs the ray extra: its modules are not collected (for doctests) where Ray is missing."""
    import importlib.util

    return ["hybrid/ray/*"] if importlib.util.find_spec("ray") is None else []


def _ray_elsewhere() -> list[str]:
    """tests/scale run in an interpreter of their own (tests/test_ray_suite.py): Ray starts its cluster's
    processes with a ``preexec_fn`` after fork, which is unsafe in a process that already runs many native
    threads (onnxruntime, torch, faiss): in the whole suite's process it crashed with a segmentation fault."""
    return [] if os.environ.get(RAY_SUITE_ENV) else ["tests/scale/*"]


RAY_SUITE_ENV = "HYBRID_RAY_SUITE"
collect_ignore_glob = _without_ray() + _ray_elsewhere()
