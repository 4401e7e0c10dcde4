"""`tune`'s embedder stage: mine, fine-tune, and re-embed the table into a new vector column."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybrid.embedders import binding
from hybrid.errors import FeedbackError, require
from hybrid.feedback import state as tuned_state

if TYPE_CHECKING:
    from hybrid.feedback.judgments import Judgments
    from hybrid.feedback.tune import TuneReport, TuneSettings
    from hybrid.table import Table

TUNED_SUFFIX = re.compile(r"_tuned_\d+$")


def current_binding(table: Table) -> binding.Binding:
    """The bound vector column text queries embed for now: the tuned state's, else the only bound one."""
    bound = {b.column: b for b in binding.read(table.snapshot().manifest.metadata)}
    named = tuned_state.read_state(table).get("vector_column")
    if named in bound:
        return bound[named]
    if len(bound) == 1:
        return next(iter(bound.values()))
    if not bound:
        raise FeedbackError(
            f"tuning the embedder needs a vector column bound to an embedder; table {table.name!r} has none"
        )
    raise FeedbackError(f"table {table.name!r} has several bound vector columns ({sorted(bound)}) and no default")


def tune_embedder(
    table: Table, train: Judgments, fusion: dict[str, Any], folder: Path, s: TuneSettings, report: TuneReport
) -> tuple[str, str]:
    """Fine-tune the current column's embedder on `train` (hard negatives mined from the table's hybrid
    search with `fusion`), save it in `folder`/embedder and add the column it computes; fills
    ``report.embedder`` and returns (the current column, the new column)."""
    from hybrid.feedback.embedder import EmbedderTraining, base_model, train_embedder, tuned_embedder
    from hybrid.feedback.tune import mine_examples, training_steps

    require("torch", "models")
    require("sentence_transformers", "models")
    current = current_binding(table)
    base = base_model(current)
    column = f"{TUNED_SUFFIX.sub('', current.column)}_tuned_{folder.name}"
    if column in table.schema.names:
        raise FeedbackError(f"table {table.name!r} already has a column {column!r}")
    mining = replace(
        s,
        negatives=s.embedder_negatives,
        positives_per_query=s.embedder_positives,
        column=current.source,
        cold_start=False,
    )
    examples = mine_examples(table, train, fusion, mining, s.progress, current.column)
    settings = EmbedderTraining(
        epochs=s.embedder_epochs,
        min_steps=s.embedder_min_steps,
        max_epochs=s.embedder_max_epochs,
        max_steps=s.embedder_max_steps,
        batch_size=s.embedder_batch,
        learning_rate=s.embedder_learning_rate,
        max_length=s.embedder_max_length,
        seed=s.seed,
        threads=s.threads,
    )
    with training_steps("training the embedder", s.progress) as progress:
        result = train_embedder(base, examples, folder / "embedder", settings, progress)
    start = time.perf_counter()
    table.add_columns({column: (current.source, tuned_embedder(folder / "embedder", base))})
    state = tuned_state.read_state(table)
    if not state.get("vector_column"):  # two bound columns now: text queries keep the one they used
        tuned_state.write_state(table, {**state, "vector_column": current.column})
    entry = next(
        (e for e in table.indexed_snapshot().entries() if e.kind == "vector" and e.columns == (current.column,)),
        None,
    )
    if entry is not None:  # index the new column as the current one is
        table.create_vector_index(column, metric=entry.params.get("metric", "cosine"))
    first, last = result.loss_drop()
    report.embedder = {
        "base": base.described,
        "base_column": current.column,
        "column": column,
        "model": f"{folder.name}/embedder",
        "examples": result.examples,
        "positives_per_query": s.embedder_positives,
        "steps": result.steps,
        "epochs": result.epochs,
        "max_steps": s.embedder_max_steps,
        "masked_negatives": result.masked,
        "seconds": result.seconds,
        "loss_first": first,
        "loss_last": last,
        "losses": [round(x, 4) for x in result.losses],
        "embed_seconds": time.perf_counter() - start,
        "indexed": entry is not None,
    }
    return current.column, column
