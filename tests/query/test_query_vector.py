"""`as_vector`: a query vector's NaN / inf is refused wherever it sits (its min or max is not
finite); huge finite values, whose squares or sum overflow float32, are kept, without a warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hybrid.errors import VectorError
from hybrid.query.search import as_vector


@pytest.mark.parametrize("dim", [1, 4, 384, 1025, 3000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fill", [1.0, 0.0, 1e20, -3e38])
@pytest.mark.parametrize("warned", ["ignore", "error"])
def test_nan_and_inf_are_refused_at_every_place(dim: int, bad: float, fill: float, warned: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter(warned)  # numpy's warning about 0 x inf, made an error: still a VectorError
        for at in sorted({0, dim // 2, dim - 1}):
            v = np.full(dim, fill, np.float32)
            v[at] = bad
            with pytest.raises(VectorError, match="NaN or inf"):
                as_vector(v)
            with pytest.raises(VectorError, match="NaN or inf"):
                as_vector(v.tolist())
            with pytest.raises(VectorError, match="NaN or inf"):
                as_vector(np.repeat(v, 2)[::2])  # strided


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dim", [1, 384, 3000])
@pytest.mark.parametrize("value", [3e38, 1e20, 2e19])
def test_huge_finite_values_are_kept(dim: int, value: float) -> None:
    v = np.full(dim, value, np.float32)  # their squares (and for 3e38 their sum) overflow float32
    with np.errstate(over="ignore"):
        assert np.isinf(v.astype(np.float32) ** 2).all()
    assert as_vector(v) is v
    assert as_vector(-v).dtype == np.float32
    assert as_vector(np.repeat(v, 2)[::2]).shape == (dim,)


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
