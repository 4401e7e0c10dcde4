"""A tiny built-in document collection (Markdown, HTML, text, JSONL) for ``hybrid demo``.

>>> import tempfile, pathlib
>>> sorted(p.name for p in write_demo_docs(pathlib.Path(tempfile.mkdtemp())).iterdir())
['cooking.jsonl', 'databases.html', 'search.md', 'security.md', 'style-guide.txt']
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_QUERIES = ("how do I rotate API keys?", "why does a database need a write-ahead log", "sourdough starter")

_SECURITY = """\
# Security handbook

## Secrets

### Rotating API keys

Rotate API keys by issuing a new key, deploying it everywhere, then revoking the old one.
Rotate them at least every ninety days, and at once when someone leaves the team.

### Password hashing

Store passwords with a slow salted hash such as Argon2 or bcrypt, never in plain text.

## Transport

TLS certificates expire: automate renewal and alert well before the expiry date.
"""

_SEARCH = """\
# Search basics

## BM25

BM25 scores documents by term frequency, inverse document frequency and document length.
It finds exact words, names and codes that embeddings may blur.

## Vector search

Embeddings map text to vectors; nearest neighbours in that space are passages with similar meaning.
An HNSW graph finds them quickly without comparing the query with every vector.

## Hybrid search

Hybrid search runs both and fuses the two rankings, for example with reciprocal rank fusion.
"""

_DATABASES = """\
<html><head><title>Database internals</title><style>body { color: black }</style></head>
<body><nav>Home | Docs | Blog</nav>
<h1>Database internals</h1>
<h2>Write-ahead logging</h2>
<p>A write-ahead log records every change before it reaches the data files,
so a crash never loses a committed transaction: replaying the log restores it.</p>
<h2>Indexes</h2>
<h3>B-trees</h3>
<p>A B-tree index keeps keys sorted, so range scans and point lookups take logarithmic time.</p>
<h3>Vacuum</h3>
<p>Vacuuming reclaims the space of deleted rows and keeps table statistics fresh.</p>
<script>console.log("not indexed")</script>
</body></html>
"""

_STYLE = """\
Write short sentences. Put the most important word first.

Prefer the active voice: "the server rejects the request", not "the request is rejected".
"""

_COOKING = [
    {"id": "r1", "title": "Sourdough starter", "cuisine": "baking",
     "text": "Feed a sourdough starter flour and water daily until it doubles within a few hours."},
    {"id": "r2", "title": "Searing steak", "cuisine": "grill",
     "text": "Dry the steak, heat the pan until it smokes, and do not move the meat for the first minutes."},
]  # fmt: skip


def write_demo_docs(folder: Path) -> Path:
    """Write the demo documents into `folder` (created if needed) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "security.md").write_text(_SECURITY, encoding="utf-8")
    (folder / "search.md").write_text(_SEARCH, encoding="utf-8")
    (folder / "databases.html").write_text(_DATABASES, encoding="utf-8")
    (folder / "style-guide.txt").write_text(_STYLE, encoding="utf-8")
    (folder / "cooking.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _COOKING), encoding="utf-8")
    return folder
