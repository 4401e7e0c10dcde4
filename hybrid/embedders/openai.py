"""`OpenAIEmbedder`: any OpenAI-compatible ``/embeddings`` HTTP endpoint."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from hybrid.embedders.base import Kind, TextEmbedder
from hybrid.embedders.registry import register
from hybrid.errors import EmbeddingError, require


@register("openai")
class OpenAIEmbedder(TextEmbedder):
    """Embeds by POSTing to ``{base_url}/embeddings`` (OpenAI, vLLM, Ollama, LiteLLM, ...).

    The API key is read from the environment variable `api_key_env` at each
    call and is never stored (only the variable's name is in the config).
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        dimensions: int | None = None,
        timeout: float = 60.0,
        batch_size: int = 128,
        **options: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **options)
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.dimensions = dimensions
        self.timeout = timeout
        if dimensions is not None:
            self._dim = dimensions

    def to_config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "dimensions": self.dimensions,
            "timeout": self.timeout,
            "batch_size": self.batch_size,
        }

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        httpx: Any = require("httpx", "openai")
        headers = {}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif "api.openai.com" in self.base_url:
            raise EmbeddingError(f"set the environment variable {self.api_key_env} to the API key")
        body: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        url = f"{self.base_url}/embeddings"
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"embedding request to {url} failed: {exc}") from None
        if response.status_code != 200:
            raise EmbeddingError(f"embedding request to {url} returned {response.status_code}: {response.text[:300]}")
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            return np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"unexpected response from {url}: {exc!r}") from None
