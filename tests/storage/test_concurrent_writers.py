"""Several writers on one table: acknowledged writes are never lost, conflicts are clean.

The first tests force a race deterministically: writer B reads the table,
then writer A commits, then B commits on top of what it read (A's write runs
from a hook on B's call to `transactions.commit`, i.e. after B read its base
and wrote its files). Writes of the same row must raise CommitConflictError
and leave the table unchanged; writes of different rows and appends commute.

The last test runs four processes at once (two appending, two updating /
deleting / merge-inserting) and then checks every version against what each
writer was told (its `Commit`s and its `CommitConflictError`s).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

import hybrid
from hybrid.storage import transactions as tx

TABLE = "shared"

# -- deterministic races ----------------------------------------------------------------------


def rows(ids: list[str], val: int = 0, tok: str = "init") -> list[dict[str, Any]]:
    return [{"id": i, "val": val, "tok": tok} for i in ids]


def content(table: hybrid.Table) -> dict[str, tuple[int, str]]:
    """id -> (val, tok), asserting no id appears twice."""
    data = table.to_arrow().to_pydict()
    dupes = [i for i, n in Counter(data["id"]).items() if n > 1]
    assert not dupes, f"version {table.version}: ids appear more than once: {dupes[:10]}"
    return {i: (v, t) for i, v, t in zip(data["id"], data["val"], data["tok"], strict=True)}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[hybrid.Table, hybrid.Table]:
    """Two independent Table objects (as in two processes) on one table at version 1."""
    db = hybrid.connect(tmp_path / "db")
    db.create_table(TABLE, rows([f"r{k}" for k in range(10)]))
    return hybrid.connect(tmp_path / "db").open_table(TABLE), hybrid.connect(tmp_path / "db").open_table(TABLE)


def after_read(monkeypatch: pytest.MonkeyPatch, other_write: Callable[[], hybrid.Commit]) -> list[Any]:
    """Make the next write commit only after `other_write` has committed on top of the base it read.

    Returns a list that receives (the racing writer's base version, the other write's Commit).
    """
    original = tx.commit
    seen: list[Any] = []

    def commit_after_other(log: Any, base: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(tx, "commit", original)
        seen.append(base.version)
        seen.append(other_write())
        return original(log, base, *args, **kwargs)

    monkeypatch.setattr(tx, "commit", commit_after_other)
    return seen


def assert_raced(seen: list[Any], base_version: int) -> None:
    assert len(seen) == 2, "the racing write never reached commit"
    assert seen[0] == base_version, "the racing write did not read the old version"
    assert seen[1].version == base_version + 1, "the other write did not commit in between"


def assert_unchanged_after_conflict(table: hybrid.Table, before: dict[str, Any], versions: int, tok: str) -> None:
    assert [v.version for v in table.versions()] == list(range(1, versions + 1)), "a conflicting write added a version"
    assert content(table) == before
    for v in range(1, versions + 1):
        toks = table.checkout(v).to_arrow(["tok"]).column("tok").to_pylist()
        assert tok not in toks, f"the conflicting write's value is visible in version {v}"


@pytest.mark.parametrize(
    "first, second",
    [
        ("update", "update"),
        ("delete", "update"),
        ("update", "merge_insert"),
        ("delete", "merge_insert"),
    ],
)
def test_writes_of_the_same_row_conflict_and_change_nothing(
    pair: tuple[hybrid.Table, hybrid.Table], monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    a, b = pair
    assert a.version == b.version == 1

    def write_a() -> hybrid.Commit:
        if first == "update":
            return a.update("id = 'r3'", values={"val": 1, "tok": "A"})
        return a.delete("id = 'r3'")

    seen = after_read(monkeypatch, write_a)
    with pytest.raises(hybrid.CommitConflictError):
        if second == "update":
            b.update("id = 'r3'", values={"val": 2, "tok": "B"})
        else:
            b.merge_insert(rows(["r3"], 2, "B"), on="id")
    assert_raced(seen, 1)
    expected = {f"r{k}": (0, "init") for k in range(10)}
    if first == "update":
        expected["r3"] = (1, "A")
    else:
        del expected["r3"]
    assert_unchanged_after_conflict(b, expected, 2, "B")
    # The conflict left the table writable: retried on top of A's version, B's write goes through.
    if first == "update" and second == "update":
        retry = b.update("id = 'r3'", values={"val": 2, "tok": "B"})
    else:
        retry = b.merge_insert(rows(["r3"], 2, "B"), on="id")
    assert retry.version == 3
    assert content(b)["r3"] == (2, "B")


@pytest.mark.parametrize("second", ["update_other_row", "append", "delete_other_row"])
@pytest.mark.parametrize("first", ["update", "append"])
def test_writes_of_different_rows_and_appends_commute(
    pair: tuple[hybrid.Table, hybrid.Table], monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    a, b = pair
    expected = {f"r{k}": (0, "init") for k in range(10)}

    def write_a() -> hybrid.Commit:
        if first == "update":
            return a.update("id = 'r3'", values={"val": 1, "tok": "A"})
        return a.add(rows(["a0", "a1"], 1, "A"))

    if first == "update":
        expected["r3"] = (1, "A")
    else:
        expected.update({"a0": (1, "A"), "a1": (1, "A")})

    seen = after_read(monkeypatch, write_a)
    if second == "update_other_row":
        commit = b.update("id = 'r7'", values={"val": 2, "tok": "B"})
        assert (commit.updated, commit.inserted, commit.deleted) == (1, 0, 0)
        expected["r7"] = (2, "B")
    elif second == "append":
        commit = b.add(rows(["b0", "b1", "b2"], 2, "B"))
        assert commit.inserted == 3
        expected.update({"b0": (2, "B"), "b1": (2, "B"), "b2": (2, "B")})
    else:
        commit = b.delete("id = 'r7'")
        assert commit.deleted == 1
        del expected["r7"]
    assert_raced(seen, 1)
    assert commit.version == 3
    assert [v.version for v in b.versions()] == [1, 2, 3]
    assert content(b) == expected
    assert content(a) == expected
    assert b.checkout(2).count_rows() == 10 + (2 if first == "append" else 0)


def test_deleting_the_same_row_twice_is_harmless(
    pair: tuple[hybrid.Table, hybrid.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    seen = after_read(monkeypatch, lambda: a.delete("id = 'r3'"))
    commit = b.delete("id = 'r3' OR id = 'r4'")
    assert_raced(seen, 1)
    assert seen[1].deleted == 1
    assert commit.deleted == 1  # r4; r3 was already gone
    assert sorted(content(b)) == sorted(f"r{k}" for k in range(10) if k not in (3, 4))


# -- four processes at once -------------------------------------------------------------------

BASE_ROWS = 10


def writer_main(db_path: str, role: str, w: int, n_ops: int, seed: int, result_path: str, barrier: Any) -> None:
    """Process entry point: run `n_ops` writes, record each Commit / CommitConflictError to `result_path`.

    Any other exception is recorded as "error" with exit code 1 (the parent fails).
    """
    records: list[dict[str, Any]] = []
    try:
        _spy_on_base_versions()
        # Versions are matched write by write below, so no background upkeep commits here
        # (upkeep beside other writers: tests/index/test_incremental.py).
        t = hybrid.connect(db_path, upkeep=None).open_table(TABLE)
        t.count_rows("id = 'warm-up'")
        barrier.wait(timeout=120)
        rng = random.Random(seed)
        for n in range(n_ops):
            if role == "append":
                time.sleep(rng.uniform(0, 0.04))  # appends are quick: spread them over the mutators' run
            records.append(_one_write(t, role, w, n, rng))
            records[-1]["t"] = time.monotonic()
    except BaseException:  # noqa: BLE001 - reported to the parent
        _dump(result_path, {"records": records, "error": traceback.format_exc()})
        os._exit(1)
    _dump(result_path, {"records": records, "error": None})


def _dump(path: str, payload: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)


def _spy_on_base_versions() -> None:
    """Remember, per Table object, the version each write read as its base."""
    original = hybrid.Table._write_base

    def spy(self: hybrid.Table, operation: str) -> Any:
        manifest = original(self, operation)
        self._test_base_version = manifest.version  # type: ignore[attr-defined]
        return manifest

    hybrid.Table._write_base = spy  # type: ignore[method-assign]


def _one_write(t: hybrid.Table, role: str, w: int, n: int, rng: random.Random) -> dict[str, Any]:
    tok = f"w{w}-{n}"  # unique per attempted write: a failed write's tok must never be seen
    val = w * 1_000_000 + n
    rec: dict[str, Any] = {"writer": w, "tok": tok, "val": val}
    x = f"b{rng.randrange(BASE_ROWS):02d}"
    if role == "append":
        rec.update(op="append", ids=[f"a{w}-{n}-{j}" for j in range(rng.randint(1, 8))])
        write: Callable[[], hybrid.Commit] = lambda: t.add(rows(rec["ids"], val, tok))  # noqa: E731
    else:
        r = rng.random()
        if r < 0.36:
            rec.update(op="update", id=x)
            write = lambda: t.update(f"id = '{x}'", values={"val": val, "tok": tok})  # noqa: E731
        elif r < 0.56:
            rec.update(op="delete", id=x)
            write = lambda: t.delete(f"id = '{x}'")  # noqa: E731
        elif r < 0.80:
            rec.update(op="merge_insert", id=x)
            write = lambda: t.merge_insert(rows([x], val, tok), on="id")  # noqa: E731
        elif r < 0.87:
            rec.update(op="compact")
            write = t.compact
        else:
            appended = t.to_arrow(["id"], where="id LIKE 'a%'").column("id").to_pylist()
            y = rng.choice(appended) if appended else x
            rec.update(op="delete", id=y)
            write = lambda: t.delete(f"id = '{y}'")  # noqa: E731
    try:
        rec["commit"] = asdict(write())
    except hybrid.CommitConflictError as exc:
        rec["conflict"] = str(exc)
    rec["base"] = getattr(t, "_test_base_version", None)
    return rec


def run_writers(tmp_path: Path, n_ops: int, seed: int) -> tuple[hybrid.Table, list[dict[str, Any]]]:
    db_path = tmp_path / "db"
    hybrid.connect(db_path).create_table(TABLE, rows([f"b{k:02d}" for k in range(BASE_ROWS)]))
    roles = ["append", "append", "mutate", "mutate"]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(roles))
    procs = []
    for w, role in enumerate(roles):
        out = tmp_path / f"writer{w}.json"
        p = ctx.Process(target=writer_main, args=(str(db_path), role, w, n_ops, seed * 100 + w, str(out), barrier))
        p.start()
        procs.append((p, out))
    try:
        for p, _ in procs:
            p.join(timeout=300)
    finally:
        for p, _ in procs:
            if p.is_alive():
                p.kill()
                p.join()
    records: list[dict[str, Any]] = []
    failures = []
    for w, (p, out) in enumerate(procs):
        result: dict[str, Any] = (
            json.loads(out.read_text()) if out.exists() else {"records": [], "error": "no result file (hung?)"}
        )
        if p.exitcode != 0 or result["error"]:
            failures.append(f"writer {w} ({roles[w]}) exit code {p.exitcode}:\n{result['error']}")
        records.extend(result["records"])
    assert not failures, "\n\n".join(failures)
    return hybrid.connect(db_path).open_table(TABLE), records


def check_concurrent_history(table: hybrid.Table, records: list[dict[str, Any]]) -> None:
    failed = [r for r in records if "conflict" in r]
    # A compaction with nothing to merge returns the version it read instead of a new one.
    noop = [r for r in records if r["op"] == "compact" and "commit" in r and r["commit"]["version"] == r["base"]]
    acked = [r for r in records if "commit" in r and r not in noop]
    assert len(acked) + len(failed) + len(noop) == len(records)
    for w in sorted({r["writer"] for r in records}):
        assert any(r["writer"] == w for r in acked), f"writer {w} never got a write through"

    # Every published version was acknowledged to exactly one writer, and every version reads.
    newest = table.version
    by_version = {r["commit"]["version"]: r for r in acked}
    assert len(by_version) == len(acked), "two writers were told they created the same version"
    assert sorted(by_version) == list(range(2, newest + 1)), "versions and acknowledged writes do not match"
    assert [v.version for v in table.versions()] == list(range(1, newest + 1))
    snapshots = {v: content(table.checkout(v)) for v in range(1, newest + 1)}
    all_toks = {tok for snap in snapshots.values() for _, tok in snap.values()}

    for r in failed:
        assert r["tok"] not in all_toks, f"a write that raised CommitConflictError is visible: {r}"
        assert not (set(r.get("ids", ())) & {i for s in snapshots.values() for i in s}), f"conflicted append: {r}"

    # Each version is exactly its predecessor with the one acknowledged write that created it applied.
    for v in range(2, newest + 1):
        r, want = by_version[v], dict(snapshots[v - 1])
        c = r["commit"]
        if r["op"] == "append":
            want.update({i: (r["val"], r["tok"]) for i in r["ids"]})
        elif r["op"] in ("update", "merge_insert") and c["updated"] + c["inserted"]:
            want[r["id"]] = (r["val"], r["tok"])
        elif r["op"] == "delete" and c["deleted"]:
            want.pop(r["id"], None)
        assert snapshots[v] == want, f"version {v} is not version {v - 1} plus {r}"

    base_events: dict[str, list[tuple[int, tuple[int, str] | None]]] = {}
    deleted_appends: set[str] = set()
    for r in acked:
        c = r["commit"]
        v = c["version"]
        snap, prev = snapshots[v], snapshots[v - 1]
        assert c["operation"] == r["op"], r
        if r["op"] == "append":
            assert c["inserted"] == len(r["ids"]), r
            assert all(snap.get(i) == (r["val"], r["tok"]) for i in r["ids"]), f"appended rows missing in {v}: {r}"
            continue
        if r["op"] == "compact":
            assert snap == prev, f"compaction in version {v} changed the content"
            continue
        x = r["id"]
        if r["op"] == "update":
            assert (c["inserted"], c["deleted"]) == (0, 0) and c["updated"] in (0, 1), r
            if c["updated"]:
                assert snap.get(x) == (r["val"], r["tok"]), f"acknowledged update not visible in {v}: {r}"
                base_events.setdefault(x, []).append((v, (r["val"], r["tok"])))
            else:
                assert r["tok"] not in all_toks, r
        elif r["op"] == "merge_insert":
            assert c["inserted"] + c["updated"] == 1 and c["deleted"] == 0, r
            assert snap.get(x) == (r["val"], r["tok"]), f"acknowledged merge_insert not visible in {v}: {r}"
            base_events.setdefault(x, []).append((v, (r["val"], r["tok"])))
        else:
            assert c["deleted"] in (0, 1) and (c["inserted"], c["updated"]) == (0, 0), r
            if c["deleted"]:
                assert x in prev and x not in snap, f"acknowledged delete of {x} did not remove it in {v}: {r}"
                if x.startswith("a"):
                    deleted_appends.add(x)
                else:
                    base_events.setdefault(x, []).append((v, None))
            elif x in snap and x in snapshots[r["base"]]:
                # Nothing deleted although the row was live when the delete read the table and is live
                # after it: fine only if a concurrent delete removed it and a merge_insert re-inserted it.
                between = [o for o in acked if o.get("id") == x and r["base"] < o["commit"]["version"] < v]
                reinserted = any(o["op"] == "merge_insert" and o["commit"]["inserted"] for o in between)
                assert reinserted, (
                    f"acknowledged delete of {x} in version {v} (read version {r['base']}) was lost: {x} is live "
                    f"before and after it; writes of {x} in between: {[o['commit'] for o in between]}"
                )

    # The newest version: acknowledged appends present once (unless deleted), base rows as last written.
    final = snapshots[newest]
    expected: dict[str, tuple[int, str]] = {f"b{k:02d}": (0, "init") for k in range(BASE_ROWS)}
    for x, events in base_events.items():
        _, last = max(events, key=lambda e: e[0])
        if last is None:
            expected.pop(x, None)
        else:
            expected[x] = last
    for r in acked:
        if r["op"] == "append":
            expected.update({i: (r["val"], r["tok"]) for i in r["ids"] if i not in deleted_appends})
    assert final == expected
    assert table.count_rows() == len(expected)


def test_four_writer_processes(tmp_path: Path) -> None:
    table, records = run_writers(tmp_path, n_ops=60, seed=1)
    check_concurrent_history(table, records)


@pytest.mark.slow
def test_four_writer_processes_stress(tmp_path: Path) -> None:
    for round_ in range(3):
        table, records = run_writers(tmp_path / f"round{round_}", n_ops=120, seed=10 + round_)
        check_concurrent_history(table, records)


# -- a lost delete (see the docstring) ---------------------------------------------------------


def test_delete_of_a_concurrently_updated_row_is_not_lost(
    pair: tuple[hybrid.Table, hybrid.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B deletes r3 on top of a version where r3 is live, but A updated r3 in between.

    An acknowledged delete must not leave r3 behind: either it conflicts (and
    changes nothing) or r3 is gone afterwards. Silently keeping A's row while
    reporting success loses B's delete.
    """
    a, b = pair
    seen = after_read(monkeypatch, lambda: a.update("id = 'r3'", values={"val": 1, "tok": "A"}))
    try:
        commit = b.delete("id = 'r3'")
    except hybrid.CommitConflictError:
        assert_raced(seen, 1)
        assert content(b)["r3"] == (1, "A")
        assert b.version == 2
        return
    assert_raced(seen, 1)
    assert "r3" not in content(b), f"acknowledged delete {commit} of r3 was lost: r3 = {content(b)['r3']}"
