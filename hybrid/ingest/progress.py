"""`ingest_with_progress`: `ingest` with a rich progress bar per stage, for terminals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid.ingest.pipeline import IngestReport, ingest

if TYPE_CHECKING:
    from rich.console import Console

    from hybrid.db import Database


def ingest_with_progress(
    console: Console, db: Database, table: str, paths: Sequence[str | Path], **kwargs: Any
) -> IngestReport:
    """`hybrid.ingest.ingest` showing each stage (read, embed, ...) as a bar on `console`;
    the bars are off when the console is not a terminal. `kwargs` go to `ingest`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return ingest(db, table, paths, progress=progress, **kwargs)
