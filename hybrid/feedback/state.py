"""What a table has learned and uses by default: its tuned state, kept in the manifest's metadata.

``hybrid.tuned`` holds the enabled state as JSON, e.g.::

    {"run": "0002", "fusion": {"kind": "linear", "alpha": 0.5},
     "reranker": {"model": "0002/reranker", "top_n": 50, "blend": 0.5, "max_length": 256},
     "vector_column": "vector_tuned_0002"}

``vector_column`` is the bound vector column text queries embed for when they name none: a tuned embedder
(``tune(embedder=True)``) adds a column ``<column>_tuned_<run>`` bound to its model, kept whether or not
the guard enables it, so a table with one holds several bound columns and its state names the default.

The models of every tune run are kept in the database folder beside the table, in
``<table>__tuned/<run>/`` (a run's ``report.json`` says what it learned and whether the guard enabled it).
Enabling a state is a commit of the table (metadata only), so it is versioned; :func:`use_run` goes back
to any earlier run, or to the library's defaults. A reopened table, in any process, searches with the
enabled fusion and reranks with the enabled model (loaded once per process, offline).
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid.errors import HybridError

if TYPE_CHECKING:
    from hybrid.commits import Commit
    from hybrid.feedback.reranker import TunedReranker
    from hybrid.query.fusion import Fusion
    from hybrid.query.search import Query
    from hybrid.table import Table

METADATA_KEY = "hybrid.tuned"
SUFFIX = "__tuned"
REPORT = "report.json"


def runs_dir(table: Table) -> Path:
    """The folder holding the table's tune runs: ``<database>/<table>__tuned``."""
    return table.path.parent / f"{table.name}{SUFFIX}"


def read_state(table: Table) -> dict[str, Any]:
    """The enabled tuned state (``{}``: the library's defaults)."""
    text = table.snapshot().manifest.metadata.get(METADATA_KEY)
    return dict(json.loads(text)) if text else {}


def write_state(table: Table, state: dict[str, Any], operation: str = "tune") -> Commit:
    """Commit `state` as the table's tuned state (metadata only: no data file changes)."""
    from hybrid.commits import Commit
    from hybrid.storage import transactions as tx

    text = json.dumps(state, sort_keys=True) if state else None
    base = table._write_base(operation)

    def rebase(latest: Any) -> Any:
        meta = {k: v for k, v in latest.metadata.items() if k != METADATA_KEY}
        if text is not None:
            meta[METADATA_KEY] = text
        return replace(latest, metadata=meta)

    new = tx.commit(table._log, base, operation, rebase, {"run": state.get("run")})
    return Commit(new.version, operation)


def runs(table: Table) -> list[dict[str, Any]]:
    """Every tune run's report (oldest first), each with ``enabled``: whether it is the table's state now."""
    folder = runs_dir(table)
    current = read_state(table).get("run")
    found = []
    for path in sorted(folder.glob(f"*/{REPORT}")) if folder.exists() else []:
        report = json.loads(path.read_text(encoding="utf-8"))
        report["enabled"] = report.get("run") == current
        found.append(report)
    return found


def use_run(table: Table, run: str | None) -> Commit:
    """Make tune run `run`'s learned state the table's default (its ``state``, whatever the guard said),
    or go back to the library's defaults with None."""
    original = _original_column(table)
    if run is None:
        return write_state(table, {"vector_column": original} if original else {}, "untune")
    path = runs_dir(table) / run / REPORT
    if not path.exists():
        known = [r["run"] for r in runs(table)]
        raise HybridError(f"no tune run {run!r} for table {table.name!r}; runs: {known}")
    learned = json.loads(path.read_text(encoding="utf-8"))["learned"]
    if original and not learned.get("vector_column"):
        learned["vector_column"] = original  # a run from before any embedder was tuned
    return write_state(table, learned, "tune")


def _original_column(table: Table) -> str | None:
    """The vector column text queries embedded for before any embedder was tuned (None: none was)."""
    for report in runs(table):
        if report.get("embedder"):
            return str(report["embedder"]["base_column"])
    return None


def fusion_from(spec: dict[str, Any]) -> Fusion:
    from hybrid.query.fusion import DBSF, RRF, Linear

    kind = spec.get("kind")
    if kind == "linear":
        return Linear(alpha=float(spec["alpha"]))
    if kind == "rrf":
        return RRF(k=int(spec["k"]))
    if kind == "dbsf":
        return DBSF()
    raise HybridError(f"unknown tuned fusion {spec!r}")


_models: dict[tuple[str, int, int, float, int | None, str | None], TunedReranker] = {}
_lock = threading.Lock()


def reranker_from(table: Table, spec: dict[str, Any]) -> TunedReranker:
    """The tuned reranker `spec` names (one loaded model per process and setting)."""
    from hybrid.feedback.reranker import TunedReranker

    path = runs_dir(table) / spec["model"]
    threads, column = spec.get("threads"), spec.get("column")
    key = (str(path), int(spec["top_n"]), int(spec["max_length"]), float(spec["blend"]), threads, column)
    with _lock:
        if key not in _models:
            _models[key] = TunedReranker(
                path, top_n=key[1], max_length=key[2], blend=key[3], threads=threads, column=column
            )
        return _models[key]


def apply_defaults(table: Table, query: Query) -> Query:
    """`query` with the table's enabled tuned fusion (hybrid queries), reranker (text queries) and vector
    column (text queries naming none)."""
    state = read_state(table)
    if not state:
        return query
    if state.get("vector_column") and query.vector_column is None:
        query = query._with(vector_column=state["vector_column"])
    if state.get("fusion"):
        query = query.fuse(fusion_from(state["fusion"]))
    if state.get("reranker") and query.text_query is not None:
        query = query.rerank(reranker_from(table, state["reranker"]))
    return query
