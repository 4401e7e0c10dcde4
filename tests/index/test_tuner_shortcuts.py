"""What the compressed kinds' `target_recall` tuner (:func:`hybrid.index.ann_build.tune`) takes for granted
to measure settings without running them one by one:

* a setting's recall@k is the share of the true neighbours among the candidates it reads (a true
  neighbour that is read is always returned), so the tuner reads no float vector: checked against real
  searches for every depth, rescore factor and read count it tries, on each kind;
* an IVF search's nearest n candidates at one nprobe are the first n of its nearest m > n, so one
  search per query and depth serves every rescore factor (measured: every prefix equal on this data).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.index.ivf import IvfIndex
from hybrid.index.rescore import candidate_count, read_count
from tests.index.test_row_codes import K, _searcher, _table
from tests.index.test_vector_recall import exact_top_k, perturbed

pytest.importorskip("faiss")
pytest.importorskip("usearch")


@pytest.mark.parametrize("kind", ["ivf_pq", "ivf_rabitq", "hnsw_int8"])
def test_recall_of_the_candidates_read_is_the_recall_of_the_search(tmp_path: Path, kind: str) -> None:
    t, data = _table(tmp_path, kind=kind)
    s = _searcher(t)
    queries = perturbed(data, 20, seed=11)
    truth = exact_top_k(data, queries, "cosine")
    levels = (1, 2, 4) if kind != "hnsw_int8" else (16, 32)
    partial = 0
    for q, want in zip(queries, truth):
        t_set = set(want.tolist())
        for level in levels:
            for rescore in (2.0, 4.0, 8.0):
                ranked = s.ranked(q, K, level, rescore)
                for reads in (1.0, 1.5, 2.0, rescore):
                    read = set(ranked[: read_count(K, reads, len(ranked))].tolist())
                    ids, _ = s.search(q, K, ef=level, rescore=rescore, reads=reads)
                    assert len(t_set & read) == len(t_set & set(ids.tolist())), (level, rescore, reads)
                    partial += len(t_set & read) < K
    assert partial > 0  # some settings miss neighbours: the check compared more than full recalls


@pytest.mark.parametrize("kind", ["ivf_pq", "ivf_rabitq"])
def test_fewer_ivf_candidates_are_the_first_of_more(tmp_path: Path, kind: str) -> None:
    t, data = _table(tmp_path, kind=kind)
    index = _searcher(t).index
    assert isinstance(index, IvfIndex)
    most = candidate_count(K, 16)
    short = 0
    for q in perturbed(data, 20, seed=12):
        for nprobe in (1, 2, 4):
            first = index.candidates(q, most, nprobe, widen=False)
            assert len(first) <= most
            for rescore in (2.0, 4.0, 8.0):
                n = candidate_count(K, rescore)
                if len(first) >= n:
                    assert index.candidates(q, n, nprobe).tolist() == first[:n].tolist(), (nprobe, n)
                else:  # the lists scanned hold too few: a search widens, the tuner searches on its own
                    short += 1
                    assert len(index.candidates(q, n, nprobe)) == n
    assert short > 0  # the case where the prefix is not used occurred too
