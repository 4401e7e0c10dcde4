"""Fuzzing user text: `where` filters (grammar-built and raw) and search text never crash the engine.

Hypothesis generates the inputs (budget: `EXAMPLES` each, no deadline). Whatever
it finds must end one of two ways: an answer of the right shape, or an error of
our own hierarchy (:class:`hybrid.HybridError`) that says what was wrong; any
other exception is a crash. Crashes found are kept below as regression cases.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import HybridError

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
N = 60

COLUMNS = ["id", "score", "name", "tags", "flag", "made"]
FUNCTIONS = ["length", "lower", "upper", "abs", "round", "coalesce", "len", "repeat", "lpad", "range", "strlen"]
OPERATORS = ["=", "<>", "<", ">=", "+", "-", "*", "/", "%", "||", "AND", "OR", "LIKE", "IN", "IS", "BETWEEN"]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    rng = np.random.default_rng(0)
    rows = [
        {
            "id": i,
            "score": float(rng.normal()),
            "name": f"name {i} ünï 中文",
            "tags": [f"t{i % 3}", "x"],
            "flag": bool(i % 2),
            "made": dt.date(2024, 1, 1) + dt.timedelta(days=i),
            "v": rng.standard_normal(4).astype(np.float32).tolist(),
        }
        for i in range(N)
    ]
    t = hybrid.connect(tmp_path_factory.mktemp("fuzz"), upkeep=None).create_table("t", rows)
    t.create_fts_index("name")
    t.create_scalar_index("id")
    return t


literals = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.text(max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.sampled_from(["NULL", "TRUE", "FALSE", "DATE '2024-02-01'", "[1, 2]", "'t1'"]),
)
atoms = st.one_of(st.sampled_from(COLUMNS), literals)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(OPERATORS), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(FUNCTIONS), st.lists(children, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"{c} IS NULL"),
    )


expressions = st.recursive(atoms, _combine, max_leaves=8)


def _count(t: hybrid.Table, where: str) -> int | None:
    try:
        return t.count_rows(where)
    except HybridError:
        return None


@FUZZ
@given(where=expressions)
def test_grammar_built_filters_answer_or_say_why(table: hybrid.Table, where: str) -> None:
    n = _count(table, where)
    assert n is None or 0 <= n <= N


@FUZZ
@given(where=st.text(max_size=60))
def test_any_text_as_a_filter_answers_or_says_why(table: hybrid.Table, where: str) -> None:
    n = _count(table, where)
    assert n is None or 0 <= n <= N


@FUZZ
@given(where=expressions)
def test_filtered_search_agrees_with_count(table: hybrid.Table, where: str) -> None:
    n = _count(table, where)
    if n is None:
        return
    hits = table.search(np.ones(4, dtype=np.float32), vector_column="v").where(where).limit(N).to_list()
    assert len(hits) == n


@FUZZ
@given(text=st.text(max_size=40))
def test_any_search_text_answers_or_says_why(table: hybrid.Table, text: str) -> None:
    try:
        hits = table.search(text).limit(5).to_list()
    except HybridError:
        return
    assert len(hits) <= 5 and all(0 <= h["id"] < N for h in hits)


@pytest.mark.parametrize(
    "where",
    [
        "length(repeat(name, 3)) > 0",  # a size from a literal under a column: allowed
        "range(5) IS NULL",
    ],
)
def test_regressions(table: hybrid.Table, where: str) -> None:
    assert _count(table, where) is not None
