"""``hybrid feedback ...``: import judgments, show what a table was told."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

feedback_app = typer.Typer(help="Feedback kept with a table (<table>__feedback).", no_args_is_help=True)


@feedback_app.command("import")
def import_command(
    qrels: Annotated[Path, typer.Argument(help="qrels file: BEIR TSV (query-id, corpus-id, score) or TREC")],
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str, typer.Option(help="the judged table")],
    queries: Annotated[
        Path | None, typer.Option(help="queries.jsonl (default: the BEIR folder's, beside qrels/)")
    ] = None,
    key: Annotated[str, typer.Option(help="the table's column holding the corpus ids")] = "id",
    who: Annotated[str | None, typer.Option(help="recorded as who gave the judgments")] = None,
) -> None:
    """Add a qrels file's judgments to the table's feedback (one commit; a bad line writes nothing)."""
    from hybrid.cli import _open_db, _stderr, _user_errors
    from hybrid.feedback.qrels import import_qrels

    with _user_errors():
        t = _open_db(db).open_table(table)
        commit = import_qrels(t, qrels, queries, key=key, who=who)
        _stderr().print(f"{commit.inserted} judgments added to {t.feedback.name} (version {commit.version})")


@feedback_app.command("show")
def show_command(
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str, typer.Option(help="the judged table")],
    limit: Annotated[int, typer.Option(help="the newest N judgments")] = 20,
) -> None:
    """How many judgments a table has, and the newest ones."""
    from rich.console import Console
    from rich.table import Table as RichTable

    from hybrid.cli import _open_db, _user_errors

    with _user_errors():
        log = _open_db(db).open_table(table).feedback
        rows = log.to_arrow()
    out = RichTable(title=f"{log.name}: {rows.num_rows} judgments")
    for c in ("query", "row", "key", "label", "kind", "who", "source", "at"):
        out.add_column(c)
    for r in rows.slice(max(0, rows.num_rows - limit)).to_pylist():
        out.add_row(
            *(
                str(r[c]) if r[c] is not None else ""
                for c in ("query", "row", "key", "label", "kind", "who", "source", "at")
            )
        )
    Console().print(out)


def tune_command(
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str, typer.Option(help="the table to tune")],
    list_runs: Annotated[bool, typer.Option("--list", help="list the tune runs and which one is enabled")] = False,
    use: Annotated[str | None, typer.Option(help="enable what run RUN learned (even if the guard refused it)")] = None,
    reset: Annotated[bool, typer.Option(help="go back to the library's defaults")] = False,
    qrels: Annotated[Path | None, typer.Option(help="learn from this qrels file instead of the feedback")] = None,
    queries: Annotated[Path | None, typer.Option(help="queries.jsonl for --qrels")] = None,
    key: Annotated[str, typer.Option(help="the column holding the qrels' corpus ids")] = "id",
    fusion: Annotated[bool, typer.Option(help="tune the fusion")] = True,
    reranker: Annotated[bool, typer.Option(help="train a cross-encoder reranker")] = True,
    embedder: Annotated[
        bool, typer.Option(help="fine-tune the table's embedder into a new vector column (needs torch)")
    ] = False,
    embedder_epochs: Annotated[
        int | None,
        typer.Option(min=1, help="passes of embedder fine-tuning (default: enough for 64 steps, at most 3)"),
    ] = None,
    embedder_max_steps: Annotated[
        int, typer.Option(min=1, help="the embedder's training budget in optimizer steps, whatever the passes")
    ] = 128,
    embedder_positives: Annotated[
        int,
        typer.Option(min=0, help="relevant rows a query the embedder trains on, highest graded first (0: all)"),
    ] = 2,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    negatives: Annotated[int, typer.Option(min=1, help="hard negatives per relevant row")] = 3,
    max_length: Annotated[int, typer.Option(min=8, help="tokens per (query, text) pair")] = 256,
    top_n: Annotated[int, typer.Option(min=1, help="candidates the reranker scores")] = 50,
    test_fraction: Annotated[float, typer.Option(help="queries held out for the guard")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    threads: Annotated[int | None, typer.Option(min=1, help="torch threads (1 is best on a busy machine)")] = None,
    max_train_queries: Annotated[int | None, typer.Option(min=4, help="train on at most N queries")] = None,
    enable: Annotated[bool, typer.Option(help="enable what the guard accepts")] = True,
    cold_start: Annotated[
        bool, typer.Option(help="no feedback: learn the reranker from pseudo-queries made of the table's rows")
    ] = False,
    pseudo_queries: Annotated[int, typer.Option(min=8, help="pseudo-queries a --cold-start makes")] = 200,
    onnx: Annotated[bool, typer.Option(help="export the reranker to int8 ONNX and serve it with that")] = True,
) -> None:
    """Learn the table's fusion, a reranker and (--embedder) its embedder from its feedback (or --qrels);
    --list, --use RUN, --reset."""
    import json

    from rich.console import Console

    from hybrid.cli import _open_db, _stderr, _user_errors

    console = Console()
    with _user_errors():
        t = _open_db(db).open_table(table)
        if list_runs:
            for r in t.tune_runs():
                mark = "*" if r["enabled"] else " "
                verdicts = ", ".join(f"{d['part']} {'on' if d['accepted'] else 'off'}" for d in r["decisions"])
                console.print(f"{mark} {r['run']}  {r['created']}  {r['queries']}  {verdicts}", soft_wrap=True)
            return
        if use is not None or reset:
            commit = t.use_tuned(None if reset else use)
            _stderr().print(f"table {table!r} version {commit.version}: {'defaults' if reset else 'run ' + str(use)}")
            return
        judgments = None
        if qrels is not None:
            from hybrid.feedback.qrels import judgments_from_qrels

            judgments = judgments_from_qrels(t, qrels, queries, key=key)
        report = t.tune(
            judgments,
            fusion=fusion,
            reranker=reranker,
            embedder=embedder,
            embedder_epochs=embedder_epochs,
            embedder_max_steps=embedder_max_steps,
            embedder_positives=embedder_positives or None,
            epochs=epochs,
            negatives=negatives,
            max_length=max_length,
            top_n=top_n,
            test_fraction=test_fraction,
            seed=seed,
            threads=threads,
            max_train_queries=max_train_queries,
            enable=enable,
            cold_start=cold_start,
            pseudo_queries=pseudo_queries,
            onnx=onnx,
        )
    console.print(report.summary(), soft_wrap=True)
    _stderr().print(json.dumps({"run": report.run, "enabled": report.enabled}))
