"""`tune`'s questions embedded ahead of its searches, in batches.

Mining hard negatives and the guard's held-out figures run one search a question, and each search
embeds its question alone. For a model that pays per call that is most of the cost: a tuned column's
embedder (a local sentence-transformers folder, run by torch) took 290 CPU-ms a question alone
against 23 in batches on a crowded 2-core machine, while the default column's queries (the int8 ONNX
twin) cost about 2 either way (``eval/results/tune_mining_ab.md``).
:func:`embed_ahead` embeds the questions once, in the embedder's batches, into the embedder's cache
(one shared instance per configuration in a process), where the searches find them: the same vectors
as the one-at-a-time path up to the model's padding arithmetic, as in :mod:`hybrid.eval.query_vectors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from hybrid.embedders import binding
from hybrid.errors import FeedbackError
from hybrid.feedback.embedder_stage import current_binding

if TYPE_CHECKING:
    from hybrid.table import Table


def embed_ahead(table: Table, texts: Iterable[str], vector_column: str | None = None) -> int:
    """Embed the distinct non-blank `texts` in batches for the vector column a text search of `table` on
    `vector_column` embeds for (None: the tuned state's column, else the only bound one); returns how many
    were handed to the embedder (0 when no bound column applies or it cannot embed many at once)."""
    if vector_column is None:
        try:
            target: binding.Binding | None = current_binding(table)
        except FeedbackError:
            return 0  # the searches say what is wrong, as they would without this
    else:
        target = next((b for b in binding.read(table.snapshot().manifest.metadata) if b.column == vector_column), None)
    if target is None:
        return 0
    many = getattr(target.embedder, "embed_queries", None)
    distinct = [t for t in dict.fromkeys(texts) if isinstance(t, str) and t.strip()]
    if many is None or not distinct:
        return 0
    many(distinct)
    return len(distinct)
