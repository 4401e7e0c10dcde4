"""Queries over tables: SQL filters (DuckDB) now; search, fusion and execution later."""
