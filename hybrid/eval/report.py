"""Evaluation reports: metrics, significance and latency per run, as Markdown, JSON, PNG charts and run files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid.errors import require
from hybrid.eval.ann import AnnPoint
from hybrid.eval.collection import Collection
from hybrid.eval.export import write_run_json, write_trec_run
from hybrid.eval.metrics import DEFAULT_MEASURES, Run, evaluate, paired_randomization_test
from hybrid.eval.runs import RunResult

TRIALS = 10_000
"""Permutations of the paired randomization test."""


@dataclass
class RunEntry:
    """One run of a report: its configuration, metrics (mean and per query), latency and ranking."""

    name: str
    config: dict[str, Any]
    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    """``{qid: {measure: value}}`` over every judged query."""
    latency: dict[str, float]
    """p50 / p95 / p99 / mean ms, query embedding included."""
    latency_excl_embedding: dict[str, float]
    run: Run = field(repr=False)
    query_latency_ms: dict[str, float] = field(default_factory=dict, repr=False)
    query_embed_ms: dict[str, float] = field(default_factory=dict, repr=False)


_ENTRY_FIELDS = [f.name for f in dataclasses.fields(RunEntry)]


@dataclass
class Report:
    """An evaluation of runs on one collection; write it with :func:`write_report`."""

    collection: str
    measures: list[str]
    entries: list[RunEntry]
    num_documents: int = 0
    num_queries: int = 0
    """Judged queries (the ones evaluated)."""
    baseline: str | None = None
    significance_measure: str | None = None
    significance: dict[str, float] | None = None
    """Run name -> two-sided p-value of `significance_measure` against the baseline."""
    ann: list[AnnPoint] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Free form: command, machine, dataset path, date ..."""

    def entry(self, name: str) -> RunEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"no run named {name!r} in the report; runs: {[e.name for e in self.entries]}")

    def best(self, measure: str | None = None, *, exclude: str | None = None) -> RunEntry | None:
        """The run with the highest mean `measure` (default: the significance measure), first on ties."""
        m = measure or self.significance_measure or self.measures[0]
        candidates = [e for e in self.entries if e.name != exclude]
        return max(candidates, key=lambda e: e.mean[m]) if candidates else None

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data, per-query values included (the rankings are left out: see the run files)."""
        return {
            "collection": self.collection,
            "num_documents": self.num_documents,
            "num_queries": self.num_queries,
            "measures": list(self.measures),
            "baseline": self.baseline,
            "significance_measure": self.significance_measure,
            "significance_test": f"two-sided paired randomization, {TRIALS} trials",
            "significance": self.significance,
            "runs": [{k: getattr(e, k) for k in _ENTRY_FIELDS if k != "run"} for e in self.entries],
            "ann": [dataclasses.asdict(p) for p in self.ann] if self.ann is not None else None,
            "meta": self.meta,
        }


def _config(result: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(result.config):
        value = getattr(result.config, f.name)
        out[f.name] = value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)
    return out


def _per_query_times(result: RunResult, values: list[float]) -> dict[str, float]:
    return dict(zip(result.run, values)) if len(values) == len(result.run) else {}


def _default_meta(collection: Collection) -> dict[str, Any]:
    from hybrid import __version__

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "hybridsearch": __version__,
        **({"dataset": dict(collection.meta)} if collection.meta else {}),
    }


def build_report(
    collection: Collection,
    results: Sequence[RunResult],
    *,
    measures: Sequence[str] = DEFAULT_MEASURES,
    baseline: str | None = None,
    ann: list[AnnPoint] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Report:
    """Evaluate each run on `collection` and test it against `baseline` (default: the first run).

    The significance test is a paired randomization test over the judged
    queries on nDCG@10 (or the first measure when nDCG@10 is not among
    `measures`). `meta` adds to (and overrides) the date, machine and dataset
    recorded by default.

    Example:
        >>> from hybrid.eval import RunConfig, RunResult, from_objects
        >>> qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
        >>> c = from_objects({"d1": "cats", "d2": "dogs"}, {"q1": "cat", "q2": "dog"}, qrels)
        >>> good = RunResult(RunConfig("good", "fts"), {"q1": {"d1": 2.0, "d2": 1.0}, "q2": {"d2": 2.0, "d1": 1.0}})
        >>> bad = RunResult(RunConfig("bad", "fts"), {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}})
        >>> r = build_report(c, [good, bad], measures=["RR@10"])
        >>> r.entry("bad").mean, r.significance["good"], round(r.significance["bad"], 1)
        ({'RR@10': 0.5}, 1.0, 0.5)
    """
    if not results:
        raise ValueError("build_report needs at least one run")
    measures = list(measures)
    if not measures:
        raise ValueError("build_report needs at least one measure")
    names = [r.config.name for r in results]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"run names must be unique; repeated: {repeated}")
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the runs {names}")
    entries = []
    for result in results:
        mean, per_query = evaluate(result.run, collection.qrels, measures)
        entries.append(
            RunEntry(
                result.config.name,
                _config(result),
                mean,
                per_query,
                result.latency(True),
                result.latency(False),
                result.run,
                _per_query_times(result, result.latency_ms),
                _per_query_times(result, result.embed_ms),
            )
        )
    measure = "nDCG@10" if "nDCG@10" in measures else measures[0]
    qids = sorted(collection.qrels)
    base = next(e for e in entries if e.name == baseline)
    base_values = [base.per_query[q][measure] for q in qids]
    significance = {
        e.name: paired_randomization_test([e.per_query[q][measure] for q in qids], base_values, trials=TRIALS)
        for e in entries
    }
    return Report(
        collection.name,
        measures,
        entries,
        num_documents=len(collection.corpus),
        num_queries=len(collection.qrels),
        baseline=baseline,
        significance_measure=measure,
        significance=significance,
        ann=list(ann) if ann is not None else None,
        meta={**_default_meta(collection), **dict(meta or {})},
    )


# -- writing ----------------------------------------------------------------------------------


def _file_names(names: Sequence[str]) -> dict[str, str]:
    """A distinct, file-system-safe stem per run name."""
    out: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._+=-]+", "_", name).strip("._") or "run"
        candidate, n = stem, 2
        while candidate in out.values():
            candidate, n = f"{stem}-{n}", n + 1
        out[name] = candidate
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _ms(lat: Mapping[str, float]) -> str:
    return " / ".join(f"{lat[p]:.1f}" for p in ("p50", "p95", "p99"))


def _wins(report: Report) -> tuple[RunEntry, RunEntry, list[float]] | None:
    """(best non-baseline run, baseline, per-query differences best - baseline) or None with a single run."""
    if report.baseline is None:
        return None
    best = report.best(exclude=report.baseline)
    if best is None:
        return None
    base = report.entry(report.baseline)
    m = report.significance_measure or report.measures[0]
    return best, base, [best.per_query[q][m] - base.per_query[q][m] for q in sorted(base.per_query)]


def _counts(deltas: Sequence[float], eps: float = 1e-9) -> tuple[int, int, int]:
    wins = sum(d > eps for d in deltas)
    losses = sum(d < -eps for d in deltas)
    return wins, losses, len(deltas) - wins - losses


def _figure(width: float, height: float) -> Any:
    # a bare Figure renders with Agg on savefig, without pyplot or a change of the process-wide backend
    figure: Any = require("matplotlib.figure", "eval")
    return figure.Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_runs(report: Report, path: Path) -> Path:
    """Horizontal bars of the first measure's mean per run (the baseline in grey)."""
    m = report.measures[0]
    names = [e.name for e in report.entries]
    values = [e.mean[m] for e in report.entries]
    fig = _figure(7.0, 1.2 + 0.45 * len(names))
    ax = fig.add_subplot()
    colors = ["#9e9e9e" if n == report.baseline else "#1f77b4" for n in names]
    bars = ax.barh(range(len(names)), values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.4f}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(names)), labels=names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(values) * 1.15, 1e-6))
    ax.set_xlabel(f"mean {m}")
    ax.set_title(f"{report.collection}: {m} per run ({report.num_queries} queries)")
    fig.savefig(path)
    return path


