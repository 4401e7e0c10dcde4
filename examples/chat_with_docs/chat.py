"""Chat with your docs: ingest a folder of documents, then answer questions with cited passages.

Run:
    python examples/chat_with_docs/chat.py --db ./docsdb \\
        --question "how do I add a full-text index?" --question "what does cleanup remove?"

Without --docs, a new table is made from hybrid's own documentation (the docs/
folder of this repository); pass --docs FOLDER for your own documents.

The folder is ingested with `hybrid.ingest` (HTML, Markdown, text, PDF, JSONL;
structure-aware chunks; unchanged files are not embedded again on the next
run), each question is searched with the hybrid (BM25 + MiniLM) query, and the
best passages are printed with their file and heading and the matched words
marked. With an OpenAI-compatible endpoint (OPENAI_BASE_URL and/or
OPENAI_API_KEY, plus --model or OPENAI_MODEL) it also prints an answer written
from those passages only, citing them by number. Without one it runs offline.
Without --question it asks interactively on a terminal, or reads one question
per line from stdin.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask a model hub

from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.text import Text  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import create  # noqa: E402
from hybrid.ingest import Chunker, IngestReport, snippet, table_analyzer  # noqa: E402
from hybrid.ingest.progress import ingest_with_progress  # noqa: E402
from hybrid.table import Table  # noqa: E402

OWN_DOCS = Path(__file__).resolve().parents[2] / "docs"
"""What a new table is made from when --docs is not given: hybrid's own documentation."""

SYSTEM_PROMPT = (
    "You answer questions about documentation. Use only the numbered passages you are given. "
    "Cite the passages you use by number, like [1] or [2][3]. If the passages do not answer "
    "the question, say so briefly instead of guessing."
)


@dataclass(frozen=True)
class LLM:
    """An OpenAI-compatible chat completions endpoint."""

    base_url: str
    model: str
    api_key: str | None
    timeout: float = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--docs",
        type=Path,
        help="folder (or file) of documents to ingest; omit to reuse the table in --db, or, when there is none "
        "yet, to ingest hybrid's own docs/ folder",
    )
    parser.add_argument("--db", type=Path, required=True, help="database folder (kept between runs)")
    parser.add_argument("--table", default="docs", help="table name (default: docs)")
    parser.add_argument("--question", "-q", action="append", default=[], help="a question (repeatable)")
    parser.add_argument("--limit", type=int, default=5, help="passages per question (default: 5)")
    parser.add_argument("--type", choices=["hybrid", "fts", "vector"], default="hybrid", help="search type")
    parser.add_argument("--embedder", default="onnx-minilm", help="embedder for a new table")
    parser.add_argument("--chunk-size", type=int, default=800, help="chunk size in characters")
    parser.add_argument("--overlap", type=int, default=100, help="characters repeated between chunks")
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL"), help="chat model (env OPENAI_MODEL)")
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="env OPENAI_BASE_URL")
    parser.add_argument("--no-llm", action="store_true", help="never call a language model")
    return parser.parse_args(argv)


def llm_from(args: argparse.Namespace, console: Console) -> LLM | None:
    """The configured endpoint, or None (with a note when it is half configured)."""
    key = os.environ.get("OPENAI_API_KEY")
    if args.no_llm or not (args.base_url or key):
        return None
    if not args.model:
        console.print("[yellow]an endpoint is set but no model: pass --model or set OPENAI_MODEL[/yellow]")
        return None
    return LLM((args.base_url or "https://api.openai.com/v1").rstrip("/"), args.model, key)


def ingest_docs(console: Console, db: hybrid.Database, args: argparse.Namespace) -> IngestReport:
    embedder = None if args.table in db else create(args.embedder)
    chunker = Chunker(size=args.chunk_size, overlap=args.overlap)
    return ingest_with_progress(console, db, args.table, [args.docs], embedder=embedder, chunker=chunker, prune=True)


def retrieve(table: Table, question: str, limit: int, search_type: str) -> list[dict[str, Any]]:
    columns = ["text", "source", "heading", "page", "title"]
    return table.search(question, query_type=search_type).select(columns).limit(limit).to_list()  # type: ignore[arg-type]


