"""The ``hybrid`` command line (typer): ingest, search, versions, optimize, demo, serve and eval.

Every command reports a bad input (a missing table, a malformed filter, an empty
query) as one red line on stderr and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from hybrid.db import Database
    from hybrid.embedders.base import Embedder
    from hybrid.ingest.pipeline import IngestReport
    from hybrid.query.search import QueryType
    from hybrid.rerankers.base import Reranker
    from hybrid.table import Table

app = typer.Typer(help="hybrid (BM25 + vector) search for retrieval-augmented generation.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """hybrid: hybrid (BM25 + vector) search for retrieval-augmented generation."""


class Titles(str, Enum):
    """Where a document's title goes among its chunks (``hybrid.eval.chunked.TitleLayout``)."""

    every = "every"
    once = "once"
    dense = "dense"
    none = "none"


class QueryEmbedding(str, Enum):
    """How `hybrid eval` embeds its questions (``hybrid.eval.pipeline.EvalSettings.query_embedding``)."""

    batched = "batched"
    alone = "alone"


class IngestTitles(str, Enum):
    """Where an ingested document's title goes (``hybrid.ingest.chunking.TitleLayout``)."""

    every = "every"
    once = "once"


@app.command("eval")
def eval_command(
    collection: Annotated[Path, typer.Argument(help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")],
    runs: Annotated[str, typer.Option(help="comma-separated names (see hybrid.eval.presets)")] = "bm25,dense,hybrid",
    out: Annotated[Path, typer.Option(help="report folder")] = Path("report"),
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    embedder: Annotated[
        str, typer.Option(help="registered embedder name, or auto: MiniLM for English text, else multilingual e5")
    ] = "auto",
    embedder_config: Annotated[str, typer.Option(help="embedder settings as JSON")] = "{}",
    tokenizer: Annotated[
        str, typer.Option(help="auto (the library's default analysis), default, jieba, cjk, whitespace")
    ] = "auto",
    k: Annotated[int, typer.Option(help="results kept per query")] = 100,
    limit_queries: Annotated[int | None, typer.Option(help="only the first N judged queries")] = None,
    ann: Annotated[bool, typer.Option(help="also measure ANN recall vs ef_search")] = False,
    ignore_identical_ids: Annotated[bool, typer.Option(help="drop hits whose id equals the query id")] = False,
    queries_from: Annotated[
        Path | None,
        typer.Option(help="ask with this BEIR folder's query texts, same ids (cross-lingual: xquad-r/en for de)"),
    ] = None,
    chunk: Annotated[
        int | None,
        typer.Option(help="also index the documents as ~N-token chunks; each run grouped by document and flat"),
    ] = None,
    chunk_titles: Annotated[
        Titles,
        typer.Option(help="with --chunk, each title: before every chunk, once as a title row, dense, or none"),
    ] = Titles.every,
    embed_queries: Annotated[
        QueryEmbedding,
        typer.Option(help="batched: all questions embedded in batches before the searches; alone: one per search"),
    ] = QueryEmbedding.batched,
) -> None:
    """Evaluate retrieval runs on a collection; write report.md, report.json, PNG plots and run files."""
    from rich.console import Console
    from rich.table import Table as RichTable

    from hybrid.eval.pipeline import EvalSettings, run_evaluation

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console(stderr=True)
    try:
        config = json.loads(embedder_config)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--embedder-config is not JSON: {exc}") from None
    settings = EvalSettings(
        runs=[r for r in runs.split(",") if r.strip()],
        split=split,
        embedder=embedder,
        embedder_config=config,
        tokenizer=tokenizer,
        k=k,
        limit_queries=limit_queries,
        ann=ann,
        ignore_identical_ids=ignore_identical_ids,
        queries_from=queries_from,
        chunk=chunk,
        chunk_titles=chunk_titles.value,
        query_embedding=embed_queries.value,
    )
    try:
        report, files = run_evaluation(collection, out, settings, log=lambda m: console.print(f"[dim]{m}[/dim]"))
    except (ValueError, FileNotFoundError, ImportError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = RichTable(title=f"{report.collection}: {report.num_queries} queries, {report.num_documents} documents")
    for column in ("run", *report.measures, f"p vs {report.baseline}", "p50 ms"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for e in report.entries:
        p = (report.significance or {}).get(e.name)
        table.add_row(
            e.name,
            *(f"{e.mean[m]:.4f}" for m in report.measures),
            "" if p is None else f"{p:.4f}",
            f"{e.latency['p50']:.1f}",
        )
    Console().print(table)
    console.print(f"report: {files['report.md']}")


# -- shared helpers -------------------------------------------------------------------------


class SearchType(str, Enum):
    hybrid = "hybrid"
    fts = "fts"
    vector = "vector"


class ChunkUnit(str, Enum):
    chars = "chars"
    tokens = "tokens"


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _fail(message: str) -> NoReturn:
    from rich.markup import escape

    _stderr().print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into a red message and exit status 2."""
    from hybrid.errors import HybridError

    try:
        yield
    except (HybridError, ValueError, LookupError, OSError, ImportError) as exc:
        _fail(str(exc) or type(exc).__name__)


def _location(path: Path | str) -> Path | str:
    """A database folder, or an object-store URI (``s3://bucket/prefix``) that typer read as a Path."""
    from hybrid.storage.remote import SCHEMES

    text = str(path)
    scheme, sep, rest = text.partition(":/")
    if sep and scheme.lower() in (*SCHEMES, "file"):
        rest = rest.lstrip("/")
        return f"{scheme}:///{rest}" if scheme.lower() == "file" else f"{scheme}://{rest}"
    return path


def _connect(path: Path) -> Database:
    import hybrid

    with _user_errors():  # an encrypted database without HYBRID_ENCRYPTION_KEY: one red line
        return hybrid.connect(_location(path))  # storage options of a URI: HYBRID_STORAGE_OPTIONS (JSON)


def _open_db(path: Path) -> Database:
    if isinstance(_location(path), str):
        return _connect(path)
    if not path.is_dir():
        _fail(f"no database folder at {path}")
    return _connect(path)


def _embedder(name: str | None, config_json: str) -> Embedder | None:
    from hybrid.embedders import create

    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        _fail(f"--embedder-config is not JSON: {exc}")
    if not isinstance(config, dict):
        _fail("--embedder-config must be a JSON object")
    if name is None or name == "auto":  # chosen by the text's language when the table is made
        if config:
            _fail("--embedder-config needs a named --embedder")
        return None
    return create(name, **config)


def make_reranker(name: str, table: Table) -> Reranker:
    """A reranker by CLI name: nanoranker, mmr, bi-encoder (both with the table's embedder),
    or ``cross-encoder:PATH`` (a local sentence-transformers cross-encoder)."""
    from hybrid.rerankers import BiEncoderReranker, CrossEncoderReranker, MMRReranker, NanoRankerReranker

    bound = next(iter(table.embeddings.values()), None)
    if name == "nanoranker":
        return NanoRankerReranker()
    if name.startswith("cross-encoder:"):
        return CrossEncoderReranker(name.split(":", 1)[1])
    if name in ("mmr", "bi-encoder"):
        if bound is None:
            raise ValueError(f"--rerank {name} needs a table with a bound embedder")
        return MMRReranker(bound[1]) if name == "mmr" else BiEncoderReranker(bound[1])
    raise ValueError(f"unknown reranker {name!r}: use nanoranker, mmr, bi-encoder or cross-encoder:PATH")


def run_search(
    table: Table,
    query: str,
    *,
    search_type: QueryType = "hybrid",
    where: str | None = None,
    limit: int = 10,
    reranker: Reranker | None = None,
) -> list[dict[str, Any]]:
    """Hits of `query` on an ingested table, without vectors."""
    if not query.strip():
        raise ValueError("the query is empty: give some words to search for")
    wanted = [
        c for c in ("id", "text", "title", "source", "heading", "page", "chunk", "metadata") if c in table.schema.names
    ]
    q = table.search(query, query_type=search_type).select(wanted).limit(limit)
    if where:
        q = q.where(where)
    if reranker is not None:
        q = q.rerank(reranker)
    return q.to_list()


def hits_table(hits: Sequence[dict[str, Any]], query: str, table: Table, *, title: str | None = None) -> Any:
    """A rich table of hits: rank, score, source (and page), heading and a snippet with matched terms marked."""
    from rich.table import Table as RichTable

    from hybrid.ingest.snippets import snippet, table_analyzer

    analyzer = table_analyzer(table)
    out = RichTable(title=title, show_lines=True, expand=True)
    out.add_column("#", justify="right", no_wrap=True)
    out.add_column("score", justify="right", no_wrap=True)
    out.add_column("source", overflow="fold", ratio=2)
    out.add_column("heading", overflow="fold", ratio=2)
    out.add_column("snippet", ratio=6)
    for rank, hit in enumerate(hits, start=1):
        score = hit.get("_relevance_score", hit.get("_score"))
        source = str(hit.get("source") or "")
        if hit.get("page") is not None:
            source += f" p.{hit['page']}"
        out.add_row(
            str(rank),
            f"{score:.4f}",
            source,
            str(hit.get("heading") or ""),
            marked(snippet(str(hit.get("text") or ""), query, analyzer=analyzer)),
        )
    return out


def marked(s: Any, style: str = "bold yellow") -> Any:
    """A :class:`hybrid.ingest.snippets.Snippet` as rich Text with its matches styled."""
    from rich.text import Text

    text = Text(s.text)
    for start, end in s.spans:
        text.stylize(style, start, end)
    return text


def print_report(console: Console, report: IngestReport, max_skipped: int = 30) -> None:
    """Counts of an ingest and the skipped files with their reasons."""
    from rich.markup import escape

    console.print(
        f"[bold]{report.table}[/bold]: {report.files} files read, {report.chunks} chunks "
        f"([green]+{report.added}[/green] written, [red]-{report.removed}[/red] removed; "
        f"{report.new_files} new, {report.changed_files} changed, {report.unchanged_files} unchanged files"
        + (f", {report.pruned_files} pruned" if report.pruned_files else "")
        + f"), {len(report.skipped)} skipped, version {report.version}, {report.seconds:.1f} s",
        soft_wrap=True,
    )
    for item in report.skipped[:max_skipped]:
        console.print(f"  [yellow]skipped[/yellow] {escape(item.source)}: {escape(item.reason)}", soft_wrap=True)
    if len(report.skipped) > max_skipped:
        console.print(f"  ... and {len(report.skipped) - max_skipped} more skipped (--max-skipped to list them)")


# -- commands -------------------------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="files and folders (walked recursively)")],
    db: Annotated[Path, typer.Option(help="database folder (created if needed)")],
    table: Annotated[str, typer.Option(help="table name (created if needed)")] = "docs",
    embedder: Annotated[
        str | None, typer.Option(help="embedder for a new table (default auto: MiniLM for English, else e5)")
    ] = None,
    embedder_config: Annotated[str, typer.Option(help="embedder settings as JSON")] = "{}",
    chunk_size: Annotated[int, typer.Option(help="target chunk size")] = 800,
    overlap: Annotated[int, typer.Option(help="repeated from the end of the previous chunk")] = 100,
    unit: Annotated[ChunkUnit, typer.Option(help="chunk size in characters or approximate tokens")] = ChunkUnit.chars,
    text_field: Annotated[str, typer.Option(help="JSONL field holding the text")] = "text",
    context: Annotated[
        bool, typer.Option(help="embed each chunk under its document's title and heading path (text stored as is)")
    ] = True,
    titles: Annotated[
        IngestTitles,
        typer.Option(help="each document's title with every chunk, or once as a title row (fixed per table)"),
    ] = IngestTitles.every,
    prune: Annotated[bool, typer.Option(help="delete chunks of files no longer found under the paths")] = False,
    max_skipped: Annotated[int, typer.Option(help="skipped files listed at most")] = 30,
) -> None:
    """Load, chunk, embed and index documents (Markdown, text, HTML, PDF, JSONL); re-running is idempotent."""
    from rich.console import Console

    from hybrid.ingest import Chunker, LoadOptions
    from hybrid.ingest.progress import ingest_with_progress

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console(stderr=True)
    if not any(p.exists() for p in paths):
        _fail(f"no such file or directory: {', '.join(map(str, paths))}")
    with _user_errors():
        chunker = Chunker(size=chunk_size, overlap=overlap, unit=unit.value, context=context, titles=titles.value)
        database = _connect(db)
        report = ingest_with_progress(
            console,
            database,
            table,
            paths,
            embedder=_embedder(embedder, embedder_config),
            chunker=chunker,
            options=LoadOptions(text_field=text_field),
            prune=prune,
        )
    print_report(Console(), report, max_skipped)


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="what to look for")],
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str, typer.Option(help="table name")] = "docs",
    type: Annotated[SearchType, typer.Option("--type", help="hybrid, fts (BM25) or vector")] = SearchType.hybrid,
    where: Annotated[str | None, typer.Option(help="SQL filter, e.g. \"source LIKE 'guide/%'\"")] = None,
    limit: Annotated[int, typer.Option(help="number of results")] = 10,
    rerank: Annotated[str | None, typer.Option(help="nanoranker, mmr, bi-encoder or cross-encoder:PATH")] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="one JSON object per hit instead of a table")] = False,
) -> None:
    """Search an ingested table; prints source, heading and a snippet with the matched terms marked."""
    from rich.console import Console

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    database = _open_db(db)
    with _user_errors():
        t = database.open_table(table)
        reranker = make_reranker(rerank, t) if rerank else None
        hits = run_search(
            t, query, search_type=cast("QueryType", type.value), where=where, limit=limit, reranker=reranker
        )
    if json_lines:
        for hit in hits:
            typer.echo(json.dumps(hit, default=str, ensure_ascii=False))
        return
    console = Console()
    if not hits:
        console.print("no results")
        return
    console.print(hits_table(hits, query, t, title=f"{type.value} search for {query!r} in {table}"))


