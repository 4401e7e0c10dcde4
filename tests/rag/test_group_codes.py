"""The numpy grouping of candidates by key codes (:func:`hybrid.query.grouping.group_codes`) against the
general :func:`hybrid.query.grouping.group`, alone and inside grouped searches on random tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.query import grouped, grouping

WORDS = ["kernel", "memory", "page", "cache", "disk", "network", "socket", "thread", "lock", "queue"]


def test_group_codes_matches_group_on_random_candidates() -> None:
    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(0, 80))
        ids = rng.choice(10_000, n, replace=False).astype(np.uint64)
        scores = np.round(rng.random(n), 1)  # rounded: ties between rows and between groups
        codes = rng.integers(-1, max(1, n // 4), n)  # -1: a null key, a group of its own
        keys = [None if c < 0 else int(c) for c in codes]
        n_groups, skip, per_group = int(rng.integers(1, 12)), int(rng.integers(0, 4)), int(rng.integers(1, 4))
        fast = grouping.group_codes(ids, scores, codes, n_groups, skip=skip, per_group=per_group)
        slow = grouping.group(ids, scores, keys, n_groups, skip=skip, per_group=per_group)
        assert fast.ids.tolist() == slow.ids.tolist(), trial
        assert fast.scores.tolist() == slow.scores.tolist(), trial
        assert fast.group_scores.tolist() == slow.group_scores.tolist(), trial
        assert fast.group_ranks.tolist() == slow.group_ranks.tolist(), trial
        assert fast.ids.dtype == slow.ids.dtype and fast.group_ranks.dtype == slow.group_ranks.dtype
        assert fast.n_groups == slow.n_groups and fast.stand_in is None


def _table(tmp_path: Path, seed: int) -> hybrid.Table:
    rng = np.random.default_rng(seed)
    n_docs = int(rng.integers(3, 25))
    rows = []
    for d in range(n_docs):
        for c in range(int(rng.integers(1, 8))):
            text = " ".join(rng.choice(WORDS, int(rng.integers(2, 7))).tolist())
            doc = None if rng.random() < 0.1 else f"d{d}"  # some chunks without a parent
            rows.append({"doc_id": doc, "chunk_no": c, "lang": "en" if d % 2 else "de", "text": text})
    db = hybrid.connect(tmp_path / f"db{seed}", upkeep=None)
    t = db.create_table("chunks", rows, embedding={"vector": ("text", HashingEmbedder(dim=16))})
    t.create_fts_index("text")
    t.set_chunking(parent="doc_id", position="chunk_no")
    t.delete(f"chunk_no = {int(rng.integers(0, 4))} AND lang = 'de'")
    return t


def _search(t: hybrid.Table, text: str, **group: Any) -> Any:
    return t.search(text, query_type="hybrid").group_by("doc_id", **group)


@pytest.mark.parametrize("seed", range(6))
def test_grouped_search_gives_the_same_rows_by_codes_as_by_keys(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _table(tmp_path, seed)
    queries = []
    for text in ("page disk", "kernel lock queue", "socket"):
        for per_group in (1, 2):
            q = _search(t, text, per_group=per_group).limit(4)
            queries += [q, q.where("lang = 'en'"), q.offset(1), q.where("lang = 'de'", prefilter=False)]
    fast = [q.to_arrow() for q in queries]
    taken: list[bool] = []
    real = grouped._group_by_codes

    def seen(*a: Any) -> Any:
        found = real(*a)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(grouped, "_group_by_codes", seen)
    assert all(q.to_arrow().equals(f) for q, f in zip(queries, fast))
    assert len(taken) >= len(queries) and all(taken)  # the numpy path grouped every search
    monkeypatch.setattr(grouped, "_group_by_codes", lambda *a: None)  # the general path
    for q, f in zip(queries, fast):
        slow = q.to_arrow()
        assert slow.equals(f), (q.explain(), slow.to_pylist(), f.to_pylist())
