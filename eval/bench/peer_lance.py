"""The peer comparison's LanceDB side.

A table (doc_id, content, vector), its native FTS index on ``content`` (English: simple tokenizer,
English stemming and stop words, lower case, ASCII folding, tokens over 40 bytes dropped - the same
settings as hybrid's analyzer; Chinese: every base tokenizer LanceDB offers that segments Chinese
offline, see ``--lance-zh``), no vector index (exact search). Runs: ``lance-bm25``, ``lance-dense``
(cosine), ``lance-hybrid-rrf`` (its hybrid query, ``.vector(v).text(q)`` with ``RRFReranker(K=60)``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from bench.peer_config import RRF_K, WARMUP, K
from hybrid.eval import RunConfig, RunResult


def lance_table(db: Any, name: str, rows: list[dict[str, str]], vectors: np.ndarray, fts: dict[str, Any]) -> Any:
    import pyarrow as pa

    data = pa.table(
        {
            "doc_id": pa.array([r["doc_id"] for r in rows], pa.string()),
            "content": pa.array([r["content"] for r in rows], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]),
        }
    )
    table = db.create_table(name, data, mode="overwrite")
    table.create_fts_index("content", replace=True, with_position=False, **fts)
    return table


def lance_search(table: Any, mode: str, text: str, vec: np.ndarray) -> list[str]:
    from lancedb.rerankers import RRFReranker

    if mode == "fts":
        q = table.search(text, query_type="fts", fts_columns="content")
    elif mode == "vector":
        q = table.search(vec, query_type="vector", vector_column_name="vector").distance_type("cosine")
    else:
        q = (
            table.search(query_type="hybrid", vector_column_name="vector", fts_columns="content")
            .vector(vec)
            .text(text)
            .distance_type("cosine")
            .rerank(RRFReranker(K=RRF_K))
        )
    return q.limit(K).select(["doc_id"]).to_arrow()["doc_id"].to_pylist()


def run_lance(
    table: Any,
    name: str,
    mode: str,
    queries: dict[str, str],
    qvecs: dict[str, np.ndarray],
    ignore_identical_ids: bool,
    errors: list[str],
) -> RunResult:
    """One LanceDB run, timed like `hybrid.eval.execute` (rank-encoded scores; a failing query returns nothing)."""
    for qid, text in list(queries.items())[:WARMUP]:
        with contextlib.suppress(Exception):  # failures are counted in the timed pass below
            lance_search(table, mode, text, qvecs[qid])
    result = RunResult(RunConfig(name, "hybrid" if mode == "hybrid" else mode), {})
    for qid, text in queries.items():
        start = time.perf_counter()
        try:
            ids = lance_search(table, mode, text, qvecs[qid])
        except Exception as exc:  # a peer's failure is a result, recorded and reported
            ids = []
            errors.append(f"{name} {qid} {text[:50]!r}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        done = time.perf_counter()
        if ignore_identical_ids:
            ids = [d for d in ids if d != qid]
        result.run[qid] = {d: float(len(ids) - rank) for rank, d in enumerate(ids)}
        result.latency_ms.append((done - start) * 1e3)
        result.embed_ms.append(0.0)
    return result
