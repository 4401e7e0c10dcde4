"""Deleted rows an index still holds are skipped exactly (:meth:`FullTextIndex.search`'s `excluded`):
the first fetch goes a little deeper than k (deleted rows are spread like the rest), and deeper again
when the deleted rows are the best hits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.index.fulltext import FullTextIndex
from hybrid.index.text_query import Match


@pytest.mark.parametrize("where", ["best", "spread"])
def test_excluded_rows_are_skipped_and_the_top_k_is_exact(tmp_path: Path, where: str) -> None:
    rng = np.random.default_rng(4)
    rows = [{"id": i, "text": " ".join(["alpha"] * int(rng.integers(1, 6)) + [f"w{i % 40}"] * 3)} for i in range(3_000)]
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows)
    t.create_fts_index(["text"])
    view = t.indexed_snapshot()
    index = view.index(next(e for e in view.entries() if e.kind == "fts"))
    assert isinstance(index, FullTextIndex)
    query = index.compile(Match("alpha w3"))
    assert query is not None
    every, scores = index.search(query, 3_000)
    # the 300 best hits deleted (a first fetch of k + a margin finds none alive), or 300 anywhere
    dead = every[:300] if where == "best" else rng.choice(every, 300, replace=False)
    dead = np.sort(dead.astype(np.uint64))
    for k in (1, 10, 50):
        ids, got = index.search(query, k, excluded=dead)
        alive = ~np.isin(every, dead)
        assert ids.tolist() == every[alive][:k].tolist()
        assert got.tolist() == scores[alive][:k].tolist()