@app.command("versions")
def versions_command(
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str, typer.Option(help="table name")] = "docs",
) -> None:
    """List a table's versions: number, time, operation, rows and what changed."""
    from rich.console import Console
    from rich.table import Table as RichTable

    database = _open_db(db)
    with _user_errors():
        versions = database.open_table(table).versions()
    out = RichTable(title=f"versions of {table}")
    for column in ("version", "time (UTC)", "operation", "rows", "details"):
        out.add_column(column, justify="right" if column in ("version", "rows") else "left")
    for v in versions:
        details = ", ".join(f"{k}={v}" for k, v in v.details.items())
        out.add_row(str(v.version), f"{v.timestamp:%Y-%m-%d %H:%M:%S}", v.operation, str(v.num_rows), details)
    Console().print(out)


@app.command("optimize")
def optimize_command(
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str | None, typer.Option(help="only this table (default: every table)")] = None,
    rebuild: Annotated[bool, typer.Option(help="build changed or merged indexes from scratch")] = False,
    watch: Annotated[
        float | None,
        typer.Option(min=0.1, help="keep running: every this many seconds, do the upkeep that is due (Ctrl-C stops)"),
    ] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="with --watch: stop after this many rounds")] = None,
) -> None:
    """Compact small fragments and fold new and deleted rows into the indexes (a merge, not a rebuild).

    With --watch it keeps doing, for tables written by other processes, what a writing
    process does by itself after its writes (hybrid.Upkeep): compactions and merges once due.
    """
    import time

    database = _open_db(db)
    database.upkeep = None  # this command is the upkeep: no background thread besides
    console = _stderr()
    done = 0
    while True:
        with _user_errors():
            names = [table] if table is not None else database.table_names()
            for name in names:
                t = database.open_table(name)
                if watch is None:
                    before = t.version
                    ops = ["compact"] if t.compact().version != before else []
                    ops += [c.operation for c in t.optimize(rebuild=rebuild)]
                else:
                    ops = [c.operation for c in t.run_upkeep()]
                if ops:
                    console.print(f"{name}: {', '.join(ops)} -> version {t.version}")
        done += 1
        if watch is None or (rounds is not None and done >= rounds):
            return
        time.sleep(watch)


