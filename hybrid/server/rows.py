"""Result rows as JSON: vectors as lists, binary as base64, NaN and infinities as null."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from typing import Any

import pyarrow as pa


def json_value(value: Any) -> Any:
    """A value from ``pa.Table.to_pylist()`` as something ``json.dumps(allow_nan=False)`` accepts.

    >>> json_value({"v": [1.5, float("nan")], "blob": b"\\x00\\xff", "when": dt.date(2024, 1, 2)})
    {'v': [1.5, None], 'blob': 'AP8=', 'when': '2024-01-02'}
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Every row of `table` as a JSON-safe dict."""
    return [{name: json_value(v) for name, v in row.items()} for row in table.to_pylist()]
