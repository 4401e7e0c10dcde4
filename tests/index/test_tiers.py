"""Which runs of small fragments upkeep compacts: one tier, or two neighbouring ones."""

from __future__ import annotations

from pathlib import Path

import hybrid
from hybrid.index.upkeep import Upkeep, plan_tiers


def _sizes(path: Path, sizes: list[int]) -> hybrid.Table:
    """A table (no upkeep) whose fragments hold `sizes` rows, in order."""
    t = hybrid.connect(path, upkeep=None).create_table("t", [{"id": i} for i in range(sizes[0])])
    start = sizes[0]
    for n in sizes[1:]:
        t.add([{"id": i} for i in range(start, start + n)])
        start += n
    assert [f.live_rows for f in t.snapshot().manifest.fragments] == sizes
    return t


def _planned(t: hybrid.Table, count: int) -> list[list[int]]:
    return [[f.live_rows for f in run] for run in plan_tiers(t.snapshot().manifest, count)]


def test_appends_straddling_a_tier_bound_are_compacted(tmp_path: Path) -> None:
    sizes = [5, 12, 3, 9, 2, 20, 4, 7]  # tiers 0 and 1 interleaved: no run of 8 of either alone
    t = _sizes(tmp_path, sizes)
    assert _planned(t, 8) == [sizes]
    t.run_upkeep(Upkeep(tier_fragments=8))
    assert len(t.snapshot().manifest.fragments) == 1
    assert sorted(t.to_arrow(["id"]).column("id").to_pylist()) == list(range(sum(sizes)))


def test_one_tier_first_and_a_large_fragment_is_not_pulled_in(tmp_path: Path) -> None:
    t = _sizes(tmp_path, [600, 1, 1, 1, 1, 1, 1, 1])  # tier 3 beside seven tier-0 fragments: nothing due
    assert _planned(t, 8) == []
    t.add([{"id": 10_000}])
    assert _planned(t, 8) == [[1] * 8]  # the eight tiny ones, not the large one


def test_runs_of_lower_tiers_are_taken_before_higher_ones(tmp_path: Path) -> None:
    sizes = [1, 1, 1, 1, 1, 1, 1, 1, 20, 20, 20, 20, 20, 20, 20]  # 8 of tier 0, then 7 of tier 1
    t = _sizes(tmp_path, sizes)
    assert _planned(t, 8) == [[1] * 8]  # the tier-1 fragments alone are 7: they wait
