"""Judgments a team already has (BEIR / TREC qrels) imported as feedback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hybrid.errors import FeedbackError
from hybrid.feedback.judgments import Judgments
from hybrid.feedback.store import Feedback

if TYPE_CHECKING:
    from hybrid.commits import Commit
    from hybrid.table import Table


def queries_for(qrels: Path, queries: Path | None) -> Path:
    """The queries file: `queries`, else the BEIR folder's ``queries.jsonl`` beside ``qrels/<split>.tsv``."""
    if queries is not None:
        return queries
    for folder in (qrels.parent, qrels.parent.parent):
        if (folder / "queries.jsonl").exists():
            return folder / "queries.jsonl"
    raise FeedbackError(f"no queries.jsonl beside {qrels}: pass the queries file (BEIR queries.jsonl)")


def import_qrels(
    table: Table, qrels: str | Path, queries: str | Path | None = None, *, key: str = "id", who: str | None = None
) -> Commit:
    """Add every judgment of a qrels file (BEIR TSV with header, or TREC ``qid iter docid rel``) as feedback
    on `table`: the query's text from `queries` (BEIR ``queries.jsonl``; default: the one beside the qrels),
    the row by its `key` column (the corpus id). One commit; a judgment of a query without text or of an
    unknown document raises :class:`~hybrid.errors.FeedbackError` and nothing is written."""
    from hybrid.eval.collection import load_queries, read_qrels

    path = Path(qrels)
    texts = load_queries(queries_for(path, Path(queries) if queries is not None else None))
    judged = read_qrels(path)
    items: list[Feedback] = []
    for qid, docs in judged.items():
        if qid not in texts:
            raise FeedbackError(f"{path}: query {qid!r} has no text in the queries file")
        for doc, label in docs.items():
            items.append(Feedback(texts[qid], {key: doc}, float(label), who=who, source=f"qrels:{path.name}"))
    return table.feedback.add_many(items)


def judgments_from_qrels(
    table: Table, qrels: str | Path, queries: str | Path | None = None, *, key: str = "id"
) -> Judgments:
    """A qrels file's judgments over `table`'s rows (by the `key` column), without storing them as feedback."""
    from hybrid.eval.collection import load_queries, read_qrels
    from hybrid.feedback.store import _key_rowids

    path = Path(qrels)
    texts = load_queries(queries_for(path, Path(queries) if queries is not None else None))
    if key not in table.schema.names:
        raise FeedbackError(f"no column {key!r} in table {table.name!r}")
    judged = read_qrels(path)
    rows = _key_rowids(table, key, {doc for docs in judged.values() for doc in docs})
    labels: dict[str, dict[int, float]] = {}
    for qid, docs in judged.items():
        if qid not in texts:
            raise FeedbackError(f"{path}: query {qid!r} has no text in the queries file")
        for doc, label in docs.items():
            if doc not in rows:
                raise FeedbackError(
                    f"{path}: query {qid!r} judges {doc!r}, which no row of {table.name!r} has as {key}"
                )
            labels.setdefault(texts[qid], {})[rows[doc]] = float(label)
    return Judgments(labels)
