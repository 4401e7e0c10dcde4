"""The code behind the benchmark scripts in ``eval/`` (run those, not these modules).

* ``frame``: what the benchmarks share: timing and statistics, machine and git information, the common
  command-line options, guarded steps, scratch folders, results JSON + Markdown; ``files``: sizes, page
  cache, bytes read from disk.
* ``search_*``, for ``eval/bench_search.py``: ``search_data`` (corpus, queries, filters), the systems
  (``search_system`` base, ``search_hybrid``, ``search_floor``, ``search_lance``), ``search_quality``
  (exact answers), ``search_run``, ``search_profile``, ``search_report``.
* ``storage_*``, for ``eval/bench_storage.py``: ``storage_data``, ``storage_stores``, ``storage_steps``,
  ``storage_report``.
* ``peer_*``, for ``eval/peer_lancedb.py``: ``peer_config``, ``peer_vectors``, ``peer_hybrid``,
  ``peer_lance``, ``peer_probe``, ``peer_run``, ``peer_report``.

The scripts put ``eval/`` first on ``sys.path``, so these import as ``bench.<module>``.
"""
