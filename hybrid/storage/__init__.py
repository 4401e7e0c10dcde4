"""The versioned table format: Arrow IPC fragments, deletion files and manifests.

This layer knows nothing of DuckDB, tantivy or hnswlib; row filters are passed
in as plain callables.
"""
