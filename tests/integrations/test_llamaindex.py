"""HybridVectorStore and HybridEmbedding end to end through LlamaIndex, with the packaged MiniLM."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("sentence_transformers")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import HashingEmbedder, SentenceTransformerEmbedder  # noqa: E402
from hybrid.errors import FilterError, SchemaError  # noqa: E402
from hybrid.integrations.llamaindex import HybridEmbedding, HybridVectorStore, filters_to_sql  # noqa: E402

DEFAULT, TEXT, HYBRID = VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.HYBRID
F, Op, Cond = MetadataFilter, FilterOperator, FilterCondition

DOCS: dict[str, tuple[str, dict[str, Any]]] = {
    "router": (
        "To reset the router, hold the small button on the back for ten seconds until the lights blink.",
        {"author": "Ada", "year": 2019, "rating": 4.5, "tags": ["network", "howto"], "topic": "tech"},
    ),
    "grant": (
        "Applications for the Kvaternik fellowship close at the end of March; send two references.",
        {"author": "O'Brien", "year": 2021, "rating": 3.0, "tags": ["funding"], "topic": "academia"},
    ),
    "bread": (
        "Knead the dough for ten minutes, let it rise for an hour, then bake at 220 degrees.",
        {"author": "Ada", "year": 2020, "rating": 5, "tags": ["food", "howto"], "topic": "food"},
    ),
    "tomato": (
        "Tomato seedlings need plenty of sun and should be watered every morning in summer.",
        {"author": "Grace", "year": 2018, "tags": [], "topic": "garden", "note": ""},
    ),
    "comet": (
        "The comet will be visible to the naked eye just after sunset in the western sky.",
        {"author": "Grace", "year": 2023, "rating": 4.0, "tags": ["space"], "topic": "science", "note": None},
    ),
    "tax": (
        "Submit your annual income tax return before the deadline to avoid a late penalty.",
        {"author": "Linus", "year": 2022, "rating": 2.5, "topic": "finance", "note": "check the date"},
    ),
    "marathon": (
        "Runners preparing for a marathon should increase their weekly distance gradually.",
        {"author": "linus", "year": 2021, "rating": 4.2, "tags": ["sport", "howto"], "topic": "sport"},
    ),
    "python": (
        "A Python list comprehension builds a new list by applying an expression to each item.",
        {"author": "Guido", "year": 2020, "rating": 4.8, "tags": ["code", "howto"], "topic": "tech"},
    ),
    "vaccine": (
        "The clinic offers flu vaccinations to adults every autumn without an appointment.",
        {"year": 2022, "rating": 3.9, "tags": ["health"], "topic": "health"},
    ),
    "piano": (  # the year is a string here: it must never compare equal to, or order against, a number
        "Practising scales slowly every day improves finger independence on the piano.",
        {"author": "Clara", "year": "2017", "tags": ["music"], "topic": "music"},
    ),
    "pump": (
        "Ship the spare pump to warehouse bx7qz9 before Friday.",
        {"author": "Ops", "year": 2024, "tags": ["logistics"], "topic": "logistics"},
    ),
    "pump2": (
        "Ship the spare pump to warehouse bx7qz6 before Friday.",
        {"author": "Ops", "year": 2024, "tags": ["logistics"], "topic": "logistics"},
    ),
    "valve": (
        "Ship the spare valve to warehouse bx7qs9 before Friday.",
        {"author": "Ops", "year": 2024, "rating": 1, "tags": ["logistics"], "topic": "logistics"},
    ),
}
PARAPHRASE = ("how do I restore my wifi box to factory settings", "router")  # no word in common with the text
KEYWORD = ("bx7qz9", "pump")  # only BM25 tells bx7qz9 from bx7qz6 / bx7qs9
TEXT_QUERY = "spare pump tomato comet tax python piano router dough"  # a term of every doc but three


def documents(names: list[str] | None = None) -> list[Document]:
    return [Document(text=DOCS[n][0], doc_id=n, metadata=dict(DOCS[n][1])) for n in names or list(DOCS)]


@pytest.fixture(scope="module")
def embed_model() -> HybridEmbedding:
    return HybridEmbedding(SentenceTransformerEmbedder())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embed_model: HybridEmbedding) -> tuple[Path, VectorStoreIndex]:
    """One index over DOCS, shared by the read-only tests."""
    path = tmp_path_factory.mktemp("li") / "db"
    store = HybridVectorStore(uri=path, table_name="nodes")
    index = VectorStoreIndex.from_documents(
        documents(), storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model
    )
    return path, index


def fresh_index(path: Path, embed_model: HybridEmbedding, names: list[str]) -> VectorStoreIndex:
    store = HybridVectorStore(uri=path, table_name="nodes")
    return VectorStoreIndex.from_documents(
        documents(names), storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model
    )


def retrieve(index: VectorStoreIndex, query: str, mode: VectorStoreQueryMode, **kwargs: Any) -> list[str]:
    hits = index.as_retriever(vector_store_query_mode=mode, **kwargs).retrieve(query)
    return [h.node.ref_doc_id or "" for h in hits]


# -- query modes ---------------------------------------------------------------------------------


def test_default_finds_a_paraphrase_that_bm25_cannot(built: tuple[Path, VectorStoreIndex]) -> None:
    _, index = built
    query, target = PARAPHRASE
    assert retrieve(index, query, DEFAULT, similarity_top_k=3)[0] == target
    assert target not in retrieve(index, query, TEXT, similarity_top_k=20)
    assert retrieve(index, query, HYBRID, similarity_top_k=3)[0] == target


def test_text_search_and_hybrid_find_a_keyword_the_dense_model_misses(built: tuple[Path, VectorStoreIndex]) -> None:
    _, index = built
    query, target = KEYWORD
    dense = retrieve(index, query, DEFAULT, similarity_top_k=3)
    assert dense[0] != target, "precondition: MiniLM alone ranks another warehouse first"
    assert retrieve(index, query, TEXT, similarity_top_k=5) == [target]  # BM25: only the doc holding the term
    assert retrieve(index, query, HYBRID, similarity_top_k=3)[0] == target


def test_scores_ids_and_top_k(built: tuple[Path, VectorStoreIndex], embed_model: HybridEmbedding) -> None:
    path, index = built
    store = index.vector_store
    vec = embed_model.get_query_embedding(PARAPHRASE[0])
    res = store.query(VectorStoreQuery(query_embedding=vec, similarity_top_k=4))
    assert res.ids == [n.node_id for n in res.nodes] and len(res.ids) == 4
    assert res.similarities == sorted(res.similarities, reverse=True)
    stored = store.get_nodes(node_ids=[res.ids[0]])[0]
    row = hybrid.connect(path).open_table("nodes").to_arrow(["id", "embedding"], where=f"id = '{stored.node_id}'")
    cosine = float(np.dot(row["embedding"][0].values.to_numpy(), np.asarray(vec, np.float32)))
    assert res.similarities[0] == pytest.approx(cosine, abs=1e-5)  # unit vectors: 1 - cosine distance
    text = store.query(VectorStoreQuery(query_str="spare pump warehouse", mode=TEXT, sparse_top_k=2))
    assert len(text.ids) == 2 and all(s > 0 for s in text.similarities)
    both = VectorStoreQuery(query_str="spare pump", query_embedding=vec, mode=HYBRID, hybrid_top_k=5)
    assert len(store.query(both).ids) == 5


def test_alpha_weighs_the_vector_branch(built: tuple[Path, VectorStoreIndex]) -> None:
    _, index = built
    query, target = KEYWORD
    dense_first = retrieve(index, query, DEFAULT, similarity_top_k=1)
    assert retrieve(index, query, HYBRID, similarity_top_k=1, alpha=0.0) == [target]  # BM25 only
    assert retrieve(index, query, HYBRID, similarity_top_k=1, alpha=1.0) == dense_first  # vectors only


def test_unsupported_mode_and_missing_inputs_raise(built: tuple[Path, VectorStoreIndex]) -> None:
    _, index = built
    store = index.vector_store
    with pytest.raises(ValueError, match="mmr"):
        store.query(VectorStoreQuery(query_embedding=[0.0] * 384, mode=VectorStoreQueryMode.MMR))
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.0] * 384, mode=HYBRID))
    with pytest.raises(ValueError, match="query_embedding"):
        store.query(VectorStoreQuery(query_str="pump", mode=DEFAULT))


# -- metadata filters ------------------------------------------------------------------------------


def _eq(a: Any, b: Any) -> bool:
    if isinstance(b, str):
        return isinstance(a, str) and a == b
    return isinstance(a, (int, float)) and not isinstance(a, bool) and float(a) == float(b)


def _order(a: Any, b: Any, op: FilterOperator) -> bool:
    same = isinstance(a, str) if isinstance(b, str) else isinstance(a, (int, float)) and not isinstance(a, bool)
    if not same:
        return False
    return {Op.GT: a > b, Op.GTE: a >= b, Op.LT: a < b, Op.LTE: a <= b}[op]


def _leaf(f: MetadataFilter, md: dict[str, Any]) -> bool:
    """The documented semantics, in plain Python: typed comparisons; missing / null only for !=, nin, is_empty."""
    v, op, want = md.get(f.key), f.operator, f.value
    if op == Op.IS_EMPTY:
        return v is None or v == "" or v == []
    if op == Op.NE:
        return not _eq(v, want)
    if op == Op.NIN:
        return not any(_eq(v, w) for w in want)  # type: ignore[union-attr]
    if op == Op.EQ:
        return _eq(v, want)
    if op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        return _order(v, want, op)
    if op == Op.IN:
        return any(_eq(v, w) for w in want)  # type: ignore[union-attr]
    if op == Op.TEXT_MATCH:
        return isinstance(v, str) and want in v  # type: ignore[operator]
    if op == Op.TEXT_MATCH_INSENSITIVE:
        return isinstance(v, str) and str(want).lower() in v.lower()
    items = v if isinstance(v, list) else None
    if op == Op.CONTAINS:
        return items is not None and any(_eq(x, want) for x in items)
    if op == Op.ANY:
        return items is not None and any(_eq(x, w) for x in items for w in want)  # type: ignore[union-attr]
    if op == Op.ALL:
        return items is not None and all(any(_eq(x, w) for x in items) for w in want)  # type: ignore[union-attr]
    raise AssertionError(op)


def evaluate(filters: MetadataFilters | MetadataFilter, md: dict[str, Any]) -> bool:
    if isinstance(filters, MetadataFilter):
        return _leaf(filters, md)
    results = [evaluate(f, md) for f in filters.filters]
    if filters.condition == Cond.OR:
        return any(results)
    if filters.condition == Cond.NOT:
        return not any(results)
    return all(results)


def visible_metadata(name: str) -> dict[str, Any]:
    """The metadata a filter sees: the node's, plus the document ids LlamaIndex adds for every store."""
    return {**DOCS[name][1], "doc_id": name, "document_id": name, "ref_doc_id": name}


