"""The embedder's in-batch loss: candidates judged relevant to a query are left out of its negatives.

A batch of three examples where query A's judged-relevant rows are also B's positive and C's hard negative
(NFCorpus-like queries sharing relevant documents): those two candidates must not count as A's negatives,
A's own positive always does, and with nothing to mask the loss is sentence-transformers'
MultipleNegativesRankingLoss.
"""

from __future__ import annotations

import math

import pytest

from hybrid.errors import FeedbackError
from hybrid.feedback.embedder import within_budget
from hybrid.feedback.in_batch import in_batch_loss, relevance_mask
from hybrid.feedback.reranker import TrainingExample

torch = pytest.importorskip("torch", reason="tuning needs the tune extra (torch)")


def batch() -> list[TrainingExample]:
    return [
        TrainingExample("a?", "doc 1", ["doc 9"], rows=(1, 9), relevant=frozenset({1, 2, 3})),
        TrainingExample("b?", "doc 2", ["doc 8"], rows=(2, 8), relevant=frozenset({2})),
        TrainingExample("c?", "doc 4", ["doc 3"], rows=(4, 3), relevant=frozenset({4, 1})),
    ]


def test_the_mask_marks_other_examples_rows_judged_relevant_to_the_query_and_never_its_own_positive() -> None:
    mask = relevance_mask(batch(), 1)
    # columns: positives of A, B, C, then the hard negatives of A, B, C
    assert mask[0] == [False, True, False, False, False, True]  # B's positive (row 2), C's negative (row 3)
    assert mask[1] == [False] * 6  # only row 2 is relevant to B, and it is B's own positive
    assert mask[2] == [True, False, False, False, False, False]  # A's positive (row 1) is relevant to C
    assert relevance_mask(batch(), 0) == [[False, True, False], [False] * 3, [True, False, False]]


def test_examples_without_row_ids_or_judgments_mask_nothing() -> None:
    plain = [TrainingExample(e.query, e.positive, e.negatives) for e in batch()]
    assert relevance_mask(plain, 1) == [[False] * 6 for _ in range(3)]


def test_without_a_mask_the_loss_is_the_librarys_multiple_negatives_ranking_loss() -> None:
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    gen = torch.Generator().manual_seed(0)
    queries, positives, negatives = (torch.randn(3, 8, generator=gen) for _ in range(3))
    library = losses.MultipleNegativesRankingLoss(torch.nn.Identity(), scale=20.0)
    expected = library.compute_loss_from_embeddings([queries, positives, negatives], None)
    candidates = torch.cat([positives, negatives])
    none = torch.zeros(3, 6, dtype=torch.bool)
    assert float(in_batch_loss(queries, candidates, None, 20.0)) == pytest.approx(float(expected), rel=1e-5)
    assert float(in_batch_loss(queries, candidates, none, 20.0)) == pytest.approx(float(expected), rel=1e-5)


def test_a_masked_candidate_leaves_the_querys_softmax() -> None:
    gen = torch.Generator().manual_seed(1)
    queries = torch.randn(3, 8, generator=gen)
    candidates = torch.randn(6, 8, generator=gen)
    candidates[1] = queries[0] * 2  # B's positive is judged relevant to A and is the closest text to A
    candidates.requires_grad_(True)
    mask = torch.tensor(relevance_mask(batch(), 1))
    loss = in_batch_loss(queries, candidates, mask, 20.0)
    # by hand: each query's own positive against the candidates its mask keeps
    unit_q = torch.nn.functional.normalize(queries, dim=-1)
    unit_c = torch.nn.functional.normalize(candidates.detach(), dim=-1)
    scores = (unit_q @ unit_c.T * 20.0).tolist()
    by_hand = [
        -scores[i][i] + math.log(sum(math.exp(s) for s, m in zip(scores[i], mask[i].tolist(), strict=True) if not m))
        for i in range(3)
    ]
    assert loss.item() == pytest.approx(sum(by_hand) / 3, rel=1e-5)
    unmasked = in_batch_loss(queries, candidates.detach(), None, 20.0)
    assert unmasked.item() > loss.item() + 1.0  # the plain loss counts A's relevant row as its best negative


def test_a_masked_candidate_gets_no_push_away_from_the_query() -> None:
    gen = torch.Generator().manual_seed(2)
    queries = torch.randn(3, 8, generator=gen)
    mask = torch.tensor(relevance_mask(batch(), 1))
    pushes = []
    for m in (mask[:1], None):  # A's term of the loss, masked and plain
        candidates = torch.randn(6, 8, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
        in_batch_loss(queries[:1], candidates, m, 20.0).backward()
        assert candidates.grad is not None
        pushes.append([float(candidates.grad[c].abs().sum()) for c in (1, 5)])  # rows 2 and 3: relevant to A
    assert pushes[0] == [0.0, 0.0]
    assert min(pushes[1]) > 0.0


def test_the_budget_cuts_the_plan_after_max_steps_in_order() -> None:
    plan = [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"]]
    assert within_budget(plan, None) == ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2"]
    assert within_budget(plan, 4) == ["a1", "a2", "a3", "b1"]
    assert within_budget(plan, 100) == ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2"]
    with pytest.raises(FeedbackError, match="max_steps must be at least 1"):
        within_budget(plan, 0)
