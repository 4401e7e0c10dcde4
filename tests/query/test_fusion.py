"""Fusion of ranked lists (RRF, Linear, DBSF) against values worked out by hand.

Every expected number below is a literal computed by hand; the comment above it
shows the arithmetic. Fusion sees only (row ids best first, scores higher-is-
better, weight) per branch; ties are broken by the smaller row id.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.query.fusion import DBSF, RRF, Linear, Ranked, normalize

REL = 1e-6


def ranked(ids: list[int], scores: list[float] | None = None, weight: float = 1.0) -> Ranked:
    if scores is None:  # RRF ignores scores; give descending ones
        scores = [float(len(ids) - i) for i in range(len(ids))]
    return Ranked(np.array(ids, dtype=np.uint64), np.array(scores, dtype=np.float64), weight)


def check(result: tuple[np.ndarray, np.ndarray], ids: list[int], scores: list[float]) -> None:
    got_ids, got_scores = result
    assert got_ids.dtype == np.uint64
    assert got_scores.dtype == np.float64
    assert got_ids.tolist() == ids
    assert got_scores.tolist() == pytest.approx(scores, rel=REL, abs=1e-12)


# -- RRF ----------------------------------------------------------------------------------


def test_rrf_two_lists() -> None:
    # A = [1, 2, 3], B = [3, 1]; k = 60, score = sum 1 / (60 + rank)
    # id 1: 1/61 + 1/62 = 0.0163934426 + 0.0161290323 = 0.0325224749
    # id 3: 1/63 + 1/61 = 0.0158730159 + 0.0163934426 = 0.0322664585
    # id 2: 1/62                                      = 0.0161290323
    result = RRF(k=60).fuse([ranked([1, 2, 3]), ranked([3, 1])])
    check(result, [1, 3, 2], [0.0325224749, 0.0322664585, 0.0161290323])


def test_rrf_ignores_score_values() -> None:
    # Only ranks count: wildly different scores give the same fusion as above.
    a = ranked([1, 2, 3], [1e9, -5.0, -1e9])
    b = ranked([3, 1], [0.001, 0.0])
    check(RRF(k=60).fuse([a, b]), [1, 3, 2], [0.0325224749, 0.0322664585, 0.0161290323])


def test_rrf_weights_change_the_order() -> None:
    # Same lists, B weighted 2:
    # id 3: 1/63 + 2/61 = 0.0158730159 + 0.0327868852 = 0.0486599011
    # id 1: 1/61 + 2/62 = 0.0163934426 + 0.0322580645 = 0.0486515071
    # id 2: 1/62                                      = 0.0161290323
    result = RRF(k=60).fuse([ranked([1, 2, 3]), ranked([3, 1], weight=2.0)])
    check(result, [3, 1, 2], [0.0486599011, 0.0486515071, 0.0161290323])


def test_rrf_k_zero() -> None:
    # k = 0: A = [10, 20], B = [20, 30]
    # id 20: 1/2 + 1/1 = 1.5;  id 10: 1/1 = 1.0;  id 30: 1/2 = 0.5
    check(RRF(k=0).fuse([ranked([10, 20]), ranked([20, 30])]), [20, 10, 30], [1.5, 1.0, 0.5])


def test_rrf_custom_k() -> None:
    # k = 1: A = [7, 8, 9], one list: 1/2, 1/3, 1/4
    check(RRF(k=1).fuse([ranked([7, 8, 9])]), [7, 8, 9], [0.5, 0.3333333333, 0.25])


def test_rrf_ties_break_by_smaller_row_id() -> None:
    # A = [5, 3], B = [3, 5]: both get 1/61 + 1/62 = 0.0325224749; 3 < 5 comes first,
    # although 5 leads the first list.
    check(RRF(k=60).fuse([ranked([5, 3]), ranked([3, 5])]), [3, 5], [0.0325224749, 0.0325224749])


def test_rrf_empty_branch_is_ignored() -> None:
    # A = [], B = [7, 8]: 1/61 = 0.0163934426, 1/62 = 0.0161290323
    check(RRF(k=60).fuse([ranked([]), ranked([7, 8])]), [7, 8], [0.0163934426, 0.0161290323])


@pytest.mark.parametrize("fusion", [RRF(), Linear(), Linear(normalize="zscore"), DBSF()], ids=repr)
def test_all_branches_empty(fusion: RRF | Linear | DBSF) -> None:
    check(fusion.fuse([ranked([]), ranked([])]), [], [])
    check(fusion.fuse([]), [], [])


def test_rrf_disjoint_lists_interleave() -> None:
    # A = [1, 2], B = [3, 4]: 1 and 3 get 1/61, 2 and 4 get 1/62; ties by id
    check(
        RRF(k=60).fuse([ranked([1, 2]), ranked([3, 4])]),
        [1, 3, 2, 4],
        [0.0163934426, 0.0163934426, 0.0161290323, 0.0161290323],
    )


def test_rrf_three_branches() -> None:
    # k = 60; A = [1, 2], B = [2, 3], C = [3, 1]
    # id 1: 1/61 + 1/62 = 0.0325224749
    # id 2: 1/62 + 1/61 = 0.0325224749
    # id 3: 1/62 + 1/61 = 0.0325224749  (all tie: ids ascending)
    check(
        RRF(k=60).fuse([ranked([1, 2]), ranked([2, 3]), ranked([3, 1])]),
        [1, 2, 3],
        [0.0325224749, 0.0325224749, 0.0325224749],
    )


# -- Linear -------------------------------------------------------------------------------

# A (vector branch, scores = -distance) and B (text branch, BM25)
A = ([1, 2, 3], [-0.1, -0.3, -0.5])
B = ([3, 4], [8.0, 2.0])


def test_normalize_minmax_and_zscore() -> None:
    # minmax of [-0.1, -0.3, -0.5]: (s + 0.5) / 0.4 = [1, 0.5, 0]
    assert normalize(np.array(A[1]), "minmax").tolist() == pytest.approx([1.0, 0.5, 0.0])
    # zscore: mean -0.3, population std sqrt((0.04 + 0 + 0.04) / 3) = 0.1632993162
    # -> [0.2 / 0.1632993162, 0, -0.2 / 0.1632993162] = [1.2247448714, 0, -1.2247448714]
    assert normalize(np.array(A[1]), "zscore").tolist() == pytest.approx([1.2247448714, 0.0, -1.2247448714])
    # constant scores: minmax -> all 1, zscore -> all 0; empty stays empty
    assert normalize(np.array([3.0, 3.0]), "minmax").tolist() == [1.0, 1.0]
    assert normalize(np.array([3.0, 3.0]), "zscore").tolist() == [0.0, 0.0]
    assert normalize(np.array([]), "minmax").tolist() == []


def test_linear_minmax_alpha_weighs_first_branch() -> None:
    # minmax: A -> {1: 1, 2: 0.5, 3: 0}; B -> {3: 1, 4: 0}
    # alpha 0.7: id 1 = 0.7 * 1 = 0.7; id 2 = 0.7 * 0.5 = 0.35; id 3 = 0.7 * 0 + 0.3 * 1 = 0.3; id 4 = 0
    check(Linear(alpha=0.7).fuse([ranked(*A), ranked(*B)]), [1, 2, 3, 4], [0.7, 0.35, 0.3, 0.0])
    # alpha 0.2: id 3 = 0.8 * 1 = 0.8; id 1 = 0.2; id 2 = 0.2 * 0.5 = 0.1; id 4 = 0
    check(Linear(alpha=0.2).fuse([ranked(*A), ranked(*B)]), [3, 1, 2, 4], [0.8, 0.2, 0.1, 0.0])


def test_linear_default_alpha_is_half() -> None:
    # alpha 0.5: id 1 = 0.5; id 3 = 0 + 0.5 = 0.5 (tie: 1 before 3); id 2 = 0.25; id 4 = 0
    check(Linear().fuse([ranked(*A), ranked(*B)]), [1, 3, 2, 4], [0.5, 0.5, 0.25, 0.0])


def test_linear_alpha_extremes() -> None:
    # alpha 1: only A counts -> 1: 1, 2: 0.5, 3: 0, 4: 0 (3 and 4 tie at 0)
    check(Linear(alpha=1.0).fuse([ranked(*A), ranked(*B)]), [1, 2, 3, 4], [1.0, 0.5, 0.0, 0.0])
    # alpha 0: only B counts -> 3: 1, others 0 (ties by id)
    check(Linear(alpha=0.0).fuse([ranked(*A), ranked(*B)]), [3, 1, 2, 4], [1.0, 0.0, 0.0, 0.0])


def test_linear_zscore() -> None:
    # zscore: A -> {1: 1.2247448714, 2: 0, 3: -1.2247448714}; B: mean 5, std 3 -> {3: 1, 4: -1}
    # alpha 0.5: id 1 = 0.6123724357; id 2 = 0; id 3 = -0.6123724357 + 0.5 = -0.1123724357; id 4 = -0.5
    check(
        Linear(alpha=0.5, normalize="zscore").fuse([ranked(*A), ranked(*B)]),
        [1, 2, 3, 4],
        [0.6123724357, 0.0, -0.1123724357, -0.5],
    )


def test_linear_branch_weights_multiply() -> None:
    # alpha 0.5, B weighted 3: id 3 = 0.5 * 3 * 1 = 1.5; id 1 = 0.5; id 2 = 0.25; id 4 = 0
    check(Linear().fuse([ranked(*A), ranked(*B, weight=3.0)]), [3, 1, 2, 4], [1.5, 0.5, 0.25, 0.0])


def test_linear_constant_branch() -> None:
    # A = [1, 2] both scored 4.0 -> minmax 1, 1; B = [2] alone -> minmax 1
    # alpha 0.5: id 2 = 0.5 + 0.5 = 1.0; id 1 = 0.5
    check(Linear().fuse([ranked([1, 2], [4.0, 4.0]), ranked([2], [9.0])]), [2, 1], [1.0, 0.5])


def test_linear_three_branches_weigh_equally() -> None:
    # alpha applies to two branches only; with three each has weight 1.
    # minmax: [1, 2] scores [2, 0] -> 1, 0; [2, 3] scores [5, 1] -> 1, 0; [3] -> 1
    # id 2 = 0 + 1 = 1; id 3 = 0 + 1 = 1; id 1 = 1 (all tie: ids ascending)
    result = Linear(alpha=0.9).fuse([ranked([1, 2], [2.0, 0.0]), ranked([2, 3], [5.0, 1.0]), ranked([3], [7.0])])
    check(result, [1, 2, 3], [1.0, 1.0, 1.0])


def test_linear_empty_branch() -> None:
    # B empty: A alone, times alpha 0.5 -> 0.5, 0.25, 0
    check(Linear().fuse([ranked(*A), ranked([])]), [1, 2, 3], [0.5, 0.25, 0.0])
    check(Linear().fuse([ranked([]), ranked(*B)]), [3, 4], [0.5, 0.0])


def test_linear_ties() -> None:
    # A = [1, 2] scores [1, 0], B = [2, 1] scores [1, 0]: both rows 0.5 -> ids ascending
    check(Linear().fuse([ranked([1, 2], [1.0, 0.0]), ranked([2, 1], [1.0, 0.0])]), [1, 2], [0.5, 0.5])


# -- DBSF ---------------------------------------------------------------------------------


def test_dbsf_two_branches() -> None:
    # A = [1, 2, 3] scores [3, 2, 1]: mean 2, std sqrt(2/3) = 0.8164965809
    #   lo = 2 - 2.4494897428 = -0.4494897428, hi = 4.4494897428, range 4.8989794856
    #   3 -> 3.4494897428 / 4.8989794856 = 0.7041241452; 2 -> 0.5; 1 -> 1.4494897428 / 4.8989794856 = 0.2958758548
    # B = [3, 4] scores [10, 0]: mean 5, std 5, lo -10, hi 20: 10 -> 20/30 = 0.6666666667; 0 -> 10/30 = 0.3333333333
    # id 3 = 0.2958758548 + 0.6666666667 = 0.9625425215; id 1 = 0.7041241452; id 2 = 0.5; id 4 = 0.3333333333
    result = DBSF().fuse([ranked([1, 2, 3], [3.0, 2.0, 1.0]), ranked([3, 4], [10.0, 0.0])])
    check(result, [3, 1, 2, 4], [0.9625425215, 0.7041241452, 0.5, 0.3333333333])


def test_dbsf_clips_outliers_to_one() -> None:
    # 11 scores [10, 0 x 10]: mean 10/11 = 0.9090909091; E[s^2] = 100/11 = 9.0909090909
    #   var = 9.0909090909 - 0.8264462810 = 8.2644628099, std = 2.8747978728, 3 std = 8.6243936184
    #   lo = -7.7153027093, hi = 9.5334845275, range 17.2487872368
    #   10 -> 17.7153027093 / 17.2487872368 = 1.027 -> clipped to 1.0
    #   0  -> 7.7153027093 / 17.2487872368 = 0.4472953716
    result = DBSF().fuse([ranked(list(range(11)), [10.0] + [0.0] * 10)])
    check(result, list(range(11)), [1.0] + [0.4472953716] * 10)


def test_dbsf_single_and_constant_branches_score_one() -> None:
    # std 0 -> every row scaled to 1; weight 2 on B: id 5 = 1 + 2 = 3; id 4 = 1; id 6 = 2
    result = DBSF().fuse([ranked([4, 5], [0.3, 0.3]), ranked([5, 6], [7.0, 7.0], weight=2.0)])
    check(result, [5, 6, 4], [3.0, 2.0, 1.0])


def test_dbsf_empty_branch_and_ties() -> None:
    # A empty; B = [9, 8] scores [1, -1]: mean 0, std 1, lo -3, hi 3: 1 -> 4/6, -1 -> 2/6
    check(DBSF().fuse([ranked([]), ranked([9, 8], [1.0, -1.0])]), [9, 8], [0.6666666667, 0.3333333333])
    # mirror lists tie at 4/6 + 2/6 = 1 each: ids ascending
    check(DBSF().fuse([ranked([9, 8], [1.0, -1.0]), ranked([8, 9], [1.0, -1.0])]), [8, 9], [1.0, 1.0])


# -- invalid parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: RRF(k=-1), "k must be >= 0"),
        (lambda: Linear(alpha=1.5), "alpha must be in [0, 1]"),
        (lambda: Linear(alpha=-0.1), "alpha must be in [0, 1]"),
        (lambda: Linear(alpha=math.nan), "alpha must be in [0, 1]"),
        (lambda: Linear(normalize="l2"), "normalize must be 'minmax' or 'zscore'"),  # type: ignore[arg-type]
        (lambda: normalize(np.array([1.0]), "l2"), "normalize must be 'minmax' or 'zscore'"),  # type: ignore[arg-type]
    ],
)
def test_invalid_parameters_raise_value_error(make, fragment: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_rrf_rejects_nan_k() -> None:
    with pytest.raises(ValueError, match="k must be >= 0"):
        RRF(k=math.nan)


def test_fusions_are_immutable_values() -> None:
    assert RRF(k=20) == RRF()  # the default k
    assert Linear(0.3, "zscore") == Linear(alpha=0.3, normalize="zscore")
    with pytest.raises(AttributeError):
        RRF().k = 1  # type: ignore[misc]
