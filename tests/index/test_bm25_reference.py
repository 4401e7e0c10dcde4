"""BM25 ranking agrees with a reference BM25 (rank_bm25, Lucene/tantivy variant) on Cranfield.

The reference sees exactly the tokens the index sees (``Analyzer().terms``), scores
a query as a sum over its terms with repeats (as hybrid weights a repeated query
term by its count), and uses k1 = 1.2, b = 0.75 and idf = ln(1 + (N - n + 0.5) / (n + 0.5)).
Tantivy quantizes document lengths (fieldnorms), so scores differ slightly and
near-ties may swap; the top 10 must still overlap by at least 90% on average.

The collection is read from ``$HYBRID_DATA/cranfield`` (default: ``<repo>/../shared/data``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.index.analyzer import Analyzer

rank_bm25 = pytest.importorskip("rank_bm25")

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATA = Path(os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data")))
CRANFIELD = DATA / "cranfield"
K1, B = 1.2, 0.75
K = 10
MIN_OVERLAP = 0.9


class LuceneBM25(rank_bm25.BM25Okapi):
    """BM25Okapi with tantivy's (Lucene's) idf, which is never negative and has no epsilon floor."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        n = self.corpus_size
        self.idf = {word: math.log(1 + (n - df + 0.5) / (df + 0.5)) for word, df in nd.items()}


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def cranfield() -> tuple[list[dict], list[dict]]:
    if not (CRANFIELD / "corpus.jsonl").exists() or not (CRANFIELD / "queries.jsonl").exists():
        pytest.skip(f"Cranfield not found under {CRANFIELD}: set HYBRID_DATA to the shared data folder")
    return _read_jsonl(CRANFIELD / "corpus.jsonl"), _read_jsonl(CRANFIELD / "queries.jsonl")


def test_reference_idf_is_lucenes() -> None:
    bm = LuceneBM25([["a", "b"], ["a"], ["c"]], k1=K1, b=B)
    assert bm.idf["a"] == pytest.approx(math.log(1 + (3 - 2 + 0.5) / (2 + 0.5)))
    assert bm.idf["c"] == pytest.approx(math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)))
    # a repeated query term counts twice, as in hybrid's Match
    assert bm.get_scores(["c", "c"])[2] == pytest.approx(2 * bm.get_scores(["c"])[2])


def test_bm25_top10_matches_reference_on_cranfield(
    cranfield: tuple[list[dict], list[dict]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    corpus, queries = cranfield
    assert len(queries) == 225
    doc_ids = [d["_id"] for d in corpus]
    texts = [f"{d.get('title') or ''} {d.get('text') or ''}" for d in corpus]

    db = hybrid.connect(tmp_path_factory.mktemp("bm25") / "db")
    table = db.create_table("cranfield", pa.table({"doc_id": doc_ids, "text": texts}))
    table.create_fts_index(["text"])

    analyzer = Analyzer()
    reference = LuceneBM25([analyzer.terms(t) for t in texts], k1=K1, b=B)
    ids = np.array(doc_ids)

    overlaps = []
    skipped = 0
    for q in queries:
        terms = analyzer.terms(q["text"])
        scores = reference.get_scores(terms)
        if int((scores > 0).sum()) < K:
            skipped += 1
            continue
        order = np.lexsort((np.arange(len(scores)), -scores))[:K]
        expected = set(ids[order].tolist())
        got = table.search(q["text"]).select(["doc_id"]).limit(K).to_arrow().column("doc_id").to_pylist()
        assert len(got) == K, f"query {q['_id']}: {len(got)} results"
        overlaps.append(len(expected & set(got)) / K)

    mean = float(np.mean(overlaps))
    exact = sum(o == 1.0 for o in overlaps)
    print(
        f"\nBM25 vs reference on Cranfield: mean overlap@{K} = {mean:.4f} over {len(overlaps)} queries "
        f"({skipped} skipped, {exact} identical top-{K} sets, min {min(overlaps):.1f})"
    )
    assert mean >= MIN_OVERLAP, f"mean overlap@{K} {mean:.4f} < {MIN_OVERLAP}"
