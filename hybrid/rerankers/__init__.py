"""Rerankers: rescore fused candidates (models arrive with the models extra)."""

from hybrid.rerankers.base import Reranker, check_reranked

__all__ = ["Reranker", "check_reranked"]
