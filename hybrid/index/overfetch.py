"""How deep to search the whole table so that enough of the hits pass a filter.

When `allowed` of `total` rows pass and they are spread like the rest, the number
of allowed rows among the first L hits is binomial with mean L x p (p = allowed /
total) and standard deviation about sqrt(L x p). Fetching L = (k + MARGIN x sqrt(k)) / p
puts k that many standard deviations below the expected count, so a second, deeper
search is rarely needed; when one is (the filter picks rows unlike the rest), the
callers deepen 4x.
"""

from __future__ import annotations

import math

MARGIN = 3.0
"""Standard deviations of margin above k."""


def overfetch_depth(allowed: int, k: int, total: int) -> int:
    """Hits to fetch for `k` allowed ones when `allowed` of `total` rows pass.

    >>> overfetch_depth(1_000, 10, 100_000), overfetch_depth(10_000, 50, 100_000)
    (1949, 713)
    """
    p = max(allowed, 1) / max(total, 1)
    return max(k, math.ceil((k + MARGIN * math.sqrt(k)) / min(p, 1.0)))
