"""`as_vector`: a query vector's NaN / inf is refused wherever it sits, by Python's sum (short vectors)
or numpy's (long ones); huge finite values, which overflow a float32 sum, are kept."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.errors import VectorError
from hybrid.query.search import PYTHON_SUM, as_vector


@pytest.mark.parametrize("dim", [1, 4, 384, PYTHON_SUM, PYTHON_SUM + 1, 3000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_at_every_place(dim: int, bad: float) -> None:
    for at in sorted({0, dim // 2, dim - 1}):
        v = np.ones(dim, np.float32)
        v[at] = bad
        with pytest.raises(VectorError, match="NaN or inf"):
            as_vector(v)
        with pytest.raises(VectorError, match="NaN or inf"):
            as_vector(v.tolist())


@pytest.mark.parametrize("dim", [384, PYTHON_SUM + 1])
def test_huge_finite_values_are_kept(dim: int) -> None:
    v = np.full(dim, 3e38, np.float32)  # their float32 sum overflows to inf
    with np.errstate(over="ignore"):
        assert np.isinf(v.sum())
    assert as_vector(v) is v
    assert as_vector(-v).dtype == np.float32


def test_shapes_and_types() -> None:
    v = np.arange(5, dtype=np.float32)
    assert as_vector(v) is v  # a float32 vector as it is
    assert as_vector(v[::2]).tolist() == [0.0, 2.0, 4.0]  # strided
    assert as_vector([1, 2]).dtype == np.float32
    assert as_vector(np.arange(3, dtype=np.float64)).dtype == np.float32
    assert as_vector(np.arange(3, dtype=np.float32).astype(">f4")).dtype == np.float32
    for bad in (np.ones((2, 2), np.float32), np.empty(0, np.float32), ["a", "b"]):
        with pytest.raises(VectorError):
            as_vector(bad)
