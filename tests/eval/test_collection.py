"""Loading collections: BEIR folders (graded qrels, headers), TREC qrels, Python objects; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid.eval import from_objects, load_beir, read_qrels


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Cats", "text": "Cats purr."}, {"_id": "d2", "title": "", "text": "Dogs bark."}]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": "q1", "text": "purring"}, {"_id": "q2", "text": "barking"}, {"_id": "q3", "text": "unjudged"}]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td1\t0\n")
    return root


def test_load_beir(tmp_path: Path) -> None:
    c = load_beir(write_beir(tmp_path / "mini"))
    assert c.name == "mini" and len(c.corpus) == 2
    assert c.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d1": 0}}
    assert list(c.judged_queries) == ["q1", "q2"]
    rows = c.documents()
    assert rows[0]["content"] == "Cats. Cats purr." and rows[1]["content"] == "Dogs bark."


def test_missing_files_and_bad_lines_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        load_beir(tmp_path)
    root = write_beir(tmp_path / "bad")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"queries.jsonl:2: not JSON"):
        load_beir(root)


def test_trec_qrels_and_csv(tmp_path: Path) -> None:
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 d1 1\n1 0 d2 0\n2 0 d3 2\n")
    assert read_qrels(trec) == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 2}}
    csv = tmp_path / "qrels.csv"
    csv.write_text("query,doc,relevance\nq,d,1\n")
    assert read_qrels(csv) == {"q": {"d": 1}}


def test_from_objects_checks_judged_queries_have_text() -> None:
    c = from_objects({"a": "alpha text", "b": {"title": "B", "text": "beta"}}, {"q": "alpha"}, {"q": {"a": 1}})
    assert c.corpus["a"] == {"title": "", "text": "alpha text"}
    with pytest.raises(ValueError, match="no text"):
        from_objects({"a": "x"}, {}, {"q": {"a": 1}})


def test_from_table_reads_a_hybrid_table_and_judgment_tables(tmp_path: Path) -> None:
    import pyarrow as pa

    import hybrid
    from hybrid.eval import from_table

    db = hybrid.connect(tmp_path / "db")
    docs = db.create_table(
        "docs", [{"id": 7, "title": "Cats", "body": "Cats purr."}, {"id": 9, "title": "Dogs", "body": "Dogs bark."}]
    )
    queries = pa.table({"query_id": ["q1", "q2"], "text": ["purring", "barking"]})
    judged = pa.table({"query_id": ["q1", "q2"], "doc_id": ["7", "9"], "relevance": [2, 1]})
    c = from_table(docs, queries, judged, text_columns=["body"], title_column="title", name="mine")
    assert c.corpus == {"7": {"title": "Cats", "text": "Cats purr."}, "9": {"title": "Dogs", "text": "Dogs bark."}}
    assert c.judged_queries == {"q1": "purring", "q2": "barking"} and c.qrels == {"q1": {"7": 2}, "q2": {"9": 1}}
    qrels_file = tmp_path / "qrels.tsv"
    qrels_file.write_text("query-id\tcorpus-id\tscore\nq1\t7\t1\n")
    assert from_table(docs, {"q1": "purring"}, qrels_file, text_columns=["body"]).qrels == {"q1": {"7": 1}}
    with pytest.raises(ValueError, match="no column 'text'"):
        from_table(docs, {"q1": "purring"}, qrels_file)
    with pytest.raises(ValueError, match="not in the corpus"):
        from_table(docs, {"q1": "purring"}, {"q1": {"8": 1}}, text_columns=["body"])
