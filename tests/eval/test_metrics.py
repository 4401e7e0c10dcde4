"""Metrics against hand-computed trec_eval values, and the paired randomization test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.eval import evaluate, paired_randomization_test

QRELS = {"q1": {"d1": 2, "d3": 1, "d9": 0}, "q2": {"d5": 1}, "q3": {"d7": 1}}
RUN = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 2.0, "d5": 1.0}}  # q3 retrieved nothing


def test_ndcg_recall_mrr_precision_by_hand() -> None:
    mean, per_query = evaluate(RUN, QRELS, ["nDCG@10", "R@2", "RR@10", "P@2", "AP@100"])
    # trec_eval's ndcg_cut: gain = the relevance grade, discounted by log2(rank + 1)
    dcg = 2 / math.log2(2) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert per_query["q1"]["nDCG@10"] == pytest.approx(dcg / ideal)
    assert per_query["q2"]["nDCG@10"] == pytest.approx(1 / math.log2(3))
    assert per_query["q3"]["nDCG@10"] == 0.0  # judged but missing from the run counts as 0
    assert per_query["q1"]["R@2"] == pytest.approx(0.5)
    assert per_query["q2"]["RR@10"] == pytest.approx(0.5)
    assert per_query["q1"]["P@2"] == pytest.approx(0.5)
    assert per_query["q1"]["AP@100"] == pytest.approx((1 + 2 / 3) / 2)
    assert mean["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_unjudged_queries_in_the_run_are_ignored() -> None:
    mean, per_query = evaluate({**RUN, "extra": {"d1": 1.0}}, QRELS, ["RR@10"])
    assert set(per_query) == {"q1", "q2", "q3"} and mean["RR@10"] == pytest.approx(0.5)


def test_unknown_measure_is_refused() -> None:
    with pytest.raises(Exception, match="nope"):
        evaluate(RUN, QRELS, ["nope@3"])


def test_randomization_test_separates_real_from_no_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200)
    assert paired_randomization_test(a, a) == 1.0
    assert paired_randomization_test(a, a + 0.05) < 0.001
    assert paired_randomization_test(a, a + rng.normal(0, 0.01, 200)) > 0.05
    with pytest.raises(ValueError, match="same queries"):
        paired_randomization_test([1.0], [1.0, 2.0])


def test_ties_are_broken_the_same_way_for_every_measure() -> None:
    _, per_query = evaluate({"q": {"d1": 1.0, "d2": 1.0}}, {"q": {"d2": 1}}, ["RR@10", "nDCG@10", "P@1"])
    values = per_query["q"]
    assert values["RR@10"] == 1.0 and values["nDCG@10"] == 1.0 and values["P@1"] == 1.0  # trec_eval: d2 first
