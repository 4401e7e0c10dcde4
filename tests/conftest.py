"""Shared fixtures: a fresh database folder and a small documents table."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

import hybrid

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
# derived model files (the int8 ONNX MiniLM) go to a folder of this session, not the user's cache
os.environ.setdefault("HYBRID_CACHE_DIR", tempfile.mkdtemp(prefix="hybrid-test-cache-"))


@pytest.fixture
def db(tmp_path: Path) -> hybrid.Database:
    return hybrid.connect(tmp_path / "db")


def make_rows(ids: range | list[int], dim: int = 4, seed: int = 0) -> list[dict]:
    """Rows whose content is a pure function of `id` (so tests can recompute it)."""
    rows = []
    for i in ids:
        rng = np.random.default_rng(seed * 1_000_003 + i)
        rows.append(
            {
                "id": i,
                "text": f"document number {i}",
                "lang": "en" if i % 2 == 0 else "de",
                "year": 2000 + i % 25,
                "vector": rng.random(dim, dtype=np.float32).tolist(),
            }
        )
    return rows


@pytest.fixture
def docs(db: hybrid.Database) -> hybrid.Table:
    return db.create_table("docs", make_rows(range(20)))
