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
