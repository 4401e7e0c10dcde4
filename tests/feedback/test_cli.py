"""``hybrid feedback import`` (BEIR and TREC qrels) and ``hybrid feedback show``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import hybrid
from hybrid.cli import app


def beir(tmp_path: Path) -> Path:
    folder = tmp_path / "coll"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in [("q1", "first question"), ("q2", "second one")])
    )
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    return folder


def test_import_beir_and_trec_qrels(tmp_path: Path) -> None:
    folder = beir(tmp_path)
    db = hybrid.connect(tmp_path / "db")
    db.create_table("docs", [{"id": f"d{i}", "text": f"doc {i}"} for i in range(5)])
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["feedback", "import", str(folder / "qrels" / "train.tsv"), "--db", str(tmp_path / "db"), "--table", "docs"],
    )
    assert r.exit_code == 0, r.output
    rows = db.sql("select query, key, label, source from docs__feedback order by key").to_pylist()
    assert rows == [
        {"query": "first question", "key": "d1", "label": 1.0, "source": "qrels:train.tsv"},
        {"query": "first question", "key": "d2", "label": 0.0, "source": "qrels:train.tsv"},
        {"query": "second one", "key": "d3", "label": 2.0, "source": "qrels:train.tsv"},
    ]
    trec = tmp_path / "run.qrels"
    trec.write_text("q2 0 d4 1\n")
    r = runner.invoke(app, ["feedback", "import", str(trec), "--queries", str(folder / "queries.jsonl"),
                            "--db", str(tmp_path / "db"), "--table", "docs"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["feedback", "show", "--db", str(tmp_path / "db"), "--table", "docs"])
    assert r.exit_code == 0 and "4 judgments" in r.output


def test_a_qrels_line_naming_an_unknown_document_writes_nothing(tmp_path: Path) -> None:
    folder = beir(tmp_path)
    db = hybrid.connect(tmp_path / "db")
    db.create_table("docs", [{"id": "d1", "text": "only one"}])
    r = CliRunner().invoke(
        app,
        ["feedback", "import", str(folder / "qrels" / "train.tsv"), "--db", str(tmp_path / "db"), "--table", "docs"],
    )
    assert r.exit_code == 2 and "has id = 'd2'" in r.output
    assert db.open_table("docs").feedback.count() == 0
