#!/usr/bin/env python
"""Peer comparison: the same retrieval pipeline through `hybrid` and through LanceDB, on the same vectors.

For each BEIR-format collection (test split) the documents' ``content`` ("title. text",
what `hybrid.eval` indexes) is embedded once with the packaged all-MiniLM-L6-v2
(``SentenceTransformerEmbedder()``; cached as .npy under ``--work``) and every judged
query once with ``embed_query``. Both systems get exactly these vectors:

* hybrid  - ``hybrid.eval.build_table`` with the vectors bound to the ``vector`` column and one
  BM25 index with the library's defaults, no vector index (exact cosine); runs ``bm25``, ``dense``,
  ``hybrid-rrf``, ``hybrid-default`` and ``hybrid-rrf-d100`` (``bench/peer_hybrid.py``).
* LanceDB - a table (doc_id, content, vector) with its native FTS index on ``content`` (English
  settings matching hybrid's analyzer; Chinese: its offline tokenizers, ``--lance-zh``), no vector
  index (exact search); runs ``lance-bm25``, ``lance-dense``, ``lance-hybrid-rrf``
  (``bench/peer_lance.py``).

Every run returns the top 100. Metrics: nDCG@10, R@100, RR@10 (ir-measures,
trec_eval definitions); p: paired randomization test (10,000 trials) on nDCG@10.
Latency is per query, one at a time, query embedding excluded for both systems. English
collections also get analyzer probes: which stop words, and which words per query word,
each system's BM25 drops or conflates (``bench/peer_probe.py``).

    python eval/peer_lancedb.py [--data ../shared/data] [--collections scifact,nfcorpus] [--limit-queries N]

Writes eval/results/peer_lancedb.md and .json (``--name`` changes the stem).  The pieces are in the
``bench`` package next to this script: ``bench/peer_config.py`` (settings), ``bench/peer_vectors.py``
(the shared vectors), ``bench/peer_run.py`` (one collection), ``bench/peer_report.py`` (the Markdown),
and the shared frame ``bench/frame.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `bench` package next to this script

from bench.frame import RESULTS_DIR, git_state, log, quiet_lancedb, write_results  # noqa: E402

quiet_lancedb()  # before LanceDB is imported

from bench.peer_config import COLLECTIONS, LANCE_ZH_TOKENIZERS, default_data  # noqa: E402
from bench.peer_probe import stopword_probe  # noqa: E402
from bench.peer_report import NOTES, to_markdown, versions  # noqa: E402
from bench.peer_run import run_collection  # noqa: E402
from bench.peer_vectors import PrecomputedEmbedder, _digest, collection_vectors  # noqa: E402

from hybrid.embedders import SentenceTransformerEmbedder  # noqa: E402

# fusion_study.py, bm25_params.py, bm25_peers.py and multilingual.py import these names from here
__all__ = ["PrecomputedEmbedder", "_digest", "collection_vectors", "default_data", "log", "main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--collections", default=COLLECTIONS, help=f"comma-separated (default {COLLECTIONS})")
    parser.add_argument("--limit-queries", type=int, default=None, help="evaluate only the first N judged queries")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hybrid-peer-work"), help="vector cache and scratch")
    parser.add_argument(
        "--lance-zh",
        default=",".join(LANCE_ZH_TOKENIZERS),
        help="LanceDB FTS base tokenizers to try on Chinese collections (best BM25 nDCG@10 is used)",
    )
    parser.add_argument("--no-probe", dest="probe", action="store_false", help="skip the English analyzer probe")
    parser.add_argument("--name", default="peer_lancedb", help="results file stem")
    args = parser.parse_args()
    args.lance_zh = [t.strip() for t in args.lance_zh.split(",") if t.strip()]
    unknown = set(args.lance_zh) - set(LANCE_ZH_TOKENIZERS)
    if unknown:
        parser.error(f"unknown --lance-zh tokenizers {sorted(unknown)}; choose from {list(LANCE_ZH_TOKENIZERS)}")
    args.work.mkdir(parents=True, exist_ok=True)

    # LanceDB's jieba tokenizer reads <model home>/jieba/default/dict.txt: the installed Python jieba's dictionary
    model_home = args.work / "lance_language_models"
    jieba_dict = model_home / "jieba" / "default" / "dict.txt"
    try:
        import jieba

        source = Path(jieba.__file__).parent / "dict.txt"
        if not jieba_dict.exists() or jieba_dict.stat().st_size != source.stat().st_size:
            jieba_dict.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, jieba_dict)
    except ImportError:
        pass
    os.environ["LANCE_LANGUAGE_MODEL_HOME"] = str(model_home)
    import lancedb

    model: list[SentenceTransformerEmbedder] = []

    def embedder() -> SentenceTransformerEmbedder:
        if not model:
            model.append(SentenceTransformerEmbedder(show_progress=False))
        return model[0]

    args.embedder = embedder
    import torch

    report: dict[str, Any] = {
        "command": " ".join(shlex.quote(x) for x in ["python", "eval/peer_lancedb.py", *sys.argv[1:]]).replace(
            shlex.quote(str(args.work)), "<work>"
        ),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.cpu_count()} CPUs (shared), {platform.platform()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "loadavg_at_start": os.getloadavg(),
        "versions": versions(),
        "git": git_state(),
        "lance_language_model_home": "<work>/lance_language_models",
        "collections": {},
        "notes": NOTES,
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        lance_db = lancedb.connect(str(root / "lancedb"))
        if args.probe:
            report["stopword_probe"] = stopword_probe(lance_db, 384)
        for name in args.collections.split(","):
            coll_name, res = run_collection(args, name.strip(), root, lance_db)
            report["collections"][coll_name] = res
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["loadavg_at_end"] = os.getloadavg()
    report["git_at_end"] = git_state()  # other work may land in the checkout while this runs
    out = RESULTS_DIR
    write_results(out, args.name, report, to_markdown(report), ensure_ascii=False)
    log(f"\nwrote {out / (args.name + '.json')} and {out / (args.name + '.md')} in {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
