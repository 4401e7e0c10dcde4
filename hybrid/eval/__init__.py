"""Evaluation: test collections, runs through the public API, trec_eval metrics, significance, reports."""

from hybrid.eval.collection import Collection, Qrels, from_objects, load_beir, read_qrels
from hybrid.eval.metrics import DEFAULT_MEASURES, Run, evaluate, paired_randomization_test
from hybrid.eval.runs import RunConfig, RunResult, build_table, execute

__all__ = [
    "DEFAULT_MEASURES",
    "Collection",
    "Qrels",
    "Run",
    "RunConfig",
    "RunResult",
    "build_table",
    "evaluate",
    "execute",
    "from_objects",
    "load_beir",
    "paired_randomization_test",
    "read_qrels",
]