@app.command("check")
def check_command(
    db: Annotated[Path, typer.Option(help="database folder")],
    table: Annotated[str | None, typer.Option(help="only this table (default: every table)")] = None,
    all_versions: Annotated[bool, typer.Option(help="check every retained version, not only the newest")] = False,
    repair: Annotated[
        bool, typer.Option(help="apply the safe repairs: restore the newest intact version, rebuild damaged indexes")
    ] = False,
) -> None:
    """Read every file of a table and compare it with its checksum; exit 1 if anything is damaged or missing.

    --repair never deletes anything: it commits a restore of the newest version whose data is
    intact and rebuilds damaged indexes from the data, then checks again.
    """
    database = _open_db(db)
    database.upkeep = None
    damaged = False
    with _user_errors():
        for name in [table] if table is not None else database.table_names():
            t = database.open_table(name)
            report = t.check(all_versions=all_versions)
            typer.echo(report.summary())
            if repair and not t.check().ok:
                for commit in t.repair():
                    typer.echo(f"{name}: {commit.operation} -> version {commit.version}")
                report = t.check()
                typer.echo(f"after repair: {'OK' if report.ok else 'still damaged'}")
            damaged = damaged or not report.ok
    if damaged:
        raise typer.Exit(1)


@app.command("demo")
def demo_command(
    embedder: Annotated[
        str | None, typer.Option(help="embedder (default: all-MiniLM-L6-v2 as int8 ONNX, no torch needed)")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="keep the demo database here (default: a temporary folder)")] = None,
) -> None:
    """Ingest a few built-in documents into a fresh table and search them."""
    from rich.console import Console

    from hybrid.embedders import auto
    from hybrid.ingest import Chunker
    from hybrid.ingest.demo import DEMO_QUERIES, write_demo_docs
    from hybrid.ingest.progress import ingest_with_progress

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console()
    with tempfile.TemporaryDirectory(prefix="hybrid-demo-") as tmp, _user_errors():
        docs = write_demo_docs(Path(tmp) / "docs")
        database = _connect(db or Path(tmp) / "db")
        database.drop_table("demo", missing_ok=True)
        model = _embedder(embedder or auto.ENGLISH, "{}")
        console.print(f"[bold]hybrid demo[/bold]: {len(list(docs.iterdir()))} documents in {docs}, embedder {model!r}")
        report = ingest_with_progress(
            _stderr(), database, "demo", [docs], embedder=model, chunker=Chunker(size=300, overlap=40)
        )
        print_report(console, report)
        table = database.open_table("demo")
        for query in DEMO_QUERIES:
            hits = run_search(table, query, limit=3)
            console.print(hits_table(hits, query, table, title=f"hybrid search: {query!r}"))
        where = "source = 'security.md'"
        hits = run_search(table, "certificates", where=where, limit=3)
        console.print(hits_table(hits, "certificates", table, title=f"'certificates' where {where}"))
        console.print(f'try: hybrid search "your question" --db {db or "<a folder>"} --table demo')
        console.print(
            f"or in a browser: HYBRID_API_KEYS=<a key of 16+ characters>:read hybrid serve --db {db or '<a folder>'} "
            "--open, then open http://127.0.0.1:8000/ and type that key"
        )


