"""trec_eval-compatible metrics (through ir-measures) and a paired significance test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hybrid.errors import require

Run = dict[str, dict[str, float]]
"""``{query_id: {doc_id: score}}``; higher scores rank first."""

DEFAULT_MEASURES = ("nDCG@10", "R@100", "RR@10", "AP@100", "P@10")


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean over judged queries, per-query values) for each measure name, e.g. ``"nDCG@10"``.

    Judged queries missing from the run score 0 (as ``trec_eval -c``).

    Example:
        >>> mean, per_query = evaluate({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 1}}, ["RR@10"])
        >>> mean["RR@10"], per_query["q1"]["RR@10"]
        (0.5, 0.5)
    """
    ir: Any = require("ir_measures", "eval")
    parsed = [ir.parse_measure(m) for m in measures]
    # every measure through pytrec_eval (trec_eval's code): ir-measures would send some measures to
    # other providers that break score ties differently
    provider = ir.providers.registry["pytrec_eval"]
    names = {str(p): m for p, m in zip(parsed, measures)}
    per_query: dict[str, dict[str, float]] = {q: {m: 0.0 for m in measures} for q in qrels}
    qrels_ = {q: dict(r) for q, r in qrels.items()}
    run_ = {q: dict(d) for q, d in run.items() if q in qrels and d}
    for metric in provider.evaluator(parsed, qrels_).iter_calc(run_):
        if metric.query_id in per_query:
            per_query[metric.query_id][names[str(metric.measure)]] = float(metric.value)
    mean = {m: float(np.mean([v[m] for v in per_query.values()])) if per_query else 0.0 for m in measures}
    return mean, per_query


def paired_randomization_test(a: Sequence[float], b: Sequence[float], trials: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that runs `a` and `b` (per-query values, same order) differ in mean.

    Fisher's randomization test: each query's pair is swapped at random.

    Example:
        >>> paired_randomization_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
        1.0
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired test needs the same queries in both runs ({len(x)} vs {len(y)})")
    d = x - y
    observed = abs(d.mean()) if len(d) else 0.0
    if observed == 0.0:
        return 1.0
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(trials, len(d)))
    extreme = np.abs((signs * d).mean(axis=1)) >= observed - 1e-12
    return float((extreme.sum() + 1) / (trials + 1))
