"""One evaluation end to end: load a collection, build its table, run configurations, write a report."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from hybrid.eval.ann import ann_curve
from hybrid.eval.chunked import DEFAULT_TITLES, TitleLayout, build_chunk_table, chunked_configs
from hybrid.eval.collection import Collection, load_beir, load_queries
from hybrid.eval.presets import VECTOR_COLUMN, fts_indexes_for, parse_run
from hybrid.eval.query_vectors import embed_questions
from hybrid.eval.report import Report, build_report, write_report
from hybrid.eval.runs import RunConfig, RunResult, build_table, execute
from hybrid.table import Table


@dataclass
class EvalSettings:
    """What `run_evaluation` does; the CLI's options map one to one."""

    runs: Sequence[str] = ("bm25", "dense", "hybrid")
    split: str = "test"
    embedder: str = "auto"
    """A registered embedder name, or "auto": chosen by the corpus language (:mod:`hybrid.embedders.auto`)."""
    embedder_config: dict[str, Any] = field(default_factory=dict)
    tokenizer: str = "auto"
    """"auto": the library's default analysis (language detected); or default, jieba, cjk, whitespace."""
    k: int = 100
    limit_queries: int | None = None
    ann: bool = False
    ignore_identical_ids: bool = False
    queries_from: Path | None = None
    """Ask with another collection's query texts for the same ids (cross-lingual: XQuAD-R en -> de)."""
    db_path: Path | None = None
    progress: bool | None = None
    chunk: int | None = None
    """Also index the documents as chunks of about this many tokens and ask every run over them,
    grouped by document and flat (:mod:`hybrid.eval.chunked`); judgments stay per document."""
    chunk_titles: TitleLayout = DEFAULT_TITLES
    """Where each document's title goes among its chunks (:data:`hybrid.eval.chunked.TitleLayout`)."""
    query_embedding: Literal["batched", "alone"] = "batched"
    """"batched": every question embedded once, in batches, before the timed searches, each search's
    embedding part its share of its batch's time, beside a few questions timed alone
    (:mod:`hybrid.eval.query_vectors`); "alone": each question embedded as its first search runs."""


def run_evaluation(
    collection: Collection | str | Path,
    out_dir: str | Path,
    settings: EvalSettings | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Report, dict[str, Path]]:
    """Evaluate `settings.runs` on a collection (a BEIR folder or a Collection); write the report to `out_dir`."""
    from hybrid import connect
    from hybrid.embedders import create
    from hybrid.embedders.auto import embedder_for

    s = settings or EvalSettings()
    if s.chunk_titles not in get_args(TitleLayout):
        raise ValueError(f"chunk_titles must be one of {', '.join(get_args(TitleLayout))}, got {s.chunk_titles!r}")
    if s.query_embedding not in ("batched", "alone"):
        raise ValueError(f"query_embedding must be 'batched' or 'alone', got {s.query_embedding!r}")
    coll = collection if isinstance(collection, Collection) else load_beir(collection, s.split)
    if s.queries_from is not None:
        source = Path(s.queries_from)
        root = source if source.is_dir() else source.parent
        coll = coll.with_queries_from(load_queries(source), f"{root.name}-to-{coll.name}")
    if s.ignore_identical_ids and not coll.ignore_identical_ids:
        coll = Collection(coll.name, coll.corpus, coll.queries, coll.qrels, True, coll.meta)
    needs_vectors = any(not name.startswith("bm25") for name in s.runs)
    embedder = None
    if needs_vectors or s.ann:
        if s.embedder == "auto":
            if s.embedder_config:
                raise ValueError("embedder settings need a named embedder, not 'auto'")
            embedder = embedder_for(d["text"] for d in coll.corpus.values())
        else:
            embedder = create(s.embedder, **s.embedder_config)
    configs = [parse_run(name, embedder) for name in s.runs]
    tokenizer = "default" if s.tokenizer == "auto" else s.tokenizer
    fts = fts_indexes_for(configs, tokenizer) or {}
    workdir = tempfile.TemporaryDirectory() if s.db_path is None else None
    try:
        db = connect(s.db_path or workdir.name)  # type: ignore[union-attr]
        log(f"building the table: {len(coll.corpus)} documents, full-text {sorted(fts)} ({tokenizer})")
        table = build_table(
            db,
            coll,
            embedders={VECTOR_COLUMN: embedder} if embedder is not None else {},
            fts=fts or {"bm25": {"tokenizer": tokenizer}},
            vector_index=s.ann,
        )
        queries = coll.judged_queries
        if s.limit_queries:
            queries = dict(list(queries.items())[: s.limit_queries])
        embedded = None
        if embedder is not None and needs_vectors and s.query_embedding == "batched":
            log(f"embedding {len(queries)} questions in batches")
            embedded = embed_questions(embedder, list(queries.values()))
        costs = embedded.cost_ms if embedded is not None else None

        def run_all(searched: Table, runs: Sequence[RunConfig]) -> list[RunResult]:
            out = []
            for config in runs:
                log(f"run {config.name}")
                out.append(
                    execute(
                        searched,
                        config,
                        queries,
                        k=s.k,
                        progress=s.progress,
                        ignore_identical_ids=coll.ignore_identical_ids,
                        embed_costs=costs,
                    )
                )
            return out

        results = run_all(table, configs)
        if s.chunk is not None:
            log(f"chunking the documents into ~{s.chunk}-token chunks")
            chunks = build_chunk_table(
                db,
                coll,
                s.chunk,
                embedders={VECTOR_COLUMN: embedder} if embedder is not None else {},
                fts=fts or {"bm25": {"tokenizer": tokenizer}},
                vector_index=s.ann,
                titles=s.chunk_titles,
            )
            log(f"chunk table: {chunks.count_rows()} chunks of {len(coll.corpus)} documents")
            results += run_all(chunks, chunked_configs(configs))
        points = None
        if s.ann and embedder is not None:
            log("ANN recall vs ef_search")
            vectors = np.stack([embedder.embed_query(t) for t in list(queries.values())[:200]])
            points = ann_curve(table, VECTOR_COLUMN, vectors)
        qrels = {q: coll.qrels[q] for q in queries}
        judged = Collection(coll.name, coll.corpus, coll.queries, qrels, coll.ignore_identical_ids, coll.meta)
        meta: dict[str, Any] = {
            "runs": list(s.runs),
            "tokenizer": tokenizer,
            "embedder": embedder.name if embedder else None,
        }
        if embedder is not None and needs_vectors:
            meta["query_embedding"] = embedded.describe() if embedded is not None else {"mode": "alone"}
        if s.chunk is not None:
            meta["chunk_tokens"] = s.chunk
            meta["chunk_titles"] = s.chunk_titles
            meta["chunks"] = chunks.count_rows()
        report = build_report(judged, results, ann=points, meta=meta)
        return report, write_report(report, out_dir)
    finally:
        if workdir is not None:
            workdir.cleanup()