@app.command("serve")
def serve_command(
    db: Annotated[Path, typer.Option(help="database folder to serve")],
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    config: Annotated[Path | None, typer.Option(help="server config file (TOML or JSON): keys, roles, limits")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="worker processes (default: the CPUs this process may use, at most 4)"),
    ] = None,
    graceful_timeout: Annotated[
        float, typer.Option(min=0.1, help="seconds a stopping server gives requests in flight to finish")
    ] = 30.0,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate (chain): serve HTTPS")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    open_page: Annotated[bool, typer.Option("--open", help="open the web page in a browser once it answers")] = False,
) -> None:
    """Serve the database's tables over HTTP (needs the server extra); SIGTERM finishes requests in flight."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    location = _location(db)
    if isinstance(location, str):
        _connect(db)  # an unreachable store or bad credentials: one clear line before any worker starts
    elif not db.is_dir():
        _fail(f"no database folder at {db}")
    with _user_errors():
        from hybrid.server import serve

        if open_page:
            _open_when_ready(host, port, https=tls_cert is not None)
        serve(
            location,
            host=host,
            port=port,
            config_path=config,
            workers=workers,
            graceful_timeout=graceful_timeout,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )


@app.command("erase")
def erase_command(
    db: Annotated[Path, typer.Argument(help="database folder")],
    table: Annotated[str, typer.Argument(help="table to erase rows from")],
    where: Annotated[
        str | None, typer.Option(help="SQL filter of the rows to erase from every retained version")
    ] = None,
    by: Annotated[str | None, typer.Option(help="who asks (recorded in the version log; default: the OS user)")] = None,
    verify: Annotated[bool, typer.Option(help="scan every file of the table for the erased values afterwards")] = True,
    resume: Annotated[bool, typer.Option(help="only finish an erasure a crash interrupted")] = False,
) -> None:
    """Erase rows from the newest version and every retained one, their indexes and files; exit 1 if the
    verification finds an erased value left."""
    if (where is None) != resume:
        _fail("give --where (the rows to erase) or --resume (finish an interrupted erasure), not both")
    database = _open_db(db)
    database.upkeep = None
    with _user_errors():
        report = database.open_table(table).erase(where, by=by, verify=verify and not resume)
    typer.echo(
        f"{table}: erased {report.erased_rows} row(s) ({report.live_rows_erased} live) from "
        f"{len(report.versions_rewritten)} version(s) -> version {report.version}; {report.files_rewritten} data "
        f"file(s) rewritten, {report.indexes_rebuilt} index folder(s) rebuilt, {report.files_removed} file(s) removed "
        f"in {report.seconds:.2f} s"
    )
    found = report.verification
    if found is not None:
        typer.echo(
            f"verification: {found.files_scanned} file(s), {found.bytes_scanned / 1e6:.1f} MB scanned for "
            f"{found.values_searched} erased value(s): {'none found' if found.ok else f'{len(found.leaks)} FOUND'}"
        )
        for leak in found.leaks:
            typer.echo(f"  {leak.path}: {leak.what}")
        if not found.ok:
            raise typer.Exit(1)


def _open_when_ready(host: str, port: int, https: bool = False) -> None:
    """Open the web page in a browser as soon as the server answers (a background thread, at most 60 s)."""
    import ssl
    import sys
    import threading
    import time
    import urllib.request
    import webbrowser

    # only asks our own server whether it is up: a self-signed certificate is fine here
    probe = ssl._create_unverified_context() if https else None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    scheme = "https" if https else "http"
    url = f"{scheme}://{'[' + shown + ']' if ':' in shown else shown}:{port}/"

    def wait_then_open() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "v1/health", timeout=1, context=probe):
                    webbrowser.open(url)
                    return
            except OSError:
                time.sleep(0.25)

    print(f"the web page: {url}", file=sys.stderr)
    threading.Thread(target=wait_then_open, daemon=True, name="open-page").start()


from hybrid.feedback.cli import feedback_app, tune_command  # noqa: E402  (last: its commands import helpers from here)

app.add_typer(feedback_app, name="feedback")
app.command("tune")(tune_command)

if __name__ == "__main__":
    app()