def expected(filters: MetadataFilters) -> set[str]:
    return {n for n in DOCS if evaluate(filters, visible_metadata(n))}


def one(key: str, value: Any, op: FilterOperator = Op.EQ) -> MetadataFilters:
    return MetadataFilters(filters=[F(key=key, value=value, operator=op)])


FILTERS = {
    "eq": one("author", "Ada"),
    "eq-quote": one("author", "O'Brien"),
    "eq-injection": one("author", "x' OR '1'='1"),
    "eq-string-year": one("year", "2017"),
    "eq-int-float": one("rating", 4),
    "eq-doc-id": one("doc_id", "tax"),
    "ne-missing-counts": one("author", "Ada", Op.NE),
    "gt": one("year", 2020, Op.GT),
    "gte-float": one("rating", 4.0, Op.GTE),
    "lt-int": one("rating", 4, Op.LT),
    "lte": one("year", 2019, Op.LTE),
    "gt-string": one("author", "H", Op.GT),
    "in": one("author", ["Grace", "Linus"], Op.IN),
    "in-numbers": one("year", [2018, 2023], Op.IN),
    "nin": one("topic", ["tech", "food"], Op.NIN),
    "contains": one("tags", "howto", Op.CONTAINS),
    "any": one("tags", ["space", "music"], Op.ANY),
    "all": one("tags", ["food", "howto"], Op.ALL),
    "text-match": one("author", "in", Op.TEXT_MATCH),
    "text-match-insensitive": one("author", "LI", Op.TEXT_MATCH_INSENSITIVE),
    "is-empty-note": one("note", None, Op.IS_EMPTY),
    "is-empty-tags": one("tags", None, Op.IS_EMPTY),
    "and-or-nested": MetadataFilters(
        filters=[
            F(key="topic", value="tech"),
            MetadataFilters(
                filters=[F(key="year", value=2020, operator=Op.GTE), F(key="rating", value=4.6, operator=Op.LT)],
                condition=Cond.OR,
            ),
        ]
    ),
    "not": MetadataFilters(
        filters=[F(key="author", value="Ada"), F(key="topic", value="logistics")], condition=Cond.NOT
    ),
    "or-of-not-and": MetadataFilters(
        filters=[
            MetadataFilters(filters=[F(key="tags", value="howto", operator=Op.CONTAINS)], condition=Cond.NOT),
            MetadataFilters(filters=[F(key="year", value=2021), F(key="rating", value=4, operator=Op.GT)]),
        ],
        condition=Cond.OR,
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_match_a_python_evaluation(name: str, built: tuple[Path, VectorStoreIndex]) -> None:
    _, index = built
    filters = FILTERS[name]
    want = expected(filters)
    if name not in ("eq-injection",):
        assert 0 < len(want) < len(DOCS), "a filter that keeps all or nothing tests little"
    for mode in (DEFAULT, HYBRID):  # every allowed row fits in top-50, so the sets must be equal
        assert set(retrieve(index, "spare pump", mode, similarity_top_k=50, filters=filters)) == want, mode
    text_hits = retrieve(
        index, "spare pump tomato comet tax python piano router dough", TEXT, similarity_top_k=50, filters=filters
    )
    assert set(text_hits) <= want
    assert {n.ref_doc_id for n in index.vector_store.get_nodes(filters=filters)} == want


FLAT = ["eq", "eq-quote", "ne-missing-counts", "gte-float", "lt-int", "in", "text-match", "is-empty-note"]


@pytest.mark.parametrize("name", FLAT)
def test_flat_filters_agree_with_llamaindex_reference_evaluator(name: str) -> None:
    """LlamaIndex's own in-memory evaluator gives the same rows (on keys of one type)."""
    keep = build_metadata_filter_fn(visible_metadata, FILTERS[name])
    assert {n for n in DOCS if n != "piano" and keep(n)} == expected(FILTERS[name]) - {"piano"}


@pytest.mark.parametrize(
    ("flt", "match"),
    [
        (F.model_construct(key="author", value="Ada", operator="regex"), "not supported"),
        (F(key="year", value=[2020, 2021], operator=Op.GT), "string or a number"),
        (F(key="tags", value=["a", "b"], operator=Op.CONTAINS), "string or a number"),
        (F(key="author", value=3, operator=Op.TEXT_MATCH), "needs a string"),
        (F(key="author", value="Ada", operator=Op.IN), "list of values"),
        (F(key="author", value=None, operator=Op.EQ), "string or a number"),
        (F(key='a"] OR true --', value="x"), "invalid metadata filter key"),
        (F(key="rating", value=float("nan"), operator=Op.GT), "finite"),
    ],
)
def test_untranslatable_filters_raise(
    flt: MetadataFilter, match: str, built: tuple[Path, VectorStoreIndex], embed_model: HybridEmbedding
) -> None:
    _, index = built
    filters = MetadataFilters(filters=[F(key="topic", value="tech"), flt], condition=Cond.OR)
    with pytest.raises(FilterError, match=match):
        retrieve(index, "router", DEFAULT, filters=filters)
    with pytest.raises(ValueError, match=match):  # FilterError is a ValueError
        index.vector_store.get_nodes(filters=filters)


def test_filter_sql_quotes_values() -> None:
    sql = filters_to_sql(one("author", "x' OR '1'='1"))
    assert "'x'' OR ''1''=''1'" in sql


# -- writes, persistence, async -----------------------------------------------------------------------


def test_delete_by_ref_doc_id(tmp_path: Path, embed_model: HybridEmbedding) -> None:
    index = fresh_index(tmp_path, embed_model, ["router", "grant", "tax"])
    store = index.vector_store
    assert "grant" in retrieve(index, "Kvaternik fellowship", TEXT)
    index.delete_ref_doc("grant")
    assert {n.ref_doc_id for n in store.get_nodes()} == {"router", "tax"}
    assert retrieve(index, "Kvaternik fellowship", TEXT) == []
    assert "grant" not in retrieve(index, "Kvaternik fellowship", DEFAULT, similarity_top_k=5)


def test_delete_nodes_get_nodes_and_clear(tmp_path: Path, embed_model: HybridEmbedding) -> None:
    index = fresh_index(tmp_path, embed_model, ["router", "grant", "tax", "bread"])
    store = index.vector_store
    by_doc = {n.ref_doc_id: n.node_id for n in store.get_nodes()}
    wanted = [by_doc["tax"], "no-such-id", by_doc["router"]]
    assert [n.ref_doc_id for n in store.get_nodes(node_ids=wanted)] == ["tax", "router"]  # request order
    store.delete_nodes(node_ids=[by_doc["router"], by_doc["grant"]], filters=one("author", "Ada"))
    assert {n.ref_doc_id for n in store.get_nodes()} == {"grant", "tax", "bread"}  # both conditions must hold
    store.delete_nodes(filters=one("year", 2021, Op.GTE))
    assert {n.ref_doc_id for n in store.get_nodes()} == {"bread"}
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()
    store.clear()
    assert store.get_nodes() == [] and retrieve(index, "bread", TEXT) == []


def test_add_upserts_by_node_id(tmp_path: Path) -> None:
    store = HybridVectorStore(uri=tmp_path, table_name="nodes")
    emb = HashingEmbedder(dim=16)
    node = TextNode(id_="n1", text="old words here", embedding=emb.embed_query("old words here").tolist())
    assert store.add([node]) == ["n1"]
    node2 = TextNode(id_="n1", text="brand new text", embedding=emb.embed_query("brand new text").tolist())
    store.add([node2])
    assert store.table is not None and store.table.count_rows() == 1
    assert [n.get_content() for n in store.get_nodes()] == ["brand new text"]
    text = VectorStoreQueryMode.TEXT_SEARCH
    assert store.query(VectorStoreQuery(query_str="brand", mode=text)).ids == ["n1"]
    assert store.query(VectorStoreQuery(query_str="old", mode=text)).ids == []
    with pytest.raises(SchemaError, match="dimension"):
        store.add([TextNode(id_="n2", text="x", embedding=[1.0, 0.0])])
    with pytest.raises(SchemaError, match="no embedding"):
        store.add([TextNode(id_="n3", text="x")])


@pytest.mark.parametrize("auto", [True, False])
def test_rows_outside_the_text_index_are_searched_and_folded_in(tmp_path: Path, auto: bool) -> None:
    store = HybridVectorStore(uri=tmp_path, table_name="nodes", auto_optimize=auto)
    emb = HashingEmbedder(dim=8)

    def nodes(start: int, n: int) -> list[TextNode]:
        ids = range(start, start + n)
        return [TextNode(id_=f"n{i}", text=f"item{i}", embedding=emb.embed_query(f"item{i}").tolist()) for i in ids]

    store.add(nodes(0, 2))  # creates the table and its BM25 index over these rows
    store.add(nodes(2, 300))  # more rows outside the index than in it
    assert store.table is not None
    (stats,) = [s for s in store.table.index_stats() if s["kind"] == "fts"]
    assert stats["unindexed_rows"] == (0 if auto else 300)
    query = VectorStoreQuery(query_str="item250", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3)
    assert store.query(query).ids == ["n250"]


def test_reopened_store_returns_the_same_nodes(
    built: tuple[Path, VectorStoreIndex], embed_model: HybridEmbedding
) -> None:
    path, index = built
    before = {n.node_id: n for n in index.vector_store.get_nodes()}
    assert len(before) == len(DOCS)
    for reopened in (
        HybridVectorStore(uri=path, table_name="nodes"),
        HybridVectorStore(hybrid.connect(path).open_table("nodes")),
    ):
        after = {n.node_id: n for n in reopened.get_nodes()}
        assert after.keys() == before.keys()
        for node_id, node in after.items():
            old = before[node_id]
            assert type(node) is type(old) and node.get_content() == old.get_content()
            assert node.metadata == old.metadata and node.ref_doc_id == old.ref_doc_id
            assert node.relationships == old.relationships and node.hash == old.hash
        again = VectorStoreIndex.from_vector_store(reopened, embed_model=embed_model)
        for query, mode in [(PARAPHRASE[0], DEFAULT), (KEYWORD[0], TEXT), (KEYWORD[0], HYBRID)]:
            assert retrieve(again, query, mode, similarity_top_k=3) == retrieve(index, query, mode, similarity_top_k=3)


def test_a_table_of_another_shape_is_refused(tmp_path: Path) -> None:
    table = hybrid.connect(tmp_path).create_table("other", [{"id": 1, "text": "x"}])
    with pytest.raises(SchemaError, match="lacks the columns"):
        HybridVectorStore(table)


def test_async_methods_run_off_the_event_loop(tmp_path: Path) -> None:
    threads: list[int] = []

    class Recording(HybridVectorStore):
        def add(self, nodes: Any, **kwargs: Any) -> list[str]:
            threads.append(threading.get_ident())
            return super().add(nodes, **kwargs)

        def query(self, query: VectorStoreQuery, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return super().query(query, **kwargs)

    store = Recording(uri=tmp_path, table_name="nodes")
    emb = HashingEmbedder(dim=16)
    nodes = [TextNode(id_=f"n{i}", text=t, embedding=emb.embed_query(t).tolist()) for i, t in enumerate(["a b", "c d"])]

    async def main() -> tuple[int, list[str], Any]:
        ids = await store.async_add(nodes)
        res = await store.aquery(VectorStoreQuery(query_str="c", mode=VectorStoreQueryMode.TEXT_SEARCH))
        return threading.get_ident(), ids, res

    loop_thread, ids, res = asyncio.run(main())
    assert ids == ["n0", "n1"] and res.ids == ["n1"]
    assert len(threads) == 2 and loop_thread not in threads


def test_hybrid_embedding_matches_the_embedder(embed_model: HybridEmbedding) -> None:
    inner = embed_model.embedder
    texts = ["rotate the keys", "water the plants"]
    batch = np.asarray(embed_model.get_text_embedding_batch(texts))
    assert batch.shape == (2, 384) and np.allclose(batch, inner.embed_documents(texts), atol=1e-6)
    assert embed_model.get_query_embedding("keys") == pytest.approx(inner.embed_query("keys").tolist())
    assert asyncio.run(embed_model.aget_query_embedding("keys")) == pytest.approx(inner.embed_query("keys").tolist())
    assert embed_model.model_name == "sentence-transformers"
    with pytest.raises(TypeError):
        HybridEmbedding(object())  # type: ignore[arg-type]
