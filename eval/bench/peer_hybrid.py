"""The peer comparison's hybrid side.

``hybrid.eval.build_table`` with a `PrecomputedEmbedder` bound to the ``vector`` column (it looks the
cached vectors up by text; texts the library embeds on its own, such as the default query's
calibration pseudo-queries, go to the same model) and one BM25 index with the library's defaults
(``create_fts_index("content")``: language detected, its stemmer and stop words; Chinese also with
``tokenizer="jieba"`` as a diagnostic); no vector index (exact cosine). Runs through
``hybrid.eval.execute``: ``bm25``, ``dense``, ``hybrid-rrf`` (``RRF(k=60)``, equal branch weights:
LanceDB's pipeline), ``hybrid-default`` (no fusion or weights given: the library's default), and
``hybrid-rrf-d100`` (the same RRF with 100 candidates per branch, LanceDB's depth for a top-100 hybrid
query; a diagnostic).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import hybrid
from bench.peer_config import HYBRID_FTS, HYBRID_FTS_ZH_JIEBA, RRF_K, WARMUP, K
from bench.peer_vectors import PrecomputedEmbedder
from hybrid.eval import RunConfig, RunResult, build_table, execute
from hybrid.eval.collection import Collection
from hybrid.query.fusion import RRF

# RRF runs weigh both branches equally, as LanceDB's RRFReranker does (where RunConfig has branch weights)
EQUAL = {"weights": "equal"} if "weights" in {f.name for f in dataclasses.fields(RunConfig)} else {}


def rrf_config(name: str, fts_index: str = "bm25", depth: int | None = None) -> RunConfig:
    return RunConfig(
        name, "hybrid", fts_index=fts_index, vector_column="vector", fusion=RRF(k=RRF_K), depth=depth, **EQUAL
    )


def hybrid_configs() -> dict[str, RunConfig]:
    return {
        "bm25": RunConfig("bm25", "fts", fts_index="bm25"),
        "dense": RunConfig("dense", "vector", vector_column="vector"),
        "hybrid-rrf": rrf_config("hybrid-rrf"),
        # no fusion, no weights: whatever the library does by default
        "hybrid-default": RunConfig("hybrid-default", "hybrid", fts_index="bm25", vector_column="vector"),
        "hybrid-rrf-d100": rrf_config("hybrid-rrf-d100", depth=K),
    }


def run_hybrid(
    coll: Collection, embedder: PrecomputedEmbedder, queries: dict[str, str], zh: bool, root: Path
) -> tuple[dict[str, RunResult], float, str | None]:
    """hybrid's runs, the table build time, and how its default hybrid query fuses (from its plan)."""
    db = hybrid.connect(root / "hybrid")
    start = time.perf_counter()
    fts = {"bm25": HYBRID_FTS, "bm25-jieba": HYBRID_FTS_ZH_JIEBA} if zh else {"bm25": HYBRID_FTS}
    table = build_table(db, coll, embedders={"vector": embedder}, fts=fts)
    build_s = time.perf_counter() - start
    configs = hybrid_configs()
    if zh:  # the same pipeline over character uni+bigrams, the counterpart of LanceDB's ngram tokenizer
        configs["bm25 [jieba]"] = RunConfig("bm25 [jieba]", "fts", fts_index="bm25-jieba")
        configs["hybrid-rrf [jieba]"] = rrf_config("hybrid-rrf [jieba]", fts_index="bm25-jieba")
    results = {}
    warm = dict(list(queries.items())[:WARMUP])
    for name, cfg in configs.items():
        execute(table, cfg, warm, k=K, progress=False)
        results[name] = execute(
            table, cfg, queries, k=K, progress=False, ignore_identical_ids=coll.ignore_identical_ids
        )
    default_fusion = None
    with contextlib.suppress(Exception):  # the plan's wording is informative, not essential
        plan = table.search(next(iter(queries.values())), vector_column="vector", fts_index="bm25").explain()
        default_fusion = next((x.strip() for x in plan.splitlines() if x.strip().startswith("fuse:")), None)
    return results, build_s, default_fusion
