"""Run files: TREC and JSON round trips, rank order, and trec_eval scores read back from the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.eval import evaluate, read_run_json, read_trec_run, write_run_json, write_trec_run

RUN = {
    "q2": {"d3": 0.5, "d1": 2.25, "d2": 2.25},  # d1 / d2 tie
    "q1": {"d9": 1.0, "d4": 3.0, "d5": -1.5e-7},
}
QRELS = {"q1": {"d4": 1, "d5": 2}, "q2": {"d2": 1, "d3": 1}}


def test_trec_round_trip_and_order(tmp_path: Path) -> None:
    path = write_trec_run(RUN, tmp_path / "sub" / "run.trec", "my-run")
    assert path == tmp_path / "sub" / "run.trec"
    lines = [line.split() for line in path.read_text().splitlines()]
    assert [(q, d, r) for q, _, d, r, _, _ in lines] == [
        ("q1", "d4", "1"), ("q1", "d9", "2"), ("q1", "d5", "3"),
        ("q2", "d1", "1"), ("q2", "d2", "2"), ("q2", "d3", "3"),
    ]  # fmt: skip
    assert {f[1] for f in lines} == {"Q0"} and {f[5] for f in lines} == {"my-run"}
    assert read_trec_run(path) == RUN  # scores survive exactly


def test_json_round_trip(tmp_path: Path) -> None:
    path = write_run_json(RUN, tmp_path / "run.json")
    back = read_run_json(path)
    assert back == RUN
    assert list(back) == ["q1", "q2"] and list(back["q2"]) == ["d1", "d2", "d3"]


def test_ir_measures_on_the_trec_file_equals_the_in_memory_run(tmp_path: Path) -> None:
    import ir_measures

    measures = ["nDCG@10", "RR@10", "AP@100", "P@2"]
    path = write_trec_run(RUN, tmp_path / "run.trec", "t")
    parsed = [ir_measures.parse_measure(m) for m in measures]
    qrels = [ir_measures.Qrel(q, d, r) for q, docs in QRELS.items() for d, r in docs.items()]
    from_file = {
        (m.query_id, str(m.measure)): m.value
        for m in ir_measures.providers.registry["pytrec_eval"]
        .evaluator(parsed, qrels)
        .iter_calc(list(ir_measures.read_trec_run(str(path))))
    }
    _, per_query = evaluate(RUN, QRELS, measures)
    assert len(from_file) == len(QRELS) * len(measures)
    for (qid, measure), value in from_file.items():
        assert per_query[qid][measure] == pytest.approx(value)


def test_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the tag 'my run'"):
        write_trec_run(RUN, tmp_path / "r.trec", "my run")
    with pytest.raises(ValueError, match="doc id 'd 1'"):
        write_trec_run({"q1": {"d 1": 1.0}}, tmp_path / "r.trec", "t")
    with pytest.raises(ValueError, match="not a finite number"):
        write_trec_run({"q1": {"d1": float("nan")}}, tmp_path / "r.trec", "t")
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 t\n")
    with pytest.raises(ValueError, match=r"bad.trec:2: 5 fields"):
        read_trec_run(bad)
    bad.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n")
    with pytest.raises(ValueError, match="'d1' appears twice"):
        read_trec_run(bad)
    bad.write_text('{"q1": {"d1": "high"}}')
    with pytest.raises(ValueError, match="'high' is not a number"):
        read_run_json(bad)
    bad.write_text('{"q1": ')
    with pytest.raises(ValueError, match="not JSON"):
        read_run_json(bad)