def plot_wins(report: Report, path: Path) -> Path | None:
    """Per-query difference of the best run against the baseline, sorted; None with a single run."""
    wins = _wins(report)
    if wins is None:
        return None
    best, base, deltas = wins
    w, lose, tie = _counts(deltas)
    deltas = sorted(deltas, reverse=True)
    fig = _figure(8.0, 3.6)
    ax = fig.add_subplot()
    colors = ["#2ca02c" if d > 1e-9 else "#d62728" if d < -1e-9 else "#9e9e9e" for d in deltas]
    ax.bar(range(len(deltas)), deltas, width=1.0, color=colors, linewidth=0)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlim(-0.5, len(deltas) - 0.5)
    ax.set_xticks([])
    ax.set_xlabel(f"{len(deltas)} queries, sorted by difference")
    ax.set_ylabel(f"Δ {report.significance_measure}")
    ax.set_title(f"{best.name} vs {base.name}: {w} wins, {lose} losses, {tie} ties", fontsize=10)
    fig.savefig(path)
    return path


def plot_ann(points: Sequence[AnnPoint], path: Path) -> Path:
    """Recall@k against median latency, one point per ef_search (labelled)."""
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    xs, ys = [p.p50_ms for p in points], [p.recall for p in points]
    ax.plot(xs, ys, marker="o")
    for p in points:
        ax.annotate(f"ef={p.ef}", (p.p50_ms, p.recall), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("p50 latency per query (ms)")
    ax.set_ylabel(f"recall@{points[0].k}")
    ax.set_title("HNSW recall vs latency across ef_search")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def _markdown(report: Report, files: Mapping[str, Path], run_files: Mapping[str, Mapping[str, str]]) -> str:
    m = report.significance_measure
    lines = [f"# Evaluation: {report.collection}", ""]
    lines.append(f"{report.num_documents} documents, {report.num_queries} judged queries.")
    lines += ["", "## Results", ""]
    header = ["run", *report.measures, f"p ({m}) vs {report.baseline}", "ms p50 / p95 / p99", "excl. embedding"]
    lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
    lines.append("|---|" + "---:|" * (len(header) - 1))
    for e in report.entries:
        p = (report.significance or {}).get(e.name)
        row = [
            e.name,
            *(f"{e.mean[x]:.4f}" for x in report.measures),
            f"{p:.4f}" if p is not None else "",
            _ms(e.latency),
            _ms(e.latency_excl_embedding),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    lines += [
        "",
        f"p: two-sided paired randomization test ({TRIALS:,} trials) of per-query {m} against the baseline "
        f"`{report.baseline}`. Latency: per query through the public search API, in ms, with and without the "
        "time spent embedding the query (`query_embedding` under Setup: 'batched' counts each question's share of "
        "its batch, with the time of one question embedded alone beside it).",
        "",
        "![runs](runs.png)",
    ]
    wins = _wins(report)
    if wins is not None and "wins.png" in files:
        best, base, deltas = wins
        w, lose, tie = _counts(deltas)
        lines += [
            "",
            f"## Per query: {best.name} vs {base.name}",
            "",
            f"{m}: {w} wins, {lose} losses, {tie} ties.",
            "",
            "![wins](wins.png)",
        ]
    if report.ann:
        k = report.ann[0].k
        lines += ["", "## ANN: recall vs exact search", "", f"| ef_search | recall@{k} | p50 ms | p95 ms |"]
        lines.append("|---:|---:|---:|---:|")
        lines += [f"| {p.ef} | {p.recall:.4f} | {p.p50_ms:.2f} | {p.p95_ms:.2f} |" for p in report.ann]
        lines += ["", "![ann](ann.png)"]
    lines += ["", "## Run files", ""]
    for e in report.entries:
        lines.append(f"- {_cell(e.name)}: [TREC]({run_files[e.name]['trec']}), [JSON]({run_files[e.name]['json']})")
    if report.meta:
        lines += ["", "## Setup", ""]
        lines += [f"- {k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in report.meta.items()]
    return "\n".join(lines) + "\n"


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.json, runs.png, wins.png (two runs or more), ann.png (with ANN points)
    and each run as ``runs/<name>.trec`` and ``runs/<name>.json`` into `out_dir`.

    Returns ``{relative path: path}`` of every file written.
    """
    out = Path(out_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    stems = _file_names([e.name for e in report.entries])
    files: dict[str, Path] = {}
    run_files: dict[str, dict[str, str]] = {}
    for e in report.entries:
        stem = stems[e.name]
        run_files[e.name] = {"trec": f"runs/{stem}.trec", "json": f"runs/{stem}.json"}
        files[run_files[e.name]["trec"]] = write_trec_run(e.run, out / run_files[e.name]["trec"], stem)
        files[run_files[e.name]["json"]] = write_run_json(e.run, out / run_files[e.name]["json"])
    files["runs.png"] = plot_runs(report, out / "runs.png")
    wins = plot_wins(report, out / "wins.png")
    if wins is not None:
        files["wins.png"] = wins
    if report.ann:
        files["ann.png"] = plot_ann(report.ann, out / "ann.png")
    data = report.to_dict()
    data["files"] = run_files
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    files["report.json"] = out / "report.json"
    (out / "report.md").write_text(_markdown(report, files, run_files), encoding="utf-8")
    files["report.md"] = out / "report.md"
    return files
