"""The ``hybrid`` command line (typer)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="hybrid (BM25 + vector) search for retrieval-augmented generation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """hybrid: hybrid (BM25 + vector) search for retrieval-augmented generation."""


@app.command("eval")
def eval_command(
    collection: Annotated[Path, typer.Argument(help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")],
    runs: Annotated[str, typer.Option(help="comma-separated names (see hybrid.eval.presets)")] = "bm25,dense,hybrid",
    out: Annotated[Path, typer.Option(help="report folder")] = Path("report"),
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    embedder: Annotated[str, typer.Option(help="registered embedder name")] = "sentence-transformers",
    embedder_config: Annotated[str, typer.Option(help="embedder settings as JSON")] = "{}",
    tokenizer: Annotated[str, typer.Option(help="auto, default, jieba, cjk, whitespace")] = "auto",
    k: Annotated[int, typer.Option(help="results kept per query")] = 100,
    limit_queries: Annotated[int | None, typer.Option(help="only the first N judged queries")] = None,
    ann: Annotated[bool, typer.Option(help="also measure ANN recall vs ef_search")] = False,
    ignore_identical_ids: Annotated[bool, typer.Option(help="drop hits whose id equals the query id")] = False,
) -> None:
    """Evaluate retrieval runs on a collection; write report.md, report.json, PNG plots and run files."""
    from rich.console import Console
    from rich.table import Table as RichTable

    from hybrid.eval.pipeline import EvalSettings, run_evaluation

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console(stderr=True)
    try:
        config = json.loads(embedder_config)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--embedder-config is not JSON: {exc}") from None
    settings = EvalSettings(
        runs=[r for r in runs.split(",") if r.strip()],
        split=split,
        embedder=embedder,
        embedder_config=config,
        tokenizer=tokenizer,
        k=k,
        limit_queries=limit_queries,
        ann=ann,
        ignore_identical_ids=ignore_identical_ids,
    )
    try:
        report, files = run_evaluation(collection, out, settings, log=lambda m: console.print(f"[dim]{m}[/dim]"))
    except (ValueError, FileNotFoundError, ImportError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = RichTable(title=f"{report.collection}: {report.num_queries} queries, {report.num_documents} documents")
    for column in ("run", *report.measures, f"p vs {report.baseline}", "p50 ms"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for e in report.entries:
        p = (report.significance or {}).get(e.name)
        table.add_row(
            e.name,
            *(f"{e.mean[m]:.4f}" for m in report.measures),
            "" if p is None else f"{p:.4f}",
            f"{e.latency['p50']:.1f}",
        )
    Console().print(table)
    console.print(f"report: {files['report.md']}")
