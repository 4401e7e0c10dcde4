"""Grouping and expansion through the LangChain and LlamaIndex adapters (their parent-document idioms)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.ingest.chunking import Chunker
from hybrid.ingest.pipeline import ingest


@pytest.fixture
def ingested(tmp_path: Path) -> hybrid.Table:
    files = tmp_path / "files"
    files.mkdir()
    (files / "keys.md").write_text("# Keys\n\n" + "\n\n".join(f"Rotate key number {i} monthly." for i in range(12)))
    (files / "backup.txt").write_text("Backups run nightly and keep thirty copies.\n")
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    ingest(db, "docs", [files], embedder=HashingEmbedder(dim=32), chunker=Chunker(size=64, overlap=0))
    return db.open_table("docs")


def test_langchain_groups_and_returns_parent_documents(ingested: hybrid.Table, tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from hybrid.integrations.langchain import HybridVectorStore

    store = HybridVectorStore(ingested)
    flat = store.hybrid_search("rotate key monthly", k=4)
    assert len({d.metadata["source"] for d in flat}) == 1  # one file fills the top k
    grouped = store.hybrid_search("rotate key monthly", k=4, group_by=True)
    assert sorted(d.metadata["source"] for d in grouped) == ["backup.txt", "keys.md"]
    retriever = store.as_retriever(search_type="hybrid", search_kwargs={"k": 2, "expand": "parent"})
    docs = retriever.invoke("rotate key number 7")
    assert docs[0].page_content == (tmp_path / "files" / "keys.md").read_text()
    span = docs[0].metadata["context_spans"][0]
    assert docs[0].page_content[span["start"] : span["end"]] == docs[0].metadata["chunk_text"]
    lit = store.hybrid_search("rotating keys", k=1, query_type="fts", highlight=True)[0]
    assert [lit.page_content[s["start"] : s["end"]] for s in lit.metadata["highlight_spans"]][:2] == ["Rotate", "key"]
    assert "<em>Rotate</em>" in lit.metadata["highlight"]
    window = store.hybrid_search("rotate key number 7", k=1, query_type="fts", expand=1)[0]
    assert window.metadata["chunk_text"] in window.page_content and len(window.page_content) > len(
        window.metadata["chunk_text"]
    )


def test_llamaindex_puts_the_window_in_the_metadata(tmp_path: Path) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from hybrid.integrations.llamaindex import HybridVectorStore

    def node(doc: str, n: int, text: str) -> TextNode:
        x = TextNode(id_=f"{doc}-{n}", text=text, embedding=[1.0, float(n)])
        x.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
        return x

    store = HybridVectorStore(uri=tmp_path / "li", table_name="nodes")
    store.add([node("a", i, f"alpha part {i} zz{i}") for i in range(5)] + [node("b", 0, "alpha beta zz2")])
    text = VectorStoreQuery(query_str="zz2", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3)
    result = store.query(text, expand=1)
    by_id = {n.node_id: n for n in result.nodes}
    assert by_id["a-2"].metadata["window"] == "alpha part 1 zz1\n\nalpha part 2 zz2\n\nalpha part 3 zz3"
    assert by_id["a-2"].metadata["original_text"] == "alpha part 2 zz2"
    assert by_id["b-0"].metadata["window"] == "alpha beta zz2"
    assert "window" in by_id["a-2"].excluded_llm_metadata_keys
    lit = store.query(text, highlight=True).nodes[0]
    assert lit.metadata["highlight"].count("<em>zz2</em>") == 1 and "highlight" in lit.excluded_llm_metadata_keys
    alpha = VectorStoreQuery(query_str="alpha", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=5)
    grouped = store.query(alpha, group_by=True)
    assert sorted(n.ref_doc_id for n in grouped.nodes) == ["a", "b"]
