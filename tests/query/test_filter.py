"""SQL filters: semantics (NULLs, types, functions) and safety (no statements, no file access)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from hybrid.query.filter import compile_filter, evaluate_expressions
from tests.conftest import make_rows

SCHEMA = pa.schema(
    [("id", pa.int64()), ("lang", pa.string()), ("score", pa.float64()), ("vector", pa.list_(pa.float32(), 2))]
)
ROWS = pa.table(
    {
        "id": [1, 2, 3, 4],
        "lang": ["en", None, "de", "en"],
        "score": [0.5, 1.5, None, 3.0],
        "vector": pa.array([[1, 0], [0, 1], [1, 1], [0, 0]], pa.list_(pa.float32(), 2)),
    },
    schema=SCHEMA,
)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("lang = 'en'", [1, 4]),
        ("lang <> 'en'", [3]),  # NULL is neither equal nor unequal
        ("lang IS NULL", [2]),
        ("score > 1 OR lang = 'de'", [2, 3, 4]),
        ("id IN (1, 3)", [1, 3]),
        ("ID between 2 and 3", [2, 3]),  # column names are case-insensitive, as in SQL
        ("starts_with(lang, 'e') AND score < 1", [1]),
        ("vector[1] = 1", [1, 3]),
        ("array_inner_product(vector, [1.0, 1.0]::FLOAT[2]) >= 1", [1, 2, 3]),
        ("true", [1, 2, 3, 4]),
        ("NULL", []),
    ],
)
def test_filter_semantics(where: str, expected: list[int]) -> None:
    mask = compile_filter(where, SCHEMA).mask(ROWS)
    assert ROWS.filter(pa.array(mask)).column("id").to_pylist() == expected


def test_filter_reads_only_referenced_columns() -> None:
    assert compile_filter("lang = 'en' AND score > 1", SCHEMA).columns == ("lang", "score")


@pytest.mark.parametrize(
    "where",
    [
        "id IN (SELECT 1)",
        "EXISTS (SELECT * FROM read_csv('/etc/passwd'))",
        "lang = (SELECT content FROM read_text('/etc/hostname'))",
        "1 = 1) UNION ALL SELECT * FROM read_parquet('x.parquet') WHERE (1 = 1",
        "true; COPY (SELECT 1) TO '/tmp/pwned.csv'",
        "true) ; INSTALL httpfs; SELECT (true",
        "row_number() OVER () = 1",
    ],
)
def test_unsafe_filters_are_refused(where: str, tmp_path: Path) -> None:
    with pytest.raises(hybrid.FilterError):
        compile_filter(where, SCHEMA)
    assert not Path("/tmp/pwned.csv").exists()


def test_external_access_is_off_even_in_scalar_functions() -> None:
    # A scalar-position file read must fail at bind time, not silently read.
    with pytest.raises(hybrid.FilterError):
        compile_filter("lang = getenv('HOME')", SCHEMA)


def test_expressions_evaluate_per_row() -> None:
    out = evaluate_expressions({"double": "id * 2", "tag": "coalesce(lang, '?')"}, ROWS, SCHEMA)
    assert out.to_pydict() == {"double": [2, 4, 6, 8], "tag": ["en", "?", "de", "en"]}
    with pytest.raises(hybrid.FilterError, match="unknown column 'nope'"):
        evaluate_expressions({"x": "nope + 1"}, ROWS, SCHEMA)
    with pytest.raises(hybrid.FilterError, match="subqueries"):
        evaluate_expressions({"x": "(SELECT 1)"}, ROWS, SCHEMA)


def test_count_rows_with_filter(docs: hybrid.Table) -> None:
    assert docs.count_rows("lang = 'en'") == 10
    docs.delete("id < 4")
    assert docs.count_rows("lang = 'en'") == 8  # deleted rows never count
    assert docs.count_rows("year >= 2010") == docs.to_arrow(where="year >= 2010").num_rows


def test_filter_reading_no_column_keeps_every_row(docs: hybrid.Table) -> None:
    docs.add(make_rows(range(20, 30)))  # two fragments
    assert docs.count_rows("true") == 30
    assert docs.to_arrow(["id"], where="1 = 1").num_rows == 30
    assert docs.count_rows("false") == 0


@pytest.mark.parametrize("where", ["current_setting('home_directory') = ''", "lang = getvariable('x')"])
def test_filters_cannot_read_engine_settings(where: str) -> None:
    with pytest.raises(hybrid.FilterError, match="may not call"):
        compile_filter(where, SCHEMA)
