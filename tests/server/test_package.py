"""The public names of `hybrid.server`, and JSON-safe values."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa

import hybrid.server
from hybrid.server.rows import json_rows


def test_all_names_exist() -> None:
    assert sorted(hybrid.server.__all__) == hybrid.server.__all__
    for name in hybrid.server.__all__:
        assert getattr(hybrid.server, name) is not None


def test_json_rows_of_every_arrow_kind() -> None:
    table = pa.table(
        {
            "f": [float("nan"), float("-inf"), 1.5],
            "b": [b"\x01", None, b""],
            "t": [dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc), None, None],
            "d": pa.array([decimal.Decimal("1.25"), None, None], pa.decimal128(5, 2)),
            "l": [[1.0, float("nan")], None, []],
            "s": [{"x": float("inf")}, None, {"x": 2.0}],
            "dur": pa.array([dt.timedelta(seconds=90), None, None]),
        }
    )
    rows = json_rows(table)
    text = json.dumps(rows, allow_nan=False)  # would raise on any NaN or infinity left
    assert rows[0] == {
        "f": None,
        "b": "AQ==",
        "t": "2024-01-02T03:04:00+00:00",
        "d": "1.25",
        "l": [1.0, None],
        "s": {"x": None},
        "dur": 90.0,
    }
    assert json.loads(text)[2]["b"] == ""
