"""``POST /v1/tables/{name}/answer``: a question answered from a table's passages, with numbered citations.

The passages come from one hybrid search. With ``chat_url`` configured (an OpenAI-compatible API:
``POST {chat_url}/chat/completions`` with ``stream: true``), the model writes the answer from the
numbered passages and its words stream to the client as they arrive; without one, the answer is
extractive: the best passage snippets, each followed by its citation number. The model's key
stays on the server (``chat_key_env``).

The response is newline-delimited JSON, one event a line::

    {"type": "citations", "mode": "llm" | "extractive", "version": 7, "citations": [{"n": 1, "_rowid": ..., ...}]}
    {"type": "delta", "text": "..."}          (one or more)
    {"type": "done"}                          or {"type": "error", "message": "..."}

Bad input (a bad filter, an unknown table) fails before the stream starts, as a JSON error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from hybrid.budget import time_budget
from hybrid.embedders import binding
from hybrid.scoped import ScopedTable, unscoped
from hybrid.server.admission import arrival
from hybrid.server.auth import requires
from hybrid.server.config import ServerConfig
from hybrid.server.errors import ApiError, library_errors
from hybrid.server.models import TABLE_NAME, ColumnName, ErrorResponse
from hybrid.server.rows import json_rows
from hybrid.server.tables import Tables
from hybrid.storage.ingest import is_vector_type
from hybrid.table import Table

logger = logging.getLogger(__name__)

NamePath = Annotated[str, PathParam(pattern=TABLE_NAME, description="table name")]
SNIPPET = 320
"""Characters of each passage the extractive answer quotes."""
PASSAGE_CHARS = 2_000
"""Characters of each passage sent to the model."""
SYSTEM = (
    "Answer the question using only the numbered passages. Cite every claim with the passage number in "
    "square brackets, like [1]. If the passages do not contain the answer, say so."
)


class AnswerRequest(BaseModel):
    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1, description="the question")
    passages: int = Field(4, ge=1, le=20, description="passages retrieved and cited")
    where: str | None = Field(None, min_length=1, description="SQL filter on the passages")
    version: int | None = Field(None, ge=1, description="answer from this version (default the newest)")
    text_column: ColumnName | None = Field(None, description="the passage text (default: the embedded source)")


def text_column(view: Table | ScopedTable, wanted: str | None) -> str:
    """The column holding passage text: `wanted`, else the embedded source, the full-text index's, a string."""
    names = view.schema.names
    if wanted is not None:
        if wanted not in names:
            raise ApiError(400, "InvalidInput", f"text_column {wanted!r} is not a column; columns: {names}")
        return wanted
    table = unscoped(view)  # which columns hold text: settings of the table, no rows
    for b in binding.read(table.snapshot().manifest.metadata):
        return b.source
    for s in table.index_stats():
        if s["kind"] == "fts":
            return str(s["columns"][0])
    for f in view.schema:
        if str(f.type) in ("string", "large_string"):
            return f.name
    raise ApiError(400, "InvalidInput", f"table {view.name!r} has no text column to answer from")


def _passages(view: Table | ScopedTable, req: AnswerRequest, column: str) -> list[dict[str, Any]]:
    has_fts = any(s["kind"] == "fts" for s in unscoped(view).index_stats())  # which kinds, no counts
    q = view.search().text(req.question).limit(req.passages)
    if req.where is not None:
        q = q.where(req.where)
    q = q.select([f.name for f in view.schema if not is_vector_type(f.type)])
    if has_fts:
        q = q.highlight(column, width=SNIPPET, pre="", post="")
    return json_rows(q.to_arrow())


def _citation(n: int, row: dict[str, Any], column: str) -> dict[str, Any]:
    text = str(row.get(column) or "")
    snippet = row.get("_highlight") or text[:SNIPPET]
    fields = {k: v for k, v in row.items() if not k.startswith("_") and k != column and not isinstance(v, list)}
    return {
        "n": n,
        "_rowid": row.get("_rowid"),
        "score": row.get("_score"),
        "text": text,
        "snippet": snippet,
        "fields": fields,
    }


def _event(**data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


def _extractive(citations: list[dict[str, Any]]) -> Iterator[bytes]:
    if not citations:
        yield _event(type="delta", text="No passage matches the question.")
    for c in citations:
        yield _event(type="delta", text=f"{c['snippet'].strip()} [{c['n']}]\n\n")


def _prompt(question: str, citations: list[dict[str, Any]]) -> list[dict[str, str]]:
    passages = "\n\n".join(f"[{c['n']}] {c['text'][:PASSAGE_CHARS]}" for c in citations)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"},
    ]


def stream_completion(config: ServerConfig, messages: list[dict[str, str]]) -> Iterator[str]:
    """The text pieces of a streamed chat completion from `config.chat_url` (server-sent events)."""
    headers = {"Accept": "text/event-stream"}
    key = os.environ.get(config.chat_key_env, "") if config.chat_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": config.chat_model, "messages": messages, "stream": True}
    url = config.chat_url.rstrip("/") + "/chat/completions"
    with (
        httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0)) as client,
        client.stream("POST", url, json=body, headers=headers) as response,
    ):
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"the chat endpoint answered {response.status_code}: {response.text[:200]}")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            choices = json.loads(data).get("choices") or [{}]
            piece = (choices[0].get("delta") or {}).get("content")
            if piece:
                yield piece


def router(config: ServerConfig, tables: Tables) -> APIRouter:
    """``POST /v1/tables/{name}/answer`` over `tables`."""
    r = APIRouter(prefix="/v1")
    errors: dict[int | str, dict[str, Any]] = {
        c: {"model": ErrorResponse, "description": d}
        for c, d in ((400, "a bad filter or column"), (401, "no valid key"), (404, "no such table or version"))
    }

    @r.post(
        "/tables/{name}/answer",
        responses={**errors, 200: {"content": {"application/x-ndjson": {}}, "description": "events, one a line"}},
        dependencies=[Depends(requires("read"))],
        tags=["search"],
    )
    def answer(name: NamePath, req: AnswerRequest) -> StreamingResponse:
        """Answer `question` from the table's best passages, citing them by number (newline-delimited JSON)."""
        for what, text in (("question", req.question), ("where", req.where)):
            if text is not None and len(text) > config.max_query_chars:
                raise ApiError(422, "ValidationError", f"{what} is over {config.max_query_chars} characters")
        with library_errors(), time_budget(config.request_seconds, arrival()), tables.reading(name) as latest:
            view = latest if req.version is None else latest.checkout(req.version)
            column = text_column(view, req.text_column)
            rows = _passages(view, req, column)  # the retrieval within the request's budget (503 past it)
        citations = [_citation(i + 1, row, column) for i, row in enumerate(rows)]
        mode = "llm" if config.chat_url and citations else "extractive"

        def events() -> Iterator[bytes]:
            yield _event(type="citations", mode=mode, version=view.version, column=column, citations=citations)
            if mode == "extractive":
                yield from _extractive(citations)
            else:
                try:
                    for piece in stream_completion(config, _prompt(req.question, citations)):
                        yield _event(type="delta", text=piece)
                except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                    logger.warning("chat endpoint failed: %s", exc)
                    yield _event(type="error", message=f"the chat model failed: {exc}")
                    return
            yield _event(type="done")

        return StreamingResponse(events(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    return r
