"""eval/bench_ann_kinds.py's exact truth (kept per batch by partition) equals a full sort of every score;
its generated texts are deterministic per batch and each query's words come from its source row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "eval" / "bench_ann_kinds.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ann_kinds", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ann_kinds"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("nq", [30, 130])  # fewer queries than categories, and more (categories hold 1 or 2)
def test_truth_equals_a_full_sort(bench: ModuleType, monkeypatch: pytest.MonkeyPatch, nq: int) -> None:
    monkeypatch.setattr(bench, "BATCH", 700)  # several batches: the running top 10 is merged across them
    rows = 2_000
    q, truth, truth_1pct = bench.queries_and_truth(rows, nq, seed=3)
    corpus = np.concatenate([x for _, x in bench.batches(rows, 3)])
    picks = np.sort(np.random.default_rng([3, 4]).choice(rows, size=nq, replace=False))
    assert np.allclose(bench.picked_rows(rows, 3, picks), corpus[picks], atol=1e-6)
    sims = q @ corpus.T
    assert np.array_equal(np.sort(truth, 1), np.sort(np.argsort(-sims, 1)[:, :10], 1))
    ids = np.arange(rows)
    for i in range(nq):
        allowed = ids[(ids * 7919) % 100 == i % 100]
        want = allowed[np.argsort(-sims[i, allowed])[:10]]
        assert sorted(truth_1pct[i].tolist()) == sorted(want.tolist())


def test_texts_are_deterministic_and_queries_use_their_rows_words(bench: ModuleType, monkeypatch) -> None:
    monkeypatch.setattr(bench, "BATCH", 500)
    rows = 1_200
    first = [b.column("text").to_pylist() for b in bench.record_batches(rows, 5, text=True)]
    again = [b.column("text").to_pylist() for b in bench.record_batches(rows, 5, text=True)]
    assert first == again and sum(map(len, first)) == rows
    assert all(len(t.split()) == bench.WORDS for batch in first for t in batch)
    texts = [t for batch in first for t in batch]
    picks = np.sort(np.random.default_rng([5, 4]).choice(rows, size=40, replace=False))
    for p, words in zip(picks.tolist(), bench.query_texts(rows, 40, 5)):
        assert len(words.split()) == 2 and set(words.split()) <= set(texts[p].split())
