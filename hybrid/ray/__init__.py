"""Ray for tables beyond one process: parallel writes and reads with Ray Data, embedding on an
actor pool, and search over a table split into shards served by Ray actors.

Needs the ``ray`` extra (``pip install 'hybridsearch[ray]'``); ``import hybrid`` never imports Ray.

- :func:`write`: a Ray Dataset into a table; workers write data files, the driver commits once.
- :func:`read`: a table (one version, a filter, some columns) as a Ray Dataset, fragments read in parallel.
- :func:`embed`: fill the vector columns a table binds to an embedder, on a pool of actors.
- :func:`shard` / :class:`ShardedTable`: a table split into row-id ranges, each served by an actor,
  searched with results equal to the unsharded table's (global BM25 statistics).
"""

from __future__ import annotations

from hybrid.errors import require

require("ray.data", "ray")

from hybrid.ray.embed import embed  # noqa: E402
from hybrid.ray.shards import ShardedQuery, ShardedTable, shard  # noqa: E402
from hybrid.ray.sink import write  # noqa: E402
from hybrid.ray.source import read  # noqa: E402

__all__ = ["ShardedQuery", "ShardedTable", "embed", "read", "shard", "write"]
