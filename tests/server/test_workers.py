"""Several worker processes over one database folder: ``hybrid serve --workers 2`` as a real process.

Which worker answered a request is read from Linux's socket tables (the worker holding the
server end of the client's connection), so the tests can prove that a row written through
one worker is found through the other, immediately after the write's response.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import hybrid
from tests.server.conftest import ADMIN, auth, docs_rows, make_table

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to tell workers apart")

REPO = Path(__file__).resolve().parents[2]
KEYS = f"{ADMIN}:admin"
SLOW_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A ``hybrid serve`` process: its URL, port, database (folder or object-store URI) and process."""

    url: str
    port: int
    db: Path | str
    proc: subprocess.Popen[bytes]

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(ADMIN), timeout=timeout)

    def workers(self) -> set[int]:
        """The worker processes (the spawned children of the serve process)."""
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid and b"spawn_main" in cmdline:
                found.add(int(entry))
        return found

    def served_by(self, response: httpx.Response) -> int:
        """The worker holding the server end of the connection `response` came on (kept alive)."""
        client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            local, remote = cols[1], cols[2]
            if int(local.split(":")[1], 16) == self.port and int(remote.split(":")[1], 16) == client_port:
                inode = cols[9]
        assert inode is not None, "the connection is not in /proc/net/tcp"
        for pid in self.workers() | {self.proc.pid}:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        raise AssertionError("no worker holds the connection")


