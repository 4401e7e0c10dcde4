"""The embedder's contrastive loss, with in-batch candidates known to be relevant left out.

Each query in a batch is scored (cosine similarity times `scale`) against every candidate text of the batch:
each example's positive, then each example's hard negatives. The loss is the cross-entropy of the query's
own positive among them, as sentence-transformers' ``MultipleNegativesRankingLoss`` computes it. Another
example's positive or hard negative is a negative for the query only by assumption: where the training
judgments say that row is relevant to the query (NFCorpus-like collections, whose queries share topics and
have dozens of judged rows each), it is a false negative, and the loss would push the query away from a row
its users marked right. Such candidates are masked out of that query's softmax (:func:`relevance_mask`):
the rule uses only the judgments the tune already has, and it never masks the query's own positive, so
with no overlap the loss is the library's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hybrid.errors import require

if TYPE_CHECKING:
    from hybrid.feedback.reranker import TrainingExample


def relevance_mask(batch: Sequence[TrainingExample], width: int) -> list[list[bool]]:
    """``mask[i][k * len(batch) + j]``: candidate `k` of example `j` (0 its positive, k >= 1 its k-th hard
    negative, up to `width` hard negatives) is a row judged relevant to example `i`'s query and is not
    example `i`'s own positive. Examples without row ids (``rows``) or judgments (``relevant``) mask
    nothing."""
    n = len(batch)
    mask = [[False] * (n * (1 + width)) for _ in range(n)]
    for i, e in enumerate(batch):
        if not e.relevant:
            continue
        for j, other in enumerate(batch):
            for k, row in enumerate(other.rows[: 1 + width]):
                if row in e.relevant and (k, j) != (0, i):
                    mask[i][k * n + j] = True
    return mask


def in_batch_loss(queries: Any, candidates: Any, mask: Any | None, scale: float) -> Any:
    """Mean cross-entropy of each query's own positive (candidate ``i`` for query ``i``) over all
    `candidates` (tensors ``(n, d)`` and ``(n * (1 + width), d)``), scores ``scale`` x cosine similarity;
    candidates where the boolean tensor `mask` is true are left out of that query's softmax."""
    torch: Any = require("torch", "models")
    normalize = torch.nn.functional.normalize
    scores = normalize(queries, dim=-1) @ normalize(candidates, dim=-1).T * scale
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.nn.functional.cross_entropy(scores, torch.arange(queries.shape[0], device=queries.device))
