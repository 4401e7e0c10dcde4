"""Reports: real runs on a tiny collection written as Markdown, JSON, PNGs and run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.eval import (
    AnnPoint,
    Collection,
    Report,
    RunConfig,
    RunResult,
    build_report,
    build_table,
    evaluate,
    execute,
    from_objects,
    read_run_json,
    read_trec_run,
    write_report,
)

DOCS = {
    "d0": "Volcanoes erupt molten lava and ash from deep inside the earth.",
    "d1": "Penguins are flightless birds that swim in cold antarctic water.",
    "d2": "The violin is a string instrument played with a bow.",
    "d3": "Sourdough bread rises slowly with wild yeast and flour.",
    "d4": "Black holes bend light with enormous gravity.",
    "d5": "Chess openings such as the sicilian defence shape the middle game.",
    "d6": "Honey bees pollinate flowers and make honey in hives.",
    "d7": "Glaciers carve valleys as the ice slowly moves downhill.",
    "d8": "Espresso coffee is brewed by forcing hot water through ground beans.",
    "d9": "Marathon runners train for months to race 42 kilometres.",
}
QUERIES = {"q1": "lava eruption", "q2": "bread yeast flour", "q3": "birds in antarctic water", "q4": "coffee beans"}
QRELS = {"q1": {"d0": 2, "d7": 0}, "q2": {"d3": 1}, "q3": {"d1": 2, "d6": 1}, "q4": {"d8": 1}}
NAMES = ["bm25", "dense", "hybrid"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Collection, list[RunResult]]:
    collection = from_objects(DOCS, QUERIES, QRELS, name="tiny")
    db = hybrid.connect(tmp_path_factory.mktemp("db"))
    table = build_table(db, collection, embedders={"vector": HashingEmbedder(dim=64)}, fts={"bm25": {}})
    configs = [
        RunConfig("bm25", "fts", fts_index="bm25"),
        RunConfig("dense", "vector", vector_column="vector"),
        RunConfig("hybrid", "hybrid", fts_index="bm25", vector_column="vector"),
    ]
    return collection, [execute(table, c, collection.judged_queries, k=10, progress=False) for c in configs]


def table_rows(md: str) -> list[list[str]]:
    lines = md.split("## Results", 1)[1].strip().splitlines()
    rows = []
    for line in lines[2:]:  # after header and alignment row
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_report_files(evaluated: tuple[Collection, list[RunResult]], tmp_path: Path) -> None:
    collection, results = evaluated
    ann = [AnnPoint(10, 0.8, 0.2, 0.4), AnnPoint(40, 0.95, 0.3, 0.5), AnnPoint(160, 1.0, 0.6, 0.9)]
    report = build_report(collection, results, ann=ann, meta={"command": "pytest"})
    assert isinstance(report, Report) and report.baseline == "bm25"
    assert report.significance is not None and report.significance["bm25"] == 1.0
    files = write_report(report, tmp_path / "out")

    expected = {"report.md", "report.json", "runs.png", "wins.png", "ann.png"}
    expected |= {f"runs/{n}.{ext}" for n in NAMES for ext in ("trec", "json")}
    assert set(files) == expected
    assert all(p.exists() and p.is_relative_to(tmp_path / "out") for p in files.values())
    assert all(is_png(files[name]) for name in ("runs.png", "wins.png", "ann.png"))

    data = json.loads(files["report.json"].read_text())
    assert data["collection"] == "tiny" and data["measures"][0] == "nDCG@10"
    assert data["meta"]["command"] == "pytest" and "date" in data["meta"]
    assert [r["name"] for r in data["runs"]] == NAMES
    assert data["significance"]["bm25"] == 1.0 and len(data["ann"]) == 3
    for run in data["runs"]:
        assert set(run["per_query"]) == set(QRELS)
        assert all(set(v) == set(report.measures) for v in run["per_query"].values())
        assert set(run["query_latency_ms"]) == set(QRELS)

    md = files["report.md"].read_text()
    rows = table_rows(md)
    assert [r[0] for r in rows] == NAMES
    ndcg = 1 + report.measures.index("nDCG@10")
    p_col = 1 + len(report.measures)
    for row, result in zip(rows, results):
        mean, _ = evaluate(result.run, collection.qrels)
        assert row[ndcg] == f"{mean['nDCG@10']:.4f}"
    assert rows[0][p_col] == "1.0000"
    assert "![runs](runs.png)" in md and "![wins](wins.png)" in md and "![ann](ann.png)" in md
    assert "| 40 | 0.9500 | 0.30 | 0.50 |" in md

    for name, result in zip(NAMES, results):
        assert read_run_json(files[f"runs/{name}.json"]) == result.run
        trec = read_trec_run(files[f"runs/{name}.trec"])
        assert {q: sorted(d) for q, d in trec.items()} == {q: sorted(d) for q, d in result.run.items() if d}


def test_baseline_choice_and_single_run(evaluated: tuple[Collection, list[RunResult]], tmp_path: Path) -> None:
    collection, results = evaluated
    report = build_report(collection, results, baseline="hybrid", measures=["RR@10", "P@10"])
    assert report.significance_measure == "RR@10"  # no nDCG@10: the first measure
    assert report.significance is not None and report.significance["hybrid"] == 1.0
    assert set(report.significance) == set(NAMES)
    single = write_report(build_report(collection, results[:1]), tmp_path)
    assert "wins.png" not in single and "ann.png" not in single
    assert "## ANN" not in single["report.md"].read_text()


def test_bad_arguments_are_named(evaluated: tuple[Collection, list[RunResult]]) -> None:
    collection, results = evaluated
    with pytest.raises(ValueError, match="baseline 'nope' is not one of the runs"):
        build_report(collection, results, baseline="nope")
    with pytest.raises(ValueError, match=r"repeated: \['bm25'\]"):
        build_report(collection, [results[0], results[0]])
    with pytest.raises(ValueError, match="at least one run"):
        build_report(collection, [])


def test_run_names_become_safe_file_names(tmp_path: Path) -> None:
    collection = from_objects({"d1": "a"}, {"q1": "a"}, {"q1": {"d1": 1}})
    results = [
        RunResult(RunConfig("bm25+cross-encoder=/models/x y", "fts"), {"q1": {"d1": 1.0}}),
        RunResult(RunConfig("bm25+cross-encoder=/models/x|y", "fts"), {"q1": {"d1": 1.0}}),
    ]
    files = write_report(build_report(collection, results), tmp_path)
    assert {"runs/bm25+cross-encoder=_models_x_y.trec", "runs/bm25+cross-encoder=_models_x_y-2.trec"} <= set(files)
    assert all(p.parent == tmp_path / "runs" for k, p in files.items() if k.startswith("runs/"))
    assert "bm25+cross-encoder=/models/x\\|y" in files["report.md"].read_text()
