"""Evaluation: test collections, runs through the public API, trec_eval metrics, significance, reports."""

from hybrid.eval.ann import AnnPoint, ann_curve
from hybrid.eval.collection import Collection, Qrels, from_objects, from_table, load_beir, load_queries, read_qrels
from hybrid.eval.export import read_run_json, read_trec_run, write_run_json, write_trec_run
from hybrid.eval.metrics import DEFAULT_MEASURES, Run, evaluate, paired_randomization_test
from hybrid.eval.report import Report, RunEntry, build_report, write_report
from hybrid.eval.runs import RunConfig, RunResult, build_table, execute

__all__ = [
    "DEFAULT_MEASURES",
    "AnnPoint",
    "Collection",
    "Qrels",
    "Report",
    "Run",
    "RunConfig",
    "RunEntry",
    "RunResult",
    "ann_curve",
    "build_report",
    "build_table",
    "evaluate",
    "execute",
    "from_objects",
    "from_table",
    "load_beir",
    "load_queries",
    "paired_randomization_test",
    "read_qrels",
    "read_run_json",
    "read_trec_run",
    "write_report",
    "write_run_json",
    "write_trec_run",
]
