"""Runs on disk: the TREC run format (``qid Q0 docid rank score tag``) and JSON (``{qid: {docid: score}}``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

from hybrid.eval.metrics import Run


def ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """One query's (doc id, score) pairs, best first; equal scores in doc id order."""
    return sorted(docs.items(), key=lambda item: (-item[1], item[0]))


def _check_token(value: str, what: str, where: str = "") -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(
            f"TREC run files are whitespace-separated: {what} {value!r}{where} is empty or holds whitespace"
        )


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | Path, tag: str) -> Path:
    """Write `run` as a TREC run file; ranks start at 1 in descending score order (ties by doc id).

    Queries are written in id order; a query with no documents leaves no line.
    trec_eval ignores the rank column and orders equal scores by doc id
    *descending*, so give tied documents distinct scores when their order matters.

    Example:
        >>> import tempfile, pathlib
        >>> p = write_trec_run({"q1": {"d2": 1.0, "d1": 3.0}}, pathlib.Path(tempfile.mkdtemp()) / "r.trec", "bm25")
        >>> print(p.read_text(), end="")
        q1 Q0 d1 1 3.0 bm25
        q1 Q0 d2 2 1.0 bm25
        >>> read_trec_run(p)
        {'q1': {'d1': 3.0, 'd2': 1.0}}
    """
    _check_token(tag, "the tag")
    path = Path(path)
    lines = []
    for qid in sorted(run):
        _check_token(qid, "query id")
        for rank, (doc_id, score) in enumerate(ranked(run[qid]), 1):
            _check_token(doc_id, "doc id", f" (query {qid!r})")
            if not math.isfinite(score):
                raise ValueError(f"query {qid!r}, doc {doc_id!r}: the score {score!r} is not a finite number")
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_trec_run(path: str | Path) -> Run:
    """A TREC run file (six whitespace-separated fields a line) as ``{qid: {docid: score}}``."""
    path = Path(path)
    run: Run = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(f"{path}:{n}: {len(fields)} fields, expected 6 (qid Q0 docid rank score tag)")
            qid, _, doc_id, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise ValueError(f"{path}:{n}: the score {score!r} is not a number") from None
            docs = run.setdefault(qid, {})
            if doc_id in docs:
                raise ValueError(f"{path}:{n}: doc {doc_id!r} appears twice for query {qid!r}")
            docs[doc_id] = value
    return run


def write_run_json(run: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Write `run` as JSON ``{qid: {docid: score}}`` (queries in id order, documents best first).

    Example:
        >>> import tempfile, pathlib
        >>> p = write_run_json({"q1": {"d1": 2.0}}, pathlib.Path(tempfile.mkdtemp()) / "r.json")
        >>> read_run_json(p)
        {'q1': {'d1': 2.0}}
    """
    path = Path(path)
    data = {qid: {d: float(s) for d, s in ranked(run[qid])} for qid in sorted(run)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, allow_nan=False), encoding="utf-8")
    return path


def read_run_json(path: str | Path) -> Run:
    """A JSON run written by :func:`write_run_json` (or any ``{qid: {docid: score}}`` object)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{qid: {{docid: score}}}}, got {type(data).__name__}")
    run: Run = {}
    for qid, docs in data.items():
        if not isinstance(docs, dict):
            raise ValueError(f"{path}: query {qid!r} maps to {type(docs).__name__}, expected {{docid: score}}")
        for doc_id, score in docs.items():
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise ValueError(f"{path}: query {qid!r}, doc {doc_id!r}: the score {score!r} is not a number")
        run[qid] = {d: float(s) for d, s in docs.items()}
    return run
