"""Ingest documents into a table: loaders by file type, structure-aware chunking, idempotent upserts.

>>> from hybrid.ingest import Chunker, ingest, load_paths, snippet
>>> Chunker(size=200, overlap=20).size
200

Needs the ``ingest`` extra (markdown-it-py, beautifulsoup4, pypdf) for Markdown, HTML and PDF.
"""

from hybrid.ingest.chunking import Chunk, Chunker, chunk_id, count_tokens, split_sentences
from hybrid.ingest.document import Document, Section, Skipped
from hybrid.ingest.loaders import EXTENSIONS, LoadOptions, load_file, load_paths, walk
from hybrid.ingest.pipeline import CHUNK_SCHEMA, IngestReport, ingest
from hybrid.ingest.snippets import Snippet, TermMatcher, snippet, table_analyzer

__all__ = [
    "CHUNK_SCHEMA",
    "EXTENSIONS",
    "Chunk",
    "Chunker",
    "Document",
    "IngestReport",
    "LoadOptions",
    "Section",
    "Skipped",
    "Snippet",
    "TermMatcher",
    "chunk_id",
    "count_tokens",
    "ingest",
    "load_file",
    "load_paths",
    "snippet",
    "split_sentences",
    "table_analyzer",
    "walk",
]
