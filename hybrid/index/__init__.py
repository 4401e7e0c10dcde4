"""Indexes over a table: full text (tantivy), vectors (hnswlib, exact), and their freshness."""
