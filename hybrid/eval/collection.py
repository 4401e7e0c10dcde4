"""Test collections: documents, queries and relevance judgments, from BEIR folders or your own data."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Qrels = dict[str, dict[str, int]]
"""``{query_id: {doc_id: graded relevance}}`` (0 = judged not relevant)."""


@dataclass(frozen=True)
class Collection:
    """A retrieval test collection.

    `corpus` maps doc id -> ``{"title": ..., "text": ...}``; `queries` maps query
    id -> text; `qrels` holds the judgments. Only judged queries are evaluated.
    `ignore_identical_ids` drops a hit whose id equals the query id (BEIR's
    option for collections where queries are also documents).
    """

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: Qrels
    ignore_identical_ids: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [q for q in self.qrels if q not in self.queries]
        if missing:
            raise ValueError(f"{self.name}: {len(missing)} judged queries have no text (e.g. {missing[0]!r})")
        if not self.corpus:
            raise ValueError(f"{self.name}: the corpus is empty")

    @property
    def judged_queries(self) -> dict[str, str]:
        """The queries that have judgments, in id order."""
        return {q: self.queries[q] for q in sorted(self.qrels)}

    def with_queries_from(self, other: Mapping[str, str], name: str) -> Collection:
        """This corpus and these judgments, asked with `other`'s text for the same query ids: a
        cross-lingual collection when `other` holds the questions in another language (XQuAD-R
        shares ids across languages). Judged ids missing from `other` are dropped, and at least
        one must remain.

        >>> c = Collection("de", {"d1": {"title": "", "text": "Katze"}}, {"q1": "Katze?"}, {"q1": {"d1": 1}})
        >>> c.with_queries_from({"q1": "cat?"}, "en-to-de").judged_queries
        {'q1': 'cat?'}
        """
        qrels = {q: j for q, j in self.qrels.items() if q in other}
        if not qrels:
            raise ValueError(
                f"{self.name}: none of its {len(self.qrels)} judged query ids has a text in the other queries"
            )
        meta = {**self.meta, "queries_from": name}
        return Collection(name, self.corpus, dict(other), qrels, self.ignore_identical_ids, meta)

    def documents(self, title_in_text: bool = True) -> list[dict[str, str]]:
        """Rows for a table: doc_id, title, text, and `content` (title + text, what gets indexed)."""
        rows = []
        for doc_id, d in self.corpus.items():
            title, text = d.get("title") or "", d.get("text") or ""
            content = f"{title}. {text}" if title and title_in_text else text
            rows.append({"doc_id": doc_id, "title": title, "text": text, "content": content.strip() or doc_id})
        return rows


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON ({exc})") from None


def read_qrels(path: str | Path) -> Qrels:
    """A TREC-style TSV/CSV of (query-id, corpus-id, score) with a header, or a TREC qrels file."""
    path = Path(path)
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as f:
        first = f.readline()
        f.seek(0)
        delimiter = "\t" if "\t" in first else ("," if "," in first else " ")
        rows = list(csv.reader(f, delimiter=delimiter, skipinitialspace=True))
    if rows and not rows[0][-1].lstrip("-").isdigit():
        rows = rows[1:]  # header
    for n, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) == 4:  # TREC qrels: qid iter docid rel
            row = [row[0], row[2], row[3]]
        if len(row) != 3:
            raise ValueError(f"{path}: row {n} has {len(row)} fields, expected query-id, corpus-id, score")
        qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def load_queries(path: str | Path) -> dict[str, str]:
    """The queries of a BEIR folder (its queries.jsonl), or of a queries.jsonl file itself."""
    root = Path(path)
    file = root / "queries.jsonl" if root.is_dir() else root
    if not file.exists():
        raise FileNotFoundError(f"no queries.jsonl at {root}")
    return {str(q["_id"]): q["text"] for q in _jsonl(file)}


def load_beir(path: str | Path, split: str = "test", *, ignore_identical_ids: bool = False) -> Collection:
    """A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "qrels").mkdir()
        >>> _ = (d / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "", "text": "cats"}) + "\\n")
        >>> _ = (d / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cat"}) + "\\n")
        >>> _ = (d / "qrels" / "test.tsv").write_text("query-id\\tcorpus-id\\tscore\\nq1\\td1\\t1\\n")
        >>> load_beir(d).qrels
        {'q1': {'d1': 1}}
    """
    root = Path(path)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / needed).exists():
            raise FileNotFoundError(f"{root} is not a BEIR collection: {needed} is missing")
    corpus = {
        str(d["_id"]): {"title": d.get("title") or "", "text": d.get("text") or ""}
        for d in _jsonl(root / "corpus.jsonl")
    }
    queries = {str(q["_id"]): q["text"] for q in _jsonl(root / "queries.jsonl")}
    return Collection(
        root.name if root.name not in ("en", "zh") else f"{root.parent.name}-{root.name}",
        corpus,
        queries,
        read_qrels(root / "qrels" / f"{split}.tsv"),
        ignore_identical_ids,
        {"path": str(root), "split": split},
    )


def from_objects(
    corpus: Mapping[str, str | Mapping[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    name: str = "custom",
) -> Collection:
    """A collection from Python objects: ``{doc_id: text or {"title", "text"}}``, queries, judgments."""
    docs = {str(k): ({"title": "", "text": v} if isinstance(v, str) else dict(v)) for k, v in corpus.items()}
    judged = {str(q): {str(d): int(r) for d, r in rel.items()} for q, rel in qrels.items()}
    return Collection(name, docs, {str(k): v for k, v in queries.items()}, judged)


def _pairs(source: Any, what: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows of `columns` from a pyarrow table / hybrid Table / pandas frame (anything with ``to_arrow`` too)."""
    import pyarrow as pa

    if hasattr(source, "to_arrow") and not isinstance(source, pa.Table):
        source = source.to_arrow()
    elif not isinstance(source, pa.Table):
        source = pa.Table.from_pandas(source) if hasattr(source, "to_numpy") else None
    if source is None:
        raise TypeError(f"{what}: expected a mapping, a path or a table")
    missing = [c for c in columns if c not in source.column_names]
    if missing:
        raise ValueError(f"{what}: no column {missing[0]!r} (columns: {', '.join(source.column_names)})")
    return list(zip(*(source.column(c).to_pylist() for c in columns)))


def from_table(
    corpus: Any,
    queries: Mapping[str, str] | Any,
    qrels: Mapping[str, Mapping[str, int]] | str | Path | Any,
    *,
    id_column: str = "id",
    text_columns: Iterable[str] = ("text",),
    title_column: str | None = None,
    name: str = "custom",
) -> Collection:
    """A collection over your own data: the corpus from a hybrid Table (or pyarrow / pandas table).

    `queries`: ``{query_id: text}`` or a table with ``query_id`` and ``text`` columns; `qrels`:
    ``{query_id: {doc_id: relevance}}``, a qrels file (see `read_qrels`), or a table with
    ``query_id``, ``doc_id`` and ``relevance`` columns. Document ids are `id_column` as strings;
    the text is `text_columns` joined by a space.

    Example:
        >>> import pyarrow as pa
        >>> docs = pa.table({"id": [1, 2], "text": ["cats purr", "dogs bark"]})
        >>> judged = pa.table({"query_id": ["q"], "doc_id": ["2"], "relevance": [1]})
        >>> from_table(docs, {"q": "barking"}, judged).qrels
        {'q': {'2': 1}}
    """
    texts = tuple(text_columns)
    wanted = (id_column, *texts, *((title_column,) if title_column else ()))
    docs: dict[str, dict[str, str]] = {}
    for row in _pairs(corpus, "corpus", wanted):
        body = " ".join(str(v) for v in row[1 : 1 + len(texts)] if v)
        docs[str(row[0])] = {"title": str(row[-1] or "") if title_column else "", "text": body}
    if not isinstance(queries, Mapping):
        queries = {str(q): str(t) for q, t in _pairs(queries, "queries", ("query_id", "text"))}
    if isinstance(qrels, (str, Path)):
        judged: Mapping[str, Mapping[str, int]] = read_qrels(qrels)
    elif isinstance(qrels, Mapping):
        judged = qrels
    else:
        table: Qrels = {}
        for q, d, r in _pairs(qrels, "qrels", ("query_id", "doc_id", "relevance")):
            table.setdefault(str(q), {})[str(d)] = int(r)
        judged = table
    unknown = sorted({d for rel in judged.values() for d in rel} - set(docs))
    if unknown:
        raise ValueError(f"{name}: {len(unknown)} judged documents are not in the corpus (e.g. {unknown[0]!r})")
    return from_objects(docs, queries, judged, name)
