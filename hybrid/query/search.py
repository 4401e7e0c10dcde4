"""The immutable search query builder returned by `Table.search`."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError, VectorError, require
from hybrid.query.expansion import Expansion
from hybrid.query.fusion import Fusion, default_fusion
from hybrid.query.grouping import GroupFuse, Grouping, GroupScore
from hybrid.query.highlight import Highlighting
from hybrid.query.like import Like
from hybrid.query.pinning import check_rowids
from hybrid.query.scoring_functions import Boost, Decay, DecayKind, Modifier, ScoreFunction
from hybrid.query.text import TextQuery, as_text_query
from hybrid.rerankers.base import Reranker

if TYPE_CHECKING:
    import pandas
    import polars

    from hybrid.index.view import IndexedSnapshot
    from hybrid.table import Table

QueryType = Literal["auto", "vector", "fts", "hybrid"]

RESULT_COLUMNS = {
    "_rowid": "the row's stable id",
    "_score": "final score, higher is better (fused score, BM25, or -distance for a lone vector branch)",
    "_distance": "vector branch: distance to the query vector (smaller is closer)",
    "_vector_rank": "vector branch: 1-based rank in that branch",
    "_bm25": "text branch: BM25 score",
    "_fts_rank": "text branch: 1-based rank in that branch",
    "_relevance_score": "reranker score (only with .rerank())",
    "_group_rank": "with .group_by(): 1-based rank of the row's group",
    "_group_score": "with .group_by(): the group's score (its best row's, or the sum of its candidates')",
    "_context": "with .expand(): the hit's passage (its neighbours, or its whole document)",
    "_context_rowids": "with .expand(): the chunks the passage joins, in order (a parent table's text: the hits)",
    "_context_spans": "with .expand(): (start, end) of each hit inside _context, this row's hit first",
    "_base_score": "with .decay() / .boost(): the score before the score functions",
    "_decay_<column>": "with .decay(): the decay factor of the row's value",
    "_boost_<column or n>": "with .boost(): the boost factor (or, mode='add', the added amount)",
    "_pinned": "with .pin(): whether the row was pinned first",
    "_highlight": "with .highlight(): the best window of the text, matched terms marked",
    "_highlight_spans": "with .highlight(): (start, end) of every matched word in the stored text",
    "_highlight_window": "with .highlight(): (start, end) of the snippet's window in the stored text",
}
"""Reserved result columns. With several vector branches, the extra ones are suffixed by column name."""


@dataclass(frozen=True, eq=False)
class Query:
    """A search over one table. Every method returns a new query; nothing runs until
    `to_arrow()` / `to_pandas()` / `to_polars()` / `to_list()`.

    Example:
        >>> import hybrid, tempfile
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table(
        ...     "docs", [{"id": i, "text": w, "vector": [float(i), 1.0]} for i, w in enumerate(["cat", "dog", "cow"])])
        >>> _ = t.create_fts_index(["text"])
        >>> t.search("dog").select(["id"]).limit(1).to_list()[0]["id"]
        1
        >>> t.search([2.0, 1.0], query_type="vector").limit(2).select(["text"]).to_arrow()["text"].to_pylist()
        ['cow', 'dog']
    """

    table: Table
    query_type: QueryType = "auto"
    text_query: TextQuery | None = None
    vectors: tuple[tuple[str | None, np.ndarray], ...] = ()
    fts_columns: tuple[str, ...] | None = None
    boosts: Mapping[str, float] | None = None
    filter_sql: str | None = None
    prefilter: bool = True
    columns: tuple[str, ...] | None = None
    k: int = 10
    skip: int = 0
    depth: int | None = None
    fusion: Fusion = field(default_factory=default_fusion)
    reranker: Reranker | None = None
    ef: int | None = None
    vector_column: str | None = None
    """The bound vector column a text query is embedded for (default: the only bound one)."""
    fts_index: str | None = None
    """The full-text index to search, by name (default: the only one, or the one on `fts_columns`)."""
    branch_weights: Literal["auto", "equal"] | Mapping[str, float] = "auto"
    """Per-branch fusion weights (see :meth:`weights`)."""
    grouping: Grouping | None = None
    """Group the hits by a column (see :meth:`group_by`)."""
    expansion: Expansion | None = None
    """Grow each hit into its context (see :meth:`expand`)."""
    highlighting: Highlighting | None = None
    """Mark the query's terms in each hit (see :meth:`highlight`)."""
    functions: tuple[ScoreFunction, ...] = ()
    """Score functions after fusion (see :meth:`decay` and :meth:`boost`)."""
    pinned: tuple[int, ...] = ()
    """Rows put first (see :meth:`pin`)."""
    examples: Like | None = None
    """Search by example rows (see :meth:`like`)."""

    # -- building -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        table: Table,
        query_type: QueryType = "auto",
        fts_columns: tuple[str, ...] | None = None,
        vector_column: str | None = None,
        fts_index: str | None = None,
        vector: Sequence[float] | np.ndarray | None = None,
    ) -> Query:
        """A new query on `table` (what :meth:`hybrid.Table.search` starts from), with the query
        `vector` for `vector_column` if given (as :meth:`vector` sets it), without the dataclass's
        __init__ (which sets every field one by one): a field left at its default is read from the
        class (the dataclass keeps plain defaults there; immutable), so each query, and each copy
        :meth:`_with` makes, holds only the fields set on it."""
        fields_set = _defaults(cls).copy()
        fields_set["table"] = table  # item by item: no keyword dict made and merged per query
        fields_set["query_type"] = query_type
        fields_set["fts_columns"] = fts_columns
        fields_set["vector_column"] = vector_column
        fields_set["fts_index"] = fts_index
        if vector is not None:
            fields_set["vectors"] = ((vector_column, as_vector(vector)),)
        new = object.__new__(cls)
        _set_fields(new, "__dict__", fields_set)
        return new

    def _with(self, **changes: Any) -> Query:
        """A copy with `changes` (the builder's fields are validated by the methods that set them;
        dataclasses.replace would re-run __init__ for every field on every call)."""
        new = object.__new__(type(self))  # a subclass (hybrid.scoped.ScopedQuery) stays itself
        fields_set = self.__dict__.copy()  # one dict of the right size, where filling an empty one grows it
        fields_set.update(changes)
        _set_fields(new, "__dict__", fields_set)
        return new

    def where(self, sql: str, prefilter: bool = True) -> Query:
        """Keep rows matching a SQL boolean expression, applied before top-k (or after, if `prefilter=False`)."""
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError("where needs a non-empty SQL boolean expression")
        return self._with(filter_sql=sql, prefilter=prefilter)

    def select(self, columns: Sequence[str]) -> Query:
        """The table columns to return (result columns such as `_score` are always included); each at
        most once (:class:`hybrid.errors.SchemaError` names one given twice)."""
        return self._with(columns=selected(columns))

    def limit(self, k: int) -> Query:
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"limit must be a positive integer, got {k!r}")
        return self._with(k=k)

    def offset(self, n: int) -> Query:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"offset must be a non-negative integer, got {n!r}")
        return self._with(skip=n)

    def candidates(self, n: int) -> Query:
        """How many results of each branch the fusion counts (default 50). A branch is searched deeper when
        the page needs it (2 x (limit + offset) rows); its results past `n` score nothing and only order the
        rows no counted result reaches, so every page of a query agrees with every other."""
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"candidates must be a positive integer, got {n!r}")
        return self._with(depth=n)

    def fuse(self, fusion: Fusion) -> Query:
        """How branches are combined: Linear(alpha=0.7) over min-max scores (default), RRF(k), DBSF()."""
        if not callable(getattr(fusion, "fuse", None)):
            raise TypeError(f"fusion must have a fuse(results) method, got {type(fusion).__name__}")
        return self._with(fusion=fusion)

    def rerank(self, reranker: Reranker | None) -> Query:
        """Rescore the fused candidates with `reranker` (sees the candidates' columns); None: no reranker
        (not even the table's tuned one, see :meth:`hybrid.Table.tune`)."""
        if reranker is not None and not callable(getattr(reranker, "rerank", None)):
            raise TypeError(f"reranker must have a rerank(query, candidates) method, got {type(reranker).__name__}")
        return self._with(reranker=reranker)

    def vector(self, v: Sequence[float] | np.ndarray, column: str | None = None) -> Query:
        """The query vector for `column` (default: the table's vector column); one branch per column."""
        arr = as_vector(v)
        if not self.vectors:  # the usual first vector
            return self._with(vectors=((column, arr),))
        kept = tuple((c, x) for c, x in self.vectors if c != column)
        return self._with(vectors=kept + ((column, arr),))

    def text(
        self, t: str | TextQuery, columns: Sequence[str] | None = None, boosts: Mapping[str, float] | None = None
    ) -> Query:
        """The text-branch query (a string, Match, Phrase, Boolean or QueryString), optionally per-field boosts."""
        return self._with(
            text_query=as_text_query(t),
            fts_columns=tuple(columns) if columns is not None else self.fts_columns,
            boosts=dict(boosts) if boosts is not None else self.boosts,
        )

    def weights(self, weights: Literal["auto", "equal"] | Mapping[str, float]) -> Query:
        """Branch weights for fusion: "auto" (default), "equal", or ``{"vector": 0.3, "fts": 1.0}``
        (keys: a branch kind or a vector column name).

        "auto" weighs the branches of a text query embedded by a bound embedder by how
        well each finds documents from pieces of their own text (see
        :mod:`hybrid.query.calibration`), so a branch that is weak on this table (an
        English-only embedder on Chinese text) cannot drown the other one, and every
        branch, bound embedder or not, by the steepness of its list for this query
        (:mod:`hybrid.query.confidence`): a branch whose tenth result scores nearly as
        well as its first cannot tell its candidates apart and has little say. For a
        question in another language than the text index, the text branch also counts
        the share of the question's terms its index has seen, squared.
        """
        if isinstance(weights, str):
            if weights not in ("auto", "equal"):
                raise ValueError(f"weights must be 'auto', 'equal' or a mapping, got {weights!r}")
        elif not isinstance(weights, Mapping) or not all(
            isinstance(v, (int, float)) and v >= 0 and np.isfinite(v) for v in weights.values()
        ):
            raise ValueError(f"weights must map branch names to non-negative numbers, got {weights!r}")
        return self._with(branch_weights=weights if isinstance(weights, str) else dict(weights))

    def group_by(
        self, column: str | None = None, per_group: int = 1, score: GroupScore = "max", fuse: GroupFuse = "rows"
    ) -> Query:
        """Return the best `limit` groups of rows sharing `column`'s value (default: the table's declared
        parent column, :meth:`hybrid.Table.set_chunking`), each with its `per_group` best rows (its best,
        then its best among each branch's first 50 results, `.candidates(n)`: those the same on every
        page), so that one document cannot fill the results with its chunks. Rows come group by group,
        best first, with ``_group_rank`` and ``_group_score`` (the group's best row's score, or with
        ``score="sum"`` the sum of its candidates' scores, those each branch's first 50 give, or with
        ``score="max_mean"`` half the best row's plus half the mean over all the group's live rows,
        which does not favour long documents
        for having many chunks: :func:`hybrid.query.grouping.max_mean`; ``score="max_mean_len"`` weighs
        each chunk by its text's length in that mean, so a short tail chunk counts for what it holds).
        Grouping sees the final scores: after the filter and a reranker; ``offset`` skips whole groups.
        A hybrid search fuses the rows and groups after (``fuse="rows"``, as a reranker or score
        functions always do); ``fuse="groups"`` groups each branch's hits and fuses the branches'
        group lists (:mod:`hybrid.query.group_fusion`: a group's ``_group_score`` is its fused score,
        its rows ordered by their fused row scores). A table's title rows (``set_chunking(title_row=...)``)
        count in their group's score but are never its best row nor returned (:mod:`hybrid.query.title_rows`).

        >>> import hybrid, tempfile
        >>> rows = [{"doc": d, "text": t} for d, t in [("a", "red fox"), ("a", "red red fox"), ("b", "fox")]]
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", rows)
        >>> _ = t.create_fts_index("text")
        >>> [r["doc"] for r in t.search("red fox").group_by("doc").limit(5).to_list()]
        ['a', 'b']
        """
        if column is not None and column not in self.table.schema.names:
            raise SchemaError(
                f"group_by: no column {column!r} in the table (columns: {', '.join(self.table.schema.names)})"
            )
        return self._with(grouping=Grouping(column, per_group, score, fuse))

    def expand(self, neighbours: int = 0, parent: bool = False) -> Query:
        """Grow each hit into a passage for a prompt, in ``_context``: with `neighbours`, the hit and the
        `neighbours` live chunks before and after it in its document (a hit whose window touches a
        better hit's passage joins it and leaves the results, also when that hit is on an earlier
        page); with `parent`, the whole document once, on the page of its best hit (from the
        declared parent table, or its chunks joined). ``_context_spans``
        marks where the hits lie in it. Needs :meth:`hybrid.Table.set_chunking`.

        >>> import hybrid, tempfile
        >>> rows = [{"doc": "a", "n": i, "text": w} for i, w in enumerate(["The fox.", "It jumps.", "Over dogs."])]
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", rows)
        >>> _, _ = t.create_fts_index("text"), t.set_chunking(parent="doc", position="n")
        >>> t.search("jumps").expand(neighbours=1).to_list()[0]["_context"]
        'The fox.\\n\\nIt jumps.\\n\\nOver dogs.'
        """
        return self._with(expansion=Expansion(neighbours, parent))

    def highlight(self, column: str | None = None, width: int = 200, pre: str = "<em>", post: str = "</em>") -> Query:
        """Mark the query's terms in each hit: ``_highlight`` is the `width`-character window of the
        text holding the most distinct matched terms, each match between `pre` and `post`;
        ``_highlight_spans`` are the character offsets of every match in the stored text of
        `column` (default: the searched text column). Words match as the full-text index matched
        them (its analyzer: stemming, folding, Chinese segmentation).

        >>> import hybrid, tempfile
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", [{"text": "Indexes speed up reads."}])
        >>> _ = t.create_fts_index("text")
        >>> hit = t.search("index").highlight().to_list()[0]
        >>> hit["_highlight"], hit["_highlight_spans"]
        ('<em>Indexes</em> speed up reads.', [{'start': 0, 'end': 7}])
        """
        return self._with(highlighting=Highlighting(column, width, pre, post))

    def decay(
        self,
        column: str,
        scale: str | float | dt.timedelta,
        kind: DecayKind = "exp",
        *,
        origin: Any = None,
        offset: str | float | dt.timedelta = 0,
        decay: float = 0.5,
    ) -> Query:
        """Multiply each candidate's score by how close `column` (a timestamp, date or number) is to
        `origin` (default: now): 1 within `offset`, `decay` at `scale` beyond it (``"30d"``, ``"12h"``,
        a number), by an ``exp``, ``gauss`` or ``linear`` curve (:mod:`hybrid.query.scoring_functions`).
        The factor is in ``_decay_<column>``, the score before it in ``_base_score``.

        >>> import hybrid, tempfile
        >>> rows = [{"text": "rotate keys", "age": a} for a in (40, 3)]
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", rows)
        >>> _ = t.create_fts_index("text")
        >>> [r["age"] for r in t.search("keys").decay("age", scale=10, origin=0).to_list()]
        [3, 40]
        """
        if column not in self.table.schema.names:
            raise SchemaError(
                f"decay: no column {column!r} in the table (columns: {', '.join(self.table.schema.names)})"
            )
        return self._with(functions=(*self.functions, Decay(column, scale, kind, origin, offset, decay)))

    def boost(
        self,
        factor: float = 1.0,
        *,
        where: str | None = None,
        column: str | None = None,
        modifier: Modifier = "none",
        mode: Literal["multiply", "add"] = "multiply",
    ) -> Query:
        """Boost rows matching `where` by `factor`, or by ``modifier(factor * column)``; multiplied into
        the score (``mode="add"``: added to it). The factor is in ``_boost_<column>`` / ``_boost_<n>``."""
        if column is not None and column not in self.table.schema.names:
            raise SchemaError(
                f"boost: no column {column!r} in the table (columns: {', '.join(self.table.schema.names)})"
            )
        n = sum(isinstance(f, Boost) and f.where is not None for f in self.functions)
        return self._with(functions=(*self.functions, Boost(factor, where, column, modifier, mode, n)))

    def pin(self, rowids: Sequence[int]) -> Query:
        """Put these rows first, in this order (the live ones the filter allows), before every hit."""
        if self.grouping is not None or self.reranker is not None:
            raise ValueError("pin() cannot be combined with group_by() or rerank()")
        return self._with(pinned=check_rowids(rowids))

    def like(self, rowids: Sequence[int], unlike: Sequence[int] | None = None, max_terms: int = 25) -> Query:
        """More like these rows: the examples' mean vector (pushed away from `unlike` rows' mean) and their
        `max_terms` most distinctive words as a BM25 query, fused like any hybrid query; the examples
        are never results. Combines with ``where``, ``group_by``, ``decay`` ... (:mod:`hybrid.query.like`).

        >>> import hybrid, tempfile
        >>> texts = ["vacuum reclaims storage", "vacuum frees storage space", "index speeds reads"]
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", [{"text": x} for x in texts])
        >>> _ = t.create_fts_index("text")
        >>> [r["text"] for r in t.search().like([0]).limit(1).to_list()]
        ['vacuum frees storage space']
        """
        return self._with(examples=Like.make(rowids, unlike, max_terms))

    def ef_search(self, ef: int) -> Query:
        """HNSW search depth for this query (default: the index's tuned value)."""
        if not isinstance(ef, int) or ef <= 0:
            raise ValueError(f"ef_search must be a positive integer, got {ef!r}")
        return self._with(ef=ef)

    # -- running --------------------------------------------------------------------------

    def explain(self) -> str:
        """The plan: branches, indexes or exact search, where the filter applies, fusion, limits."""
        from hybrid.query.explain import explain

        return explain(self)

    def to_arrow(self) -> pa.Table:
        found, view = _plain_vector(self)  # a plain vector query by its plan made once per version
        return found if found is not None else _execute(self, view)

    def to_list(self) -> list[dict[str, Any]]:
        return self.to_arrow().to_pylist()

    def to_pandas(self) -> pandas.DataFrame:
        require("pandas", "pandas")
        return self.to_arrow().to_pandas()

    def to_polars(self) -> polars.DataFrame:
        pl: Any = require("polars", "polars")
        return pl.from_arrow(self.to_arrow())

    async def ato_arrow(self) -> pa.Table:
        """`to_arrow` in a worker thread of hybrid's async pool (:func:`hybrid.aio.set_threads`), so an
        event loop keeps serving while the search runs."""
        from hybrid.aio import run_sync

        return await run_sync(self.to_arrow)

    async def ato_list(self) -> list[dict[str, Any]]:
        """`to_list` in a worker thread.

        >>> import asyncio, hybrid, tempfile
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("t", [{"id": 1, "text": "rotate keys"}])
        >>> _ = t.create_fts_index("text")
        >>> [r["id"] for r in asyncio.run(t.search("keys").ato_list())]
        [1]
        """
        return (await self.ato_arrow()).to_pylist()


