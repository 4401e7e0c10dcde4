"""Rerankers: rescore fused candidates, adding `_relevance_score` (higher is better).

Models load on first use: `CrossEncoderReranker` needs the models extra, `NanoRankerReranker`
the nanoranker extra; `BiEncoderReranker` and `MMRReranker` take any embedder, and
`CallableReranker` any ``fn(query, texts) -> scores``.
"""

from hybrid.rerankers.base import Reranker, check_reranked
from hybrid.rerankers.bi_encoder import BiEncoderReranker
from hybrid.rerankers.callable import CallableReranker
from hybrid.rerankers.cross_encoder import CrossEncoderReranker
from hybrid.rerankers.mmr import MMRReranker
from hybrid.rerankers.nanoranker import NanoRankerReranker

__all__ = [
    "BiEncoderReranker",
    "CallableReranker",
    "CrossEncoderReranker",
    "MMRReranker",
    "NanoRankerReranker",
    "Reranker",
    "check_reranked",
]
