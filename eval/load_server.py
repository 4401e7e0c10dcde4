#!/usr/bin/env python
"""Load test of the HTTP server: many concurrent clients searching (and some writing) for a while.

Builds a table (SciFact's 5,183 documents from ``$HYBRID_DATA/scifact``, or synthetic
documents with ``--corpus synthetic``) with a HashingEmbedder binding, a BM25 index and an
HNSW index, starts ``hybrid.server.serve`` in a subprocess on 127.0.0.1 (real uvicorn with
``--workers`` processes, API keys from ``HYBRID_API_KEYS``: searches use a read key, writes a
write key), and drives
``--clients`` concurrent clients (asyncio + httpx, one keep-alive connection each) for
``--duration`` seconds after ``--warmup`` seconds that are not counted.

Each request is drawn from a fixed mix (``--mix``): hybrid search with a filter, BM25 search
with a filter, vector search (the query text embedded by the server), appends of 1-3
documents and deletes of documents the load test added itself. Filters combine a year range
and a category; about one search in five has none. Queries are SciFact's queries (or
synthetic word pairs).

Reported: throughput (requests/s, overall and per kind), latency percentiles (p50, p95,
p99, max), errors by kind (HTTP status and error type, or the transport exception), the CPU
time of the server (its processes together, and per worker) and of this load generator, and
a consistency check (rows at the end = rows at the start + appended - deleted, from the
write responses). Results go to ``<out>/<name>.json`` and ``.md`` (default
``eval/results/server_load``) with the exact command, the machine (CPU count, load average)
and the git commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hybrid  # noqa: E402
from hybrid.embedders import HashingEmbedder  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("HYBRID_DATA", str(REPO.parent / "shared" / "data")))
CATEGORIES = ["biology", "medicine", "chemistry", "physics", "genetics", "neuro", "immunology", "oncology"]
DEFAULT_MIX = "hybrid=0.55,fts=0.25,vector=0.12,add=0.06,delete=0.02"
WRITE_KINDS = ("add", "delete")


# -- data ------------------------------------------------------------------------------------


def _year(i: int) -> int:
    return 1990 + (i * 7919) % 35


def scifact(data: Path, limit: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    folder = data / "scifact"
    corpus = folder / "corpus.jsonl"
    if not corpus.exists():
        raise SystemExit(
            f"SciFact corpus not found at {corpus}: pass --data, set HYBRID_DATA or use --corpus synthetic"
        )
    rows = []
    with corpus.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            d = json.loads(line)
            text = f"{d.get('title', '')} {d.get('text', '')}".strip() or "empty"
            rows.append(
                {
                    "id": i,
                    "doc_id": d["_id"],
                    "text": text,
                    "year": _year(i),
                    "category": CATEGORIES[i % len(CATEGORIES)],
                }
            )
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for line in fh]
    return rows, queries


def synthetic(n: int, seed: int) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(seed)
    vocab = [f"w{k}" for k in range(3_000)]
    rows = [
        {
            "id": i,
            "doc_id": f"s{i}",
            "text": " ".join(rng.choice(vocab) for _ in range(rng.randint(40, 160))),
            "year": _year(i),
            "category": CATEGORIES[i % len(CATEGORIES)],
        }
        for i in range(n)
    ]
    queries = [" ".join(rng.sample(vocab[:800], 3)) for _ in range(1_000)]
    return rows, queries


def build_table(db_path: Path, rows: list[dict[str, Any]], dim: int) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    db = hybrid.connect(db_path)
    table = db.create_table("docs", rows, embedding={"vector": ("text", HashingEmbedder(dim=dim))})
    times["create_s"] = time.perf_counter() - start
    start = time.perf_counter()
    table.create_fts_index(["text"])
    times["fts_index_s"] = time.perf_counter() - start
    start = time.perf_counter()
    table.create_vector_index("vector")
    times["vector_index_s"] = time.perf_counter() - start
    return times


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    db_path: Path,
    port: int,
    keys: str,
    log: Path,
    workers: int,
    threads: int | None = None,
    config_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    path = None if config_path is None else str(config_path.resolve())
    config = f"load_config({path!r})"
    if threads is not None:
        config = f"dataclasses.replace({config}, threads={threads})"
    code = (
        "import dataclasses; from hybrid.server import serve; from hybrid.server.config import load_config; "
        f"serve({str(db_path)!r}, host='127.0.0.1', port={port}, workers={workers}, log_level='warning', "
        f"access_log=False, config={config})"
    )
    env = {**os.environ, "HYBRID_API_KEYS": keys}
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy in time")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's workers), from /proc; [] elsewhere."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(found)


def peak_rss_mb(pid: int) -> float | None:
    """The largest resident set `pid` has had (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of `pid` and of each of its children, by process id."""
    out = {}
    for p in [pid, *children(pid)]:
        seconds = cpu_seconds(p)
        if seconds is not None:
            out[p] = seconds
    return out


# -- the clients -----------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in ("hybrid", "fts", "vector", *WRITE_KINDS):
            raise SystemExit(f"unknown request kind {kind!r} in --mix")
        mix[kind.strip()] = float(weight)
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def random_filter(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.2:
        return None
    low = rng.randint(1990, 2020)
    if roll < 0.5:
        return f"year >= {low}"
    if roll < 0.75:
        return f"category = '{rng.choice(CATEGORIES)}'"
    picked = ", ".join(f"'{c}'" for c in rng.sample(CATEGORIES, 3))
    return f"year BETWEEN {low} AND {low + rng.randint(3, 15)} AND category IN ({picked})"


class Load:
    """Shared state of the clients: the request log and the documents they added."""

    def __init__(self, args: argparse.Namespace, rows: list[dict[str, Any]], queries: list[str]) -> None:
        self.args = args
        self.rows = rows
        self.queries = queries
        self.mix = parse_mix(args.mix)
        self.kinds = list(self.mix)
        self.weights = [self.mix[k] for k in self.kinds]
        self.records: list[tuple[str, float, float, str | None]] = []  # kind, start, seconds, error
        self.server_ms: dict[str, list[float]] = defaultdict(list)  # Server-Timing per kind (measured window)
        self.next_id = 10_000_000
        self.added: list[int] = []
        self.inserted = 0
        self.deleted = 0

    def request(self, kind: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
        if kind == "add":
            count = rng.randint(1, 3)
            new = []
            for _ in range(count):
                src = rng.choice(self.rows)
                new.append({**src, "id": self.next_id, "doc_id": f"load-{self.next_id}"})
                self.added.append(self.next_id)
                self.next_id += 1
            return "rows", {"rows": new}
        if kind == "delete":
            if not self.added:
                return "rows/delete", {"where": "id = -1"}
            victim = self.added.pop(rng.randrange(len(self.added)))
            return "rows/delete", {"where": f"id = {victim}"}
        body: dict[str, Any] = {"query": rng.choice(self.queries), "query_type": kind, "limit": self.args.limit}
        where = random_filter(rng)
        if where is not None:
            body["where"] = where
        return "search", body

    async def client(self, index: int, url: str, keys: dict[str, str], start: float, stop: float) -> None:
        rng = random.Random(self.args.seed * 1_000 + index)
        headers = {"read": {"Authorization": f"Bearer {keys['read']}"}, "write": {"X-API-Key": keys["write"]}}
        await asyncio.sleep(index * self.args.ramp / max(1, self.args.clients))  # connect one by one
        async with httpx.AsyncClient(base_url=url, timeout=self.args.timeout) as http:
            while (now := time.perf_counter()) < stop:
                kind = rng.choices(self.kinds, self.weights)[0]
                path, body = self.request(kind, rng)
                role = "write" if kind in WRITE_KINDS else "read"
                error: str | None = None
                began = time.perf_counter()
                try:
                    r = await http.post(f"/v1/tables/docs/{path}", json=body, headers=headers[role])
                    if now >= start:
                        self.note_server_time(kind, r)
                    if r.status_code != 200:
                        try:
                            kind_of = r.json()["error"]["type"]
                        except (ValueError, KeyError, TypeError):
                            kind_of = "non-JSON body"
                        error = f"HTTP {r.status_code} {kind_of}"
                    elif kind in WRITE_KINDS:
                        out = r.json()
                        self.inserted += out["inserted"]
                        self.deleted += out["deleted"]
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                seconds = time.perf_counter() - began
                if now >= start:
                    self.records.append((kind, began, seconds, error))

    def note_server_time(self, kind: str, r: httpx.Response) -> None:
        """Keep how long the server held the request (its Server-Timing header, from the request's arrival)."""
        timing = r.headers.get("server-timing", "")
        match = re.search(r"dur=([0-9.]+)", timing)
        if match:
            self.server_ms[kind].append(float(match.group(1)))

    async def attacker(self, index: int, url: str, key: str, start: float, stop: float) -> None:
        """Loop the most expensive searches the server accepts (largest limit, longest query, heavy filters)."""
        rng = random.Random(self.args.seed * 7_919 + index)
        text = " ".join(rng.choice(self.rows)["text"] for _ in range(20))[: self.args.attack_chars]
        words = " ".join(re.findall(r"\w+", text)[: self.args.attack_terms])  # as many terms as the server takes
        heavy = [
            "md5(md5(md5(text) || text) || text) > 'f' OR length(repeat(text, 16)) > 1000000",
            "regexp_matches(lower(text) || upper(text), '(a|e|i|o|u)[^aeiou]{2,}(a|e|i|o|u).*z')",
            "len(range(60000)) = 60000 AND length(lpad(text, 60000, 'x')) = 60000",
            "length(repeat('0123456789', 6000)) = 60000 AND levenshtein(text, upper(text)) > 3",
        ]
        async with httpx.AsyncClient(base_url=url, timeout=self.args.timeout, headers={"X-API-Key": key}) as http:
            while time.perf_counter() < stop:
                body = {"query": words, "query_type": rng.choice(["hybrid", "fts"]), "limit": self.args.attack_limit}
                body["where"] = rng.choice(heavy)
                error: str | None = None
                began = time.perf_counter()
                try:
                    r = await http.post("/v1/tables/docs/search", json=body)
                    if time.perf_counter() >= start:
                        self.note_server_time("attack", r)
                    if r.status_code != 200:
                        try:
                            error = f"HTTP {r.status_code} {r.json()['error']['type']}"
                        except (ValueError, KeyError, TypeError):
                            error = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                if time.perf_counter() >= start:  # an attack may outlast the warm-up: count it when it ends
                    self.records.append(("attack", began, time.perf_counter() - began, error))

    async def maintenance(self, url: str, key: str, start: float, stop: float) -> None:
        """Every --optimize-every seconds, POST .../optimize with an admin key (fold new rows into the indexes)."""
        async with httpx.AsyncClient(base_url=url, timeout=self.args.timeout, headers={"X-API-Key": key}) as http:
            while True:
                await asyncio.sleep(self.args.optimize_every)
                if time.perf_counter() >= stop:
                    return
                error: str | None = None
                began = time.perf_counter()
                try:
                    r = await http.post("/v1/tables/docs/optimize")
                    if r.status_code != 200:
                        error = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                if began >= start:
                    self.records.append(("optimize", began, time.perf_counter() - began, error))


async def drive(load: Load, url: str, keys: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    start = t0 + load.args.warmup
    stop = start + load.args.duration
    tasks = [load.client(i, url, keys, start, stop) for i in range(load.args.clients)]
    tasks += [load.attacker(i, url, keys["attack"], start, stop) for i in range(load.args.attackers)]
    if load.args.optimize_every > 0:
        tasks.append(load.maintenance(url, keys["admin"], start, stop))
    await asyncio.gather(*tasks)
    return start, max(stop, time.perf_counter())


# -- reporting -------------------------------------------------------------------------------


def latency_stats(seconds: list[float], window: float) -> dict[str, float]:
    if not seconds:
        return {"count": 0}
    ms = np.asarray(seconds) * 1e3
    return {
        "count": len(seconds),
        "rps": round(len(seconds) / window, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return head.stdout.strip() + (" (with uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


LIMIT_SETTINGS = (
    "request_seconds",
    "sql_seconds",
    "sql_memory",
    "max_limit",
    "max_query_chars",
    "max_query_terms",
    "max_cost_per_key",
    "low_priority_cost",
    "low_priority_nice",
    "threads",
)


def server_side(ms: list[float]) -> dict[str, float]:
    """Percentiles of the times the server reported holding requests (Server-Timing)."""
    if not ms:
        return {"count": 0}
    a = np.asarray(ms)
    return {"count": len(ms), "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}


def server_limits(path: Path | None) -> dict[str, Any]:
    """The server's request limits (its config file's, else the defaults)."""
    from hybrid.server.config import load_config

    config = load_config(path, {})
    return {name: getattr(config, name) for name in LIMIT_SETTINGS if hasattr(config, name)}


def to_markdown(report: dict[str, Any]) -> str:
    o = report["overall"]
    lines = [
        "# Server load test",
        "",
        f"`{report['command']}`",
        "",
        f"- {report['clients']} concurrent clients for {report['duration_s']} s (after {report['warmup_s']} s of "
        f"warm-up, connecting one after another over {report.get('ramp_s', 0)} s), one keep-alive connection each; "
        f"mix `{report['mix']}`, limit {report['limit']}; "
        + (
            f"an admin client calls optimize every {report['optimize_every_s']} s"
            if report["optimize_every_s"]
            else "no optimize calls: the server's own upkeep (hybrid.Upkeep defaults) compacts and merges"
        ),
        f"- table: {report['rows_at_start']} {report['corpus']} documents, HashingEmbedder({report['dim']}) "
        f"binding, BM25 + HNSW indexes; server: `hybrid.server.serve` (uvicorn, {report['workers']} worker "
        f"process{'es' if report['workers'] > 1 else ''}) on 127.0.0.1",
        f"- machine: {report['machine']['cpu_count']} CPUs ({report['machine']['platform']}, Python "
        f"{report['machine']['python']}), load average {report['machine']['loadavg_before']} before, "
        f"{report['machine']['loadavg_after']} after; the clients run on the same machine. The machine is shared "
        "with other jobs, so figures are noisy",
        f"- commit: {report['git_commit']}; {report['date']}",
        "",
        f"**{o['rps']} requests/s, p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms, p99 {o['p99_ms']} ms, "
        f"{report['errors_total']} errors** in {o['count']} requests.",
        "",
        "| kind | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, s in report["by_kind"].items():
        if not s.get("count"):
            continue
        errs = sum(n for k, n in report["errors"].items() if k.startswith(f"{kind}: "))
        cells = [kind, s["count"], s["rps"], s["p50_ms"], s["p95_ms"], s["p99_ms"], s["max_ms"], errs]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append(
        f"| **all** | {o['count']} | {o['rps']} | {o['p50_ms']} | {o['p95_ms']} | {o['p99_ms']} | {o['max_ms']} | "
        f"{report['errors_total']} |"
    )
    lines += ["", "Errors by kind: " + (", ".join(f"{k} x{n}" for k, n in report["errors"].items()) or "none") + "."]
    if report.get("attackers"):
        outcomes = ", ".join(f"{k} x{n}" for k, n in report["attack_outcomes"].items())
        lines += [
            "",
            f"Attackers: {report['attackers']} more client(s) with their own key sent the most expensive searches "
            f"the server accepts (limit = max_limit, query = max_query_chars, heavy `where` filters); not counted "
            f"in **all** above. Their answers: {outcomes}.",
        ]
    lines += ["", f"Server peak resident memory (MB): {report.get('server_peak_rss_mb')}."]
    side = report.get("server_side_ms", {})
    if side:
        parts = [
            f"{group} p99 {s['p99_ms']} ms, max {s['max_ms']} ms ({s['count']} answers)"
            for group, s in side.items()
            if s.get("count")
        ]
        lines += [
            "",
            "Time the server held each request, from its arrival (body read) to its answer, by its "
            "`Server-Timing` header (the client's times above add connection queues and the client's own "
            f"scheduling): {'; '.join(parts)}.",
        ]
    if report.get("server_limits"):
        limits = ", ".join(f"{k} = {v}" for k, v in report["server_limits"].items())
        lines += ["", f"Server limits: {limits}."]
    c = report["consistency"]
    lines += [
        "",
        f"Consistency: {c['rows_at_start']} rows + {c['inserted']} appended - {c['deleted']} deleted = "
        f"{c['expected_rows']}; the server reports {c['rows_at_end']} ({'ok' if c['ok'] else 'MISMATCH'}), "
        f"version {c['version_at_end']}.",
        "",
        f"Server CPU time: {report['server_cpu_s']} s over the measured window "
        f"({report['server_cpu_share']} of one core; per worker: {report['worker_cpu_shares']}); load generator "
        f"(this process): {report['client_cpu_s']} s ({report['client_cpu_share']} of one core); together "
        f"{report['total_cpu_share']} of the machine's {report['machine']['cpu_count']} cores. "
        f"Table build: {report['build']}.",
        "",
    ]
    if not report.get("optimize_every_s"):
        lines += [
            f"Rows appended during the run ({c['inserted']} by the end) are searched at once beside the indexes "
            "(BM25 on the index's statistics, exact vector distances, from logs carried from version to version); "
            "the writing worker's background upkeep compacts small fragments and merges the indexes once "
            "max(1,000 rows, 1%) are unindexed or deleted, and filter results are carried from version to "
            "version by each commit's delta.",
            "",
        ]
    threads = report.get("threads")
    lines += [f"Threads per worker: {threads if threads is not None else 'the server default'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    p.add_argument("--corpus", choices=["scifact", "synthetic"], default="scifact")
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="holds scifact/ (default $HYBRID_DATA or ../shared/data)"
    )
    p.add_argument("--docs", type=int, default=None, help="at most this many documents (synthetic: default 5000)")
    p.add_argument("--dim", type=int, default=256, help="HashingEmbedder dimension")
    p.add_argument("--mix", default=DEFAULT_MIX, help=f"request kinds and weights (default {DEFAULT_MIX})")
    p.add_argument("--limit", type=int, default=10, help="results per search")
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request, seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--optimize-every", type=float, default=0.0, help="seconds between POST .../optimize calls (0: never)"
    )
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--threads", type=int, default=None, help="requests a worker runs at once (default: the server's)")
    p.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which the clients open their connections, one after another (default: 80%% of the "
        "warm-up); connections that all arrive at once pile onto one worker, which accepts every pending one",
    )
    p.add_argument(
        "--attackers",
        type=int,
        default=0,
        help="extra clients (their own read key) that send the most expensive searches the server accepts",
    )
    p.add_argument("--attack-limit", type=int, default=1000, help="the attackers' limit (the server's max_limit)")
    p.add_argument("--attack-chars", type=int, default=4000, help="the attackers' query length (max_query_chars)")
    p.add_argument("--attack-terms", type=int, default=256, help="the attackers' query words at most (max_query_terms)")
    p.add_argument(
        "--server-config", type=Path, default=None, help="the server's config file (TOML or JSON; default: none)"
    )
    p.add_argument("--out", type=Path, default=REPO / "eval" / "results", help="folder for the results")
    p.add_argument("--name", default="server_load", help="writes <out>/<name>.json and .md")
    args = p.parse_args(argv)
    if args.ramp is None:
        args.ramp = 0.8 * args.warmup

    if args.corpus == "scifact":
        rows, queries = scifact(args.data, args.docs)
    else:
        rows, queries = synthetic(args.docs or 5_000, args.seed)
    keys = {role: secrets.token_urlsafe(24) for role in ("read", "write", "admin", "attack")}
    with tempfile.TemporaryDirectory(prefix="hybrid-load-") as tmp:
        db_path = Path(tmp) / "db"
        print(f"building a table of {len(rows)} {args.corpus} documents ...", flush=True)
        build = {k: round(v, 2) for k, v in build_table(db_path, rows, args.dim).items()}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "server.log"
        keyring = ",".join(f"{key}:{'read' if role == 'attack' else role}" for role, key in keys.items())
        proc = start_server(db_path, port, keyring, log, args.workers, args.threads, args.server_config)
        try:
            wait_healthy(url, proc)
            load = Load(args, rows, queries)
            load_before = [round(x, 2) for x in os.getloadavg()]
            print(f"{args.clients} clients for {args.duration} s (+{args.warmup} s warm-up) on {url} ...", flush=True)
            cpu_start: dict[int, float] = {}
            client_start = 0.0

            async def run() -> tuple[float, float]:
                async def mark() -> None:
                    nonlocal client_start
                    await asyncio.sleep(args.warmup)
                    cpu_start.update(tree_cpu(proc.pid))
                    client_start = time.process_time()

                marker = asyncio.create_task(mark())
                window = await drive(load, url, keys)
                await marker
                return window

            start, stop = asyncio.run(run())
            cpu_end = tree_cpu(proc.pid)
            peak_rss = {pid: peak_rss_mb(pid) for pid in [proc.pid, *children(proc.pid)]}
            client_cpu = round(time.process_time() - client_start, 1)
            load_after = [round(x, 2) for x in os.getloadavg()]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['read']}"}, timeout=60) as http:
                info = http.get("/v1/tables/docs").json()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server_log = log.read_text(errors="replace")[-4000:].replace(tmp, "<tmp>").replace(str(REPO), "<repo>")

    window = stop - start
    by_kind: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    attack: Counter[str] = Counter()
    for kind, _, seconds, error in load.records:
        by_kind[kind].append(seconds)
        if kind == "attack":  # refusals are the point: counted apart from the clients' errors
            attack[error or "HTTP 200"] += 1
        elif error is not None:
            errors[f"{kind}: {error}"] += 1
    expected = len(rows) + load.inserted - load.deleted
    per_process = {pid: cpu_end[pid] - cpu_start.get(pid, 0.0) for pid in cpu_end}
    server_cpu = round(sum(per_process.values()), 1) if per_process else None
    worker_shares = [round(per_process[p] / window, 2) for p in sorted(per_process) if p != proc.pid]
    report: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, "eval/load_server.py", *(argv or sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git_commit": git_commit(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "clients": args.clients,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "ramp_s": args.ramp,
        "window_s": round(window, 2),
        "corpus": args.corpus,
        "dim": args.dim,
        "mix": args.mix,
        "limit": args.limit,
        "rows_at_start": len(rows),
        "build": build,
        "overall": latency_stats([r[2] for r in load.records if r[0] != "attack"], window),
        "by_kind": {k: latency_stats(by_kind[k], window) for k in [*load.kinds, "optimize", "attack"] if by_kind[k]},
        "attackers": args.attackers,
        "attack_outcomes": dict(attack.most_common()),
        "server_peak_rss_mb": {("main" if pid == proc.pid else f"worker {pid}"): v for pid, v in peak_rss.items()},
        "optimize_every_s": args.optimize_every,
        "server_limits": server_limits(args.server_config),
        "server_side_ms": {
            group: server_side([ms for k in kinds for ms in load.server_ms.get(k, [])])
            for group, kinds in (("normal", [k for k in load.kinds]), ("attack", ["attack"]))
        },
        "errors": dict(errors.most_common()),
        "errors_total": sum(errors.values()),
        "consistency": {
            "rows_at_start": len(rows),
            "inserted": load.inserted,
            "deleted": load.deleted,
            "expected_rows": expected,
            "rows_at_end": info.get("num_rows"),
            "version_at_end": info.get("version"),
            "ok": info.get("num_rows") == expected,
        },
        "workers": args.workers,
        "threads": args.threads,
        "server_cpu_s": server_cpu,
        "server_cpu_share": None if server_cpu is None else round(server_cpu / window, 2),
        "worker_cpu_shares": worker_shares or None,
        "client_cpu_s": client_cpu,
        "client_cpu_share": round(client_cpu / window, 2),
        "total_cpu_share": None if server_cpu is None else round((server_cpu + client_cpu) / window, 2),
        "server_log_tail": server_log,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.out / f"{args.name}.md").write_text(markdown)
    print(markdown)
    return 0 if report["errors_total"] == 0 and report["consistency"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
