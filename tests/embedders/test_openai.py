"""The OpenAI-compatible embedder against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder, OpenAIEmbedder
from hybrid.errors import EmbeddingError

SECRET = "sk-test-never-stored-0123456789"


class EmbeddingsServer(BaseHTTPRequestHandler):
    """Answers POST /v1/embeddings like the OpenAI API, with hashing vectors, in reverse order."""

    model = HashingEmbedder(dim=16, cache_size=0)
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v1/embeddings" or body.get("model") == "missing-model":
            self._reply(404, {"error": {"message": f"model {body.get('model')} not found"}})
            return
        vectors = self.model.embed_documents(body["input"])
        data = [{"index": i, "embedding": v.tolist(), "object": "embedding"} for i, v in enumerate(vectors)]
        self._reply(200, {"data": data[::-1], "model": body["model"], "object": "list"})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingsServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_embeds_over_http_in_input_order(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_EMBED_KEY", SECRET)
    e = OpenAIEmbedder("hash-16", base_url=base_url, api_key_env="TEST_EMBED_KEY", batch_size=2)
    texts = ["first text", "second one", "third", "fourth text here", "fifth"]
    got = e.embed_documents(texts)
    np.testing.assert_allclose(got, HashingEmbedder(dim=16).embed_documents(texts), rtol=1e-6)
    assert e.dim == 16
    last = EmbeddingsServer.seen[-1]
    assert last["auth"] == f"Bearer {SECRET}" and len(last["body"]["input"]) <= 2


def test_the_key_is_read_at_call_time_and_never_stored(
    base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    e = OpenAIEmbedder("hash-16", base_url=base_url, api_key_env="TEST_EMBED_KEY")
    monkeypatch.setenv("TEST_EMBED_KEY", SECRET)
    t = hybrid.connect(tmp_path).create_table("docs", [{"text": "hello world"}], embedding={"vector": ("text", e)})
    assert SECRET not in json.dumps(e.to_config())
    for f in (tmp_path / "docs").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f"secret written to {f.name}"
    monkeypatch.setenv("TEST_EMBED_KEY", "rotated")
    t.search("hello", query_type="vector").to_list()
    assert EmbeddingsServer.seen[-1]["auth"] == "Bearer rotated"


def test_http_errors_are_clear(base_url: str) -> None:
    with pytest.raises(EmbeddingError, match="404.*missing-model not found"):
        OpenAIEmbedder("missing-model", base_url=base_url).embed_documents(["x"])
    with pytest.raises(EmbeddingError, match="failed"):
        OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1", timeout=2).embed_documents(["x"])


def test_openai_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(EmbeddingError, match="NO_SUCH_KEY_VAR"):
        OpenAIEmbedder(api_key_env="NO_SUCH_KEY_VAR").embed_documents(["x"])