def selected(columns: Sequence[str] | str) -> tuple[str, ...]:
    """The columns a ``select()`` names, as a tuple; :class:`hybrid.errors.SchemaError` for one named twice."""
    names = (columns,) if isinstance(columns, str) else tuple(columns)
    if len(names) > 1 and len(set(names)) != len(names):
        twice = sorted({c for c in names if names.count(c) > 1})
        raise SchemaError(f"select() names column(s) {twice} more than once")
    return names


def _execute(q: Query, view: IndexedSnapshot | None = None) -> pa.Table:
    """:func:`hybrid.query.executor.execute` (imported at the first query: the executor imports this module)."""
    global _execute
    from hybrid.query.executor import execute

    _execute = execute
    return execute(q, view)


def _plain_vector(q: Query) -> tuple[pa.Table | None, IndexedSnapshot | None]:
    """:func:`hybrid.query.plain_vector.attempt` (imported at the first query, as the executor)."""
    global _plain_vector
    from hybrid.query.plain_vector import attempt

    _plain_vector = attempt
    return attempt(q)


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type[Query]) -> dict[str, Any]:
    """The default of each field of `cls` that the class does not hold itself (a factory's value, made
    once: the defaults are immutable)."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = {}
        for f in fields(cls):
            if f.default is not MISSING:
                if getattr(cls, f.name, MISSING) is not f.default:  # the dataclass left it on the class
                    found[f.name] = f.default
            elif callable(f.default_factory):
                found[f.name] = f.default_factory()
        _DEFAULTS[cls] = found
    return found


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
_sum, _isfinite = np.add.reduce, math.isfinite
_set_fields = object.__setattr__  # (a frozen dataclass refuses its own __setattr__)


def as_vector(v: Any) -> np.ndarray:
    """A 1-d float32 query vector; raises VectorError (a ValueError) on NaN / inf or a wrong shape."""
    if type(v) is np.ndarray and v.dtype is _FLOAT32:  # the usual query vector, as it is
        arr = v
    else:
        try:
            arr = np.asarray(v, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise VectorError(f"a query vector must be a sequence of numbers ({exc})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise VectorError(f"a query vector must be 1-dimensional and non-empty, got shape {arr.shape}")
    # The sum in float64 is finite exactly when every value is: no float32 values can overflow it (each is
    # below 3.5e38, float64 holds 1.8e308), a NaN carries through, an inf too unless one of each sign
    # meets (NaN, with numpy's "invalid value" warning, raised here where warnings are errors). One
    # reduction: ~1.1 us where the minimum and maximum reductions took ~1.8 us (warm, a 384-d vector),
    # and the dot product with a zero vector inside np.errstate (for the 0 x inf warning) ~18 us right
    # after a graph walk has pushed numpy's code out of the CPU caches
    try:
        total = _sum(arr, dtype=_FLOAT64)
    except RuntimeWarning:
        total = math.nan
    if not _isfinite(total):
        raise VectorError("the query vector holds NaN or inf")
    return arr


def is_vector_like(q: Any) -> bool:
    if isinstance(q, np.ndarray):
        return True
    return isinstance(q, (list, tuple)) and len(q) > 0 and all(isinstance(x, (int, float, np.number)) for x in q)