def citation(hit: dict[str, Any]) -> str:
    where = str(hit["source"])
    if hit.get("page") is not None:
        where += f", page {hit['page']}"
    return f"{where} — {hit['heading']}" if hit.get("heading") else where


def show_passages(console: Console, question: str, hits: list[dict[str, Any]], analyzer: Any) -> None:
    for n, hit in enumerate(hits, start=1):
        console.print(f"[bold cyan][{n}][/bold cyan] [bold]{escape(citation(hit))}[/bold]", soft_wrap=True)
        s = snippet(hit["text"], question, width=420, analyzer=analyzer)
        text = Text("    " + s.text)
        for start, end in s.spans:
            text.stylize("bold yellow", start + 4, end + 4)
        console.print(text)


def generate(llm: LLM, question: str, hits: list[dict[str, Any]]) -> str:
    """An answer from `llm` grounded in the numbered passages; raises on a failed call."""
    import httpx

    passages = "\n\n".join(f"[{n}] ({citation(h)})\n{h['text']}" for n, h in enumerate(hits, start=1))
    body = {
        "model": llm.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"},
        ],
    }
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    response = httpx.post(f"{llm.base_url}/chat/completions", json=body, headers=headers, timeout=llm.timeout)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"]).strip()


def answer(console: Console, table: Table, question: str, args: argparse.Namespace, llm: LLM | None) -> None:
    console.rule(f"[bold]{escape(question)}")
    hits = retrieve(table, question, args.limit, args.type)
    if not hits:
        console.print("no passages found")
        return
    show_passages(console, question, hits, table_analyzer(table))
    if llm is None:
        return
    try:
        text = generate(llm, question, hits)
    except Exception as exc:  # the passages are the answer when the model is unreachable
        console.print(f"[yellow]no generated answer ({type(exc).__name__}: {escape(str(exc))})[/yellow]")
        return
    console.print(f"\n[bold green]answer[/bold green] ({escape(llm.model)}):")
    console.print(escape(text))


def questions(args: argparse.Namespace, console: Console) -> list[str] | None:
    """The questions to answer now, or None for an interactive session."""
    if args.question:
        return list(args.question)
    if sys.stdin.isatty():
        return None
    return [line.strip() for line in sys.stdin if line.strip()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    err = Console(stderr=True)
    db = hybrid.connect(args.db)
    if args.docs is None and args.table not in db:
        args.docs = OWN_DOCS
    try:
        if args.docs is not None:
            if not args.docs.exists():
                err.print(f"[red]error: no such file or directory: {escape(str(args.docs))}[/red]")
                return 2
            report = ingest_docs(err, db, args)
            console.print(
                f"ingested {args.docs}: {report.files} files, {report.chunks} chunks "
                f"({report.added} embedded now, {report.removed} removed, {report.unchanged_files} files unchanged), "
                f"{len(report.skipped)} skipped, {report.seconds:.1f} s "
                f"({', '.join(f'{stage} {t:.1f} s' for stage, t in report.timings.items())})",
                soft_wrap=True,
            )
            for item in report.skipped[:10]:
                console.print(f"  skipped {escape(str(item))}", soft_wrap=True)
            if len(report.skipped) > 10:
                console.print(f"  ... and {len(report.skipped) - 10} more skipped")
        table = db.open_table(args.table)
        llm = llm_from(args, console)
        todo = questions(args, console)
        if todo is None:
            console.print("ask a question (empty line or Ctrl-D to quit)")
            while True:
                try:
                    question = console.input("[bold]question> [/bold]").strip()
                except (EOFError, KeyboardInterrupt):
                    break
                if not question:
                    break
                answer(console, table, question, args, llm)
            return 0
        for question in todo:
            answer(console, table, question, args, llm)
    except (hybrid.HybridError, ValueError, LookupError, OSError, ImportError) as exc:
        err.print(f"[red]error: {escape(str(exc))}[/red]", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