@contextmanager
def serving(db: Path | str, workers: int, *extra: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Run ``hybrid serve --workers N`` on a free loopback port until the block ends (then SIGTERM)."""
    if isinstance(db, Path):
        db.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "hybrid.cli", "serve", "--db", str(db), "--port", str(port)]
    command += ["--workers", str(workers), *extra]
    environment = {**os.environ, "HYBRID_API_KEYS": KEYS, **(env or {})}
    proc = subprocess.Popen(command, env=environment, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, db, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode(errors="replace")
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(f"{server.url}/v1/ready", timeout=2).status_code == 200 and len(server.workers()) >= (
                    workers if workers > 1 else 0
                ):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("workers") / "db", 2) as server:
        yield server


def clients_on_both(server: Server, stack: ExitStack, per_worker: int = 2) -> dict[int, list[httpx.Client]]:
    """Open connections until each of the two workers holds `per_worker` of them."""
    by_worker: dict[int, list[httpx.Client]] = {}
    for _ in range(60):
        client = stack.enter_context(server.client())
        response = client.get("/v1/ready")
        assert response.status_code == 200
        by_worker.setdefault(server.served_by(response), []).append(client)
        if len(by_worker) == 2 and all(len(c) >= per_worker for c in by_worker.values()):
            return by_worker
    raise AssertionError(f"60 connections did not reach two workers: {[len(c) for c in by_worker.values()]}")


def test_rows_written_through_one_worker_are_found_through_every_worker_at_once(two: Server) -> None:
    assert len(two.workers()) == 2
    with ExitStack() as stack:
        by_worker = clients_on_both(two, stack)
        admin = next(iter(by_worker.values()))[0]
        make_table(admin, "fresh", n=40)
        clients = [c for group in by_worker.values() for c in group]
        pairs: Counter[tuple[int, int]] = Counter()
        for i in range(24):
            writer = clients[i % len(clients)]
            row = {"id": 10_000 + i, "text": f"freshword{i} arrives", "topic": "new", "year": 2024}
            w = writer.post("/v1/tables/fresh/rows", json={"rows": [row]})
            assert w.status_code == 200, w.text
            wrote_on, version = two.served_by(w), w.json()["version"]
            for reader in clients:  # every search starts after the write's response
                body = {"query": f"freshword{i}", "query_type": "fts", "limit": 3}
                s = reader.post("/v1/tables/fresh/search", json=body)
                assert s.status_code == 200, s.text
                out = s.json()
                assert out["version"] >= version, (out["version"], version)
                assert [h["id"] for h in out["results"]] == [10_000 + i], (i, out["results"])
                pairs[(wrote_on, two.served_by(s))] += 1
    a, b = sorted(two.workers())
    assert pairs[(a, b)] > 0 and pairs[(b, a)] > 0, pairs  # written on one, found on the other, both ways


def test_concurrent_writes_through_both_workers_all_commit(two: Server) -> None:
    with two.client() as admin:
        make_table(admin, "busy", n=50)
    statuses: Counter[int] = Counter()
    inserted: list[int] = []
    workers: Counter[int] = Counter()
    lock = threading.Lock()

    def writer(k: int) -> None:
        with ExitStack() as stack:
            client = stack.enter_context(two.client())
            for j in range(12):
                first = 1_000 + k * 100 + j * 3
                r = client.post("/v1/tables/busy/rows", json={"rows": docs_rows(range(first, first + 3))})
                s = client.post("/v1/tables/busy/search", json={"query": "cats", "where": "year >= 2005", "limit": 5})
                with lock:
                    statuses[r.status_code] += 1
                    statuses[s.status_code] += 1
                    if r.status_code == 200:
                        inserted.append(r.json()["inserted"])
                        workers[two.served_by(r)] += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(statuses) == {200}, statuses
    for _ in range(4):  # new connections, whichever worker takes them
        with two.client() as client:
            info = client.get("/v1/tables/busy").json()
        assert info["num_rows"] == 50 + sum(inserted) == 50 + 6 * 12 * 3
    assert len(workers) == 2, workers  # the writes really went through both processes


def test_a_table_dropped_and_created_again_elsewhere_is_read_afresh(two: Server) -> None:
    with ExitStack() as stack:
        by_worker = clients_on_both(two, stack, per_worker=1)
        (first,), (second,) = ([group[0]] for group in by_worker.values())
        body = {"query": "document", "query_type": "vector", "limit": 100}
        make_table(first, "again", n=10, indexes=False)
        assert sorted(h["id"] for h in second.post("/v1/tables/again/search", json=body).json()["results"]) == list(
            range(10)
        )
        assert first.delete("/v1/tables/again").status_code == 200  # the second worker does not look in between
        r = first.post(
            "/v1/tables",
            json={
                "name": "again",
                "rows": docs_rows(range(500, 510)),
                "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": 32}}},
            },
        )
        assert r.status_code == 201 and r.json()["version"] == 1
        out = second.post("/v1/tables/again/search", json=body)
        assert out.status_code == 200, out.text
        assert sorted(h["id"] for h in out.json()["results"]) == list(range(500, 510))


def test_each_worker_is_ready_and_health_needs_no_key(two: Server) -> None:
    seen = set()
    for _ in range(30):
        with httpx.Client(base_url=two.url, timeout=10) as anonymous:  # a new connection each time
            r = anonymous.get("/v1/ready")
            assert r.status_code == 200 and r.json() == {"status": "ready", "version": hybrid.__version__}
            seen.add(two.served_by(r))
            assert anonymous.get("/v1/tables").status_code == 401
        if len(seen) == 2:
            break
    assert seen == two.workers()


# -- SIGTERM during a write ------------------------------------------------------------------------

SLOW_MODULE = f'''
import os, time
from pathlib import Path
from hybrid.embedders.hashing import HashingEmbedder

class SlowEmbedder(HashingEmbedder):
    """Takes {SLOW_SECONDS} s for texts holding the word "slowly", after touching $SLOW_EMBED_MARK."""

    def _encode(self, texts, kind):
        if any("slowly" in t for t in texts):
            Path(os.environ["SLOW_EMBED_MARK"]).touch()
            time.sleep({SLOW_SECONDS})
        return super()._encode(texts, kind)
'''


def slow_plugin(folder: Path) -> Path:
    """A package folder registering the embedder ``slow`` through the ``hybrid.embedders`` entry points."""
    folder.mkdir()
    (folder / "slowembed.py").write_text(SLOW_MODULE)
    info = folder / "slowembed-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slowembed\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hybrid.embedders]\nslow = slowembed:SlowEmbedder\n")
    return folder


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_write_in_flight_commit_and_refuses_later_ones(tmp_path: Path, workers: int) -> None:
    plugin = slow_plugin(tmp_path / "plugin")
    mark = tmp_path / "embedding-started"
    config = tmp_path / "server.json"
    config.write_text(json.dumps({"embedders": ["hashing", "slow"]}))
    env = {"PYTHONPATH": os.pathsep.join([str(plugin), str(REPO)]), "SLOW_EMBED_MARK": str(mark)}
    db = tmp_path / "db"
    with serving(db, workers, "--config", str(config), env=env) as server:
        with server.client() as admin:
            rows = docs_rows(range(20))
            binding = {"vector": {"source": "text", "embedder": "slow", "config": {"dim": 16}}}
            r = admin.post("/v1/tables", json={"name": "slow", "rows": rows, "embedding": binding})
            assert r.status_code == 201, r.text
        outcome: dict[str, Any] = {}

        def slow_write() -> None:
            with server.client() as client:
                row = {"id": 777, "text": "written slowly", "topic": "cats", "year": 2020}
                outcome["response"] = client.post("/v1/tables/slow/rows", json={"rows": [row]})

        thread = threading.Thread(target=slow_write)
        thread.start()
        deadline = time.monotonic() + 20
        while not mark.exists():  # the write is inside the embedder: in flight
            assert time.monotonic() < deadline and thread.is_alive(), "the slow write did not start"
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        late: httpx.Response | None = None
        try:  # a write sent after SIGTERM is not taken (or, if it is, it runs whole)
            with server.client(timeout=SLOW_SECONDS + 5) as client:
                late = client.post("/v1/tables/slow/rows", json={"rows": docs_rows(range(888, 889))})
        except httpx.TransportError:  # refused, or reset unanswered: never taken
            pass
        thread.join(timeout=30)
        # one worker: uvicorn re-raises the SIGTERM after its graceful shutdown; several: the parent exits 0
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        stopped = time.monotonic() - signalled
    response = outcome["response"]
    assert response.status_code == 200, response.text
    late_taken = late is not None and late.status_code == 200  # the other worker may still take it, even first
    assert response.json()["inserted"] == 1 and response.json()["version"] in ({2, 3} if late_taken else {2})
    assert stopped < SLOW_SECONDS + 10
    table = hybrid.connect(db).open_table("slow")
    assert table.count_rows("id = 777") == 1
    assert table.count_rows("id = 888") == (1 if late_taken else 0)
    assert late is None or late.status_code in (200, 503), late.text


# -- settings and defaults, in this process ------------------------------------------------------------


def test_workers_get_the_settings_as_digests_and_the_default_count_follows_the_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybrid.server import ConfigError, serve
    from hybrid.server.config import to_json
    from hybrid.server.serving import DB_ENV, MAX_DEFAULT_WORKERS, SETTINGS_ENV, default_workers, worker_app
    from tests.server.conftest import WRITER, make_config

    assert default_workers() == max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))
    config = make_config(max_limit=7)
    assert ADMIN not in to_json(config) and WRITER not in to_json(config)
    monkeypatch.setenv(DB_ENV, str(tmp_path / "db"))
    monkeypatch.setenv(SETTINGS_ENV, to_json(config))
    app = worker_app()
    assert app.state.config == config and app.state.keyring.role_of(WRITER) == "write"
    monkeypatch.delenv(SETTINGS_ENV)
    with pytest.raises(ConfigError, match=SETTINGS_ENV):
        worker_app()
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="workers"):
            serve(tmp_path, config=config, workers=bad)
