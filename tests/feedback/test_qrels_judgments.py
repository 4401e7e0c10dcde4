"""`judgments_from_qrels`: a qrels file's judgments over a table's rows by key, as `hybrid tune --qrels` reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hybrid
from hybrid.errors import FeedbackError
from hybrid.feedback.qrels import judgments_from_qrels


def test_qrels_judgments_map_keys_to_rows_and_name_unknown_ones(tmp_path: Path) -> None:
    table = hybrid.connect(tmp_path / "db").create_table(
        "docs", [{"id": f"d{i}", "text": f"text number {i}"} for i in range(5)]
    )
    rowid = {r["id"]: r["_rowid"] for r in table.to_arrow(["id"], with_rowid=True).to_pylist()}
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": q, "text": f"question {q}"}) for q in ("q1", "q2")) + "\n")
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td4\t1\n")
    js = judgments_from_qrels(table, qrels, queries)
    assert js.labels == {"question q1": {rowid["d1"]: 2.0, rowid["d3"]: 0.0}, "question q2": {rowid["d4"]: 1.0}}
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td9\t1\n")
    with pytest.raises(FeedbackError, match="judges 'd9', which no row of 'docs' has as id"):
        judgments_from_qrels(table, qrels, queries)
