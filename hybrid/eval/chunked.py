"""The chunked evaluation mode: a collection's documents indexed as ~N-token chunks, scored per document.

A RAG table holds chunks, while judgments name documents. Each document's text is
cut by the ingest chunker (:class:`hybrid.ingest.chunking.Chunker`, approximate tokens,
an eighth of a chunk repeated at the start of the next) into chunks that carry the
document id (``doc_id``, the declared parent) and their number (``chunk_no``); the
document's title starts every chunk's indexed ``content``. Every run is then asked
three times over the chunk table: grouped by document (``.group_by("doc_id",
score="max_mean")``, the k best documents, each scored by half its best chunk's score plus
half the mean over all its chunks, so that a long document does not win for having many
chunks; ``<run>@chunks-len`` the same with each chunk weighted by its length in the mean,
``score="max_mean_len"``), grouped with each document scored by its best chunk alone (``score="max"``), and
flat (the k best chunks, each document counted once, at its best chunk's rank, so a flat
run lists fewer than k documents). A grouped hybrid run fuses the chunk lists and groups
after; ``<run>@chunks-groups`` asks a hybrid run a fourth time, each branch's chunks grouped by
document (``max_mean``) and the document lists fused (:mod:`hybrid.query.group_fusion`).

>>> from hybrid.eval.collection import from_objects
>>> c = from_objects({"d1": {"title": "T", "text": "One two three. " * 30}}, {"q": "one"}, {"q": {"d1": 1}})
>>> rows = chunk_rows(c, 32)
>>> rows[0]["doc_id"], rows[0]["chunk_no"], rows[1]["chunk_no"], rows[0]["content"][:12]
('d1', 0, 1, 'T. One two t')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from hybrid.eval.collection import Collection
from hybrid.eval.runs import RunConfig

if TYPE_CHECKING:
    from hybrid.db import Database
    from hybrid.embedders.base import Embedder
    from hybrid.table import Table

PARENT = "doc_id"
POSITION = "chunk_no"
GROUPED = "@chunks"
LENGTH_WEIGHTED = "@chunks-len"
BEST_CHUNK = "@chunks-best"
FLAT = "@chunks-flat"
GROUPS_FUSED = "@chunks-groups"
DENSE_TEXT = "dense_text"
TITLE_ROW = "is_title"

TitleLayout = Literal["every", "dense", "once", "none"]
"""Where a document's title goes in its chunk table: before every chunk's text ("every": indexed
and embedded with each), before every chunk's embedded text only ("dense": the full-text index
sees the chunk alone), once per document as a row of its own ahead of the text chunks ("once",
marked ``is_title`` and declared the table's title row: :mod:`hybrid.query.title_rows`, counted in
its document's ``max_mean`` mean but never its best row nor returned, as the unchunked table counts
the title once per document), or nowhere."""


DEFAULT_TITLES: TitleLayout = "every"
"""The layout ``hybrid eval --chunk`` uses unless told (``--chunk-titles``), as ``hybrid ingest`` does.
Kept by the worst cell of hybrid, flat and grouped, on the webfaq and SciFact samples: "every"
-0.0467, "once" -0.0473 (flat webfaq both; "once" is best grouped, +0.0113 against -0.0403), with
flat search leaving title rows out: ``eval/results/chunked_titles_g20g.md``."""


def _layout(title: bool, titles: TitleLayout | None) -> TitleLayout:
    if titles is None:
        return "every" if title else "none"
    if titles not in get_args(TitleLayout):
        raise ValueError(f"titles must be one of {', '.join(get_args(TitleLayout))}, got {titles!r}")
    return titles


def chunk_rows(
    collection: Collection, tokens: int, *, title: bool = True, titles: TitleLayout | None = None
) -> list[dict[str, Any]]:
    """One row per chunk of each document: doc_id, chunk_no, title, and content (the indexed text),
    the title placed as `titles` says (:data:`TitleLayout`; ``title=False`` is ``titles="none"``).
    With ``titles="dense"`` each row also holds ``dense_text`` (title + chunk text, to embed); with
    ``titles="once"`` a titled document's chunk 0 is its title alone, and every row says whether it
    is that title row (``is_title``)."""
    from hybrid.ingest.chunking import Chunker

    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 16:
        raise ValueError(f"chunk size must be an integer of at least 16 tokens, got {tokens!r}")
    layout = _layout(title, titles)
    chunker = Chunker(size=tokens, overlap=tokens // 8, unit="tokens")
    rows = []
    for doc_id, d in collection.corpus.items():
        name, text = d.get("title") or "", d.get("text") or ""
        pieces = chunker.split([text]) or [name or doc_id]
        title_row = layout == "once" and bool(name) and pieces != [name]
        if title_row:
            pieces = [name, *pieces]
        for n, piece in enumerate(pieces):
            titled = f"{name}. {piece}" if name and piece != name else piece
            row = {PARENT: doc_id, POSITION: n, "title": name, "content": titled if layout == "every" else piece}
            if layout == "dense":
                row[DENSE_TEXT] = titled
            if layout == "once":
                row[TITLE_ROW] = title_row and n == 0
            rows.append(row)
    return rows


def build_chunk_table(
    db: Database,
    collection: Collection,
    tokens: int,
    *,
    embedders: Mapping[str, Embedder] | None = None,
    fts: Mapping[str, Mapping[str, Any]] | None = None,
    vector_index: bool = False,
    title: bool = True,
    titles: TitleLayout | None = None,
) -> Table:
    """The collection's chunks as a table with the same vector columns and full-text indexes as
    :func:`hybrid.eval.runs.build_table` makes for its documents, its chunk layout declared
    (named by :func:`chunk_table_name`); the full-text indexes cover `content`, the vectors embed
    `dense_text` where the layout has one (``titles="dense"``), else `content`."""
    layout = _layout(title, titles)
    source = DENSE_TEXT if layout == "dense" else "content"
    embedders = dict(embedders or {})
    first = dict(list(embedders.items())[:1])
    table = db.create_table(
        chunk_table_name(collection.name, tokens, titles=layout),
        chunk_rows(collection, tokens, titles=layout),
        mode="overwrite",
        embedding={col: (source, e) for col, e in first.items()},
    )
    for col, e in list(embedders.items())[1:]:
        table.add_columns({col: (source, e)})
    for index_name, options in (fts or {"bm25": {}}).items():
        table.create_fts_index("content", name=index_name, replace=True, **options)
    if vector_index:
        for col in embedders:
            table.create_vector_index(col, replace=True)
    table.set_chunking(
        parent=PARENT, position=POSITION, text="content", title_row=TITLE_ROW if layout == "once" else None
    )
    return table


def chunk_table_name(collection: str, tokens: int, title: bool = True, *, titles: TitleLayout | None = None) -> str:
    """The name :func:`build_chunk_table` gives a collection's chunk table: ``<collection>_chunks<tokens>``,
    then ``_notitle``, ``_densetitle`` or ``_titleonce`` for the layouts other than "every"."""
    suffix = {"every": "", "none": "_notitle", "dense": "_densetitle", "once": "_titleonce"}
    return f"{collection}_chunks{tokens}" + suffix[_layout(title, titles)]


def chunked_configs(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """Each run four times over the chunk table: grouped by document (``<name>@chunks``, "max_mean"
    group scores; ``<name>@chunks-len``, "max_mean_len"), grouped with best-chunk scores
    (``<name>@chunks-best``), flat (``<name>@chunks-flat``); a hybrid run also with each branch
    grouped before the document lists are fused (``<name>@chunks-groups``)."""
    out = []
    for c in configs:
        out += [
            replace(c, name=c.name + GROUPED, group_by=PARENT, group_score="max_mean"),
            replace(c, name=c.name + LENGTH_WEIGHTED, group_by=PARENT, group_score="max_mean_len"),
            replace(c, name=c.name + BEST_CHUNK, group_by=PARENT, group_score="max"),
            replace(c, name=c.name + FLAT),
        ]
        if c.mode == "hybrid":
            out.append(
                replace(c, name=c.name + GROUPS_FUSED, group_by=PARENT, group_score="max_mean", group_fuse="groups")
            )
    return out
