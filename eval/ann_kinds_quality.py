#!/usr/bin/env python
"""nDCG@10 of dense retrieval through each vector index kind on real embeddings (SciFact, NFCorpus).

Documents (``title. text``) and judged test questions are embedded by the default embedder
(``OnnxMiniLMEmbedder()``: all-MiniLM-L6-v2, int8 ONNX); document vectors are cached under
``--work`` with the key ``eval/default_embedder.py`` uses, so its SciFact cache is reused. For
each kind one table is searched with each question's vector (top 100, default settings of the
kind, no tuning) and scored with ``hybrid.eval.metrics`` (trec_eval's code); exact search (no
index) is the reference.

    python eval/ann_kinds_quality.py [--data DIR] [--work DIR]

Writes ``eval/results/ann_kinds_quality.json`` and ``.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from query_embed import cached_vectors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data"))
DEFAULT_WORK = os.environ.get("HYBRID_WORK", str(Path.home() / ".cache" / "hybrid" / "default_embedder"))
KINDS = ("exact", "hnsw", "hnsw_int8", "ivf_pq", "ivf_rabitq")
TOLERANCE = 0.005


def collection_scores(name: str, data: Path, work: Path) -> dict[str, Any]:
    import hybrid
    from hybrid.embedders import OnnxMiniLMEmbedder
    from hybrid.eval.collection import load_beir
    from hybrid.eval.metrics import evaluate

    coll = load_beir(data / name)
    rows = coll.documents()
    contents = [r["content"] for r in rows]
    doc_ids = [r["doc_id"] for r in rows]
    texts = hashlib.sha256(json.dumps([[r["doc_id"], c] for r, c in zip(rows, contents)]).encode()).hexdigest()
    e = OnnxMiniLMEmbedder(show_progress=False)
    key = {"embedder": repr(e), "config": json.dumps(e.to_config(), sort_keys=True), "documents": texts}
    docs = cached_vectors(work / name, "documents-onnx", key, lambda: e.embed_documents(contents))
    queries = coll.judged_queries
    qvec = np.stack([e.embed_query(t) for t in queries.values()]).astype(np.float32)
    folder = Path(tempfile.mkdtemp(prefix="ann-quality-"))
    table = hybrid.connect(folder, upkeep=None).create_table(
        name,
        pa.table({
            "doc_id": pa.array(doc_ids),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(docs.ravel()), docs.shape[1]),
        }),
    )  # fmt: skip
    out: dict[str, Any] = {"documents": len(rows), "queries": len(queries)}
    for kind in KINDS:
        t0 = time.perf_counter()
        if kind != "exact":
            table.create_vector_index("vector", kind=kind, replace=True)  # type: ignore[arg-type]
        build = time.perf_counter() - t0
        run = {}
        for qid, v in zip(queries, qvec):
            hits = table.search(v, vector_column="vector").limit(100).select(["doc_id"]).to_arrow()
            ids = hits.column("doc_id").to_pylist()
            run[qid] = {d: float(len(ids) - r) for r, d in enumerate(ids)}
        mean, _ = evaluate(run, coll.qrels, ["nDCG@10", "R@100"])
        stats = table.index_stats()[0] if kind != "exact" else {}
        out[kind] = {**mean, "build_seconds": round(build, 2), "codes": stats.get("codes", stats.get("index_type"))}
        print(f"  {name} {kind}: nDCG@10 {mean['nDCG@10']:.4f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(DEFAULT_DATA))
    ap.add_argument("--work", type=Path, default=Path(DEFAULT_WORK))
    ap.add_argument("--collections", default="scifact,nfcorpus")
    a = ap.parse_args()
    report = {c: collection_scores(c, a.data, a.work) for c in a.collections.split(",")}
    (REPO / "eval" / "results" / "ann_kinds_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Vector index kinds on real embeddings: nDCG@10 (default embedder, int8 ONNX MiniLM)",
        "",
        "`python eval/ann_kinds_quality.py`: each kind at its default settings (no tuning), top 100 per",
        f"judged test question, trec_eval's nDCG@10; target: within {TOLERANCE} of the float HNSW.",
        "",
        "| collection | kind | nDCG@10 | minus float HNSW | R@100 | build s |",
        "|---|---|---|---|---|---|",
    ]
    for c, r in report.items():
        for kind in KINDS:
            x = r[kind]
            diff = x["nDCG@10"] - r["hnsw"]["nDCG@10"]
            lines.append(
                f"| {c} | {kind} | {x['nDCG@10']:.4f} | {diff:+.4f} | {x['R@100']:.4f} | {x['build_seconds']:.1f} |"
            )
    (REPO / "eval" / "results" / "ann_kinds_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
