#!/usr/bin/env python
"""Integrity: does `hybrid check` find every damaged byte, and what do checksums cost?

1. **Detection.** A small table with one file of every kind a commit writes (manifest,
   fragment page, data, row-id and deletion files, and the files of a vector, a
   full-text and a scalar index). For each kind, ``--positions`` byte positions of one
   file are sampled (every position of a smaller file); at each, one byte is
   flipped (xor with a random non-zero byte), ``Table.check(all_versions=True)`` runs
   on a freshly opened table, and the byte is put back. Reported: positions tried and
   detected per kind (target 100%). For ``--read-sample`` of those positions the
   damaged table is also read and searched through the public API: every one must
   raise ``CorruptionError`` or return exactly the rows of the undamaged table
   (a flip in bytes a read never touches), never other rows.
2. **Cost.** The same workload (``--appends`` single-row appends, then ``--queries``
   hybrid searches) run by this checkout and by ``--baseline`` (a git revision
   before checksums, checked out into a scratch worktree), alternating
   ``--rounds`` times in fresh processes. Reported: medians of append throughput and
   query p50 per side and their ratios (targets: appends >= 0.95x, query p50 <= 1.02x).

Results go to ``eval/results/integrity.json`` and ``.md``::

    python eval/integrity.py [--positions 1000] [--baseline ae7963d~1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import (  # noqa: E402
    REPO,
    add_output_args,
    grid,
    machine_info,
    md_intro,
    md_machine,
    md_targets,
    median,
    print_outcome,
    run_and_report,
    scratch_dir,
)

import hybrid  # noqa: E402
from hybrid.errors import CorruptionError  # noqa: E402
from hybrid.storage import pages  # noqa: E402

DIM = 16
KINDS = {
    "manifest": "_versions/*.json",
    "page": "_pages/*.json",
    "data": "data/*.arrow",
    "rowids": "rowids/*.arrow",
    "deletions": "deletions/*.arrow",
    "index: hnsw graph": "indexes/*/hnsw.bin",
    "index: row ids": "indexes/*/rowids.npy",
    "index: tantivy postings": "indexes/*/tantivy/*.idx",
    "index: tantivy store": "indexes/*/tantivy/*.store",
    "index: tantivy meta": "indexes/*/tantivy/meta.json",
    "index: scalar bitmaps": "indexes/*/bitmaps.bin",
}


def rows(start: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start)
    return [
        {
            "id": i,
            "cat": f"c{i % 5}",
            "text": f"document {i} on topic{i % 11} and theme{i % 3}",
            "v": rng.standard_normal(DIM).astype("float32").tolist(),
        }
        for i in range(start, start + n)
    ]


def build(root: Path) -> hybrid.Table:
    """A table holding one file of each kind; the newest version needs all of them."""
    pages_before = pages.INLINE_FRAGMENTS
    pages.INLINE_FRAGMENTS = 2  # a page after a few appends, as a long-lived table has
    try:
        t = hybrid.connect(root, upkeep=None).create_table("docs", rows(0, 400))
        t.delete("id % 10 = 0")
        t.compact()  # one fragment with a row-id file
        for i in range(4):
            t.add(rows(1_000 + i * 5, 5))
        t.delete("id = 1001")  # a deletion file on an appended fragment
        t.create_fts_index(["text"])
        t.create_vector_index("v")
        t.create_scalar_index("cat")
    finally:
        pages.INLINE_FRAGMENTS = pages_before
    return t


def newest_files(t: hybrid.Table) -> set[str]:
    """Every file the newest version reads (so a damaged one must show on reads too)."""
    m = t.snapshot().manifest
    out = {f"_versions/{t.version}.json", *m.page_paths(), *(p for f in m.fragments for p in f.file_paths())}
    for entry in m.indexes:
        out.update(f"{entry['path']}/{name}" for name in entry["checksums"])
    return out


def fresh(t: hybrid.Table) -> hybrid.Table:
    pages.clear_cache()
    return hybrid.connect(t.path.parent, upkeep=None).open_table(t.name)


def answers(t: hybrid.Table) -> Any:
    """Everything the read path can show: rows, a text, a vector, a hybrid and a filtered search."""
    q = np.ones(DIM, dtype=np.float32)
    return (
        sorted(map(json.dumps, t.to_arrow(["id", "cat", "text"]).to_pylist())),
        [r["id"] for r in t.search("topic3 theme1").limit(10).to_list()],
        [r["id"] for r in t.search(q, vector_column="v").limit(10).to_list()],
        [r["id"] for r in t.search("topic5", query_type="hybrid").vector(q).limit(10).to_list()],
        [r["id"] for r in t.search(q, vector_column="v").where("cat = 'c2'").limit(10).to_list()],
    )


def detection(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    if args.positions == 0:
        return {}
    t = build(scratch / "detect")
    truth = answers(fresh(t))
    needed = newest_files(t)
    rng = random.Random(args.seed)
    out: dict[str, Any] = {}
    for kind, pattern in KINDS.items():
        found = [p for p in sorted(t.path.glob(pattern)) if p.relative_to(t.path).as_posix() in needed]
        if not found:
            out[kind] = {"error": f"no file of the newest version matches {pattern}"}
            continue
        path = found[0]
        original = path.read_bytes()
        positions = rng.sample(range(len(original)), min(args.positions, len(original)))
        reads = set(rng.sample(positions, min(args.read_sample, len(positions))))
        detected = raised = same = wrong = 0
        for at in positions:
            damaged = bytearray(original)
            damaged[at] ^= rng.randrange(1, 256)
            path.write_bytes(bytes(damaged))
            try:
                detected += not fresh(t).check(all_versions=True).ok
                if at in reads:
                    try:
                        got = answers(fresh(t))
                    except CorruptionError:
                        raised += 1
                    else:
                        same += got == truth
                        wrong += got != truth
            finally:
                path.write_bytes(original)
        out[kind] = {
            "file_bytes": len(original),
            "positions": len(positions),
            "detected": detected,
            "detected_share": detected / len(positions),
            "reads": len(reads),
            "read_raised": raised,
            "read_same_rows": same,
            "read_wrong_rows": wrong,
        }
    assert fresh(t).check(all_versions=True).ok, "the table was not put back whole"
    return out


WORKLOAD = r"""
import json, sys, time, tempfile, statistics
import numpy as np, hybrid
n_app, n_q, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
words = [f"w{i}" for i in range(2000)]
def row(i):
    return {"id": i, "text": " ".join(rng.choice(words, 12)), "v": rng.standard_normal(64).astype("float32").tolist()}
t = hybrid.connect(tempfile.mkdtemp(dir=sys.argv[4]), upkeep=None).create_table("docs", [row(i) for i in range(20000)])
t.create_fts_index(["text"]); t.create_vector_index("v")
start = time.perf_counter()
for i in range(n_app):
    t.add([row(100000 + i)])
appends_per_s = n_app / (time.perf_counter() - start)
t.optimize(); t.compact()
qs = [(" ".join(rng.choice(words, 2)), rng.standard_normal(64).astype("float32")) for _ in range(n_q)]
for text, v in qs[:50]:
    t.search(text, query_type="hybrid").vector(v).limit(10).to_list()
lat = []
for text, v in qs:
    a = time.perf_counter(); t.search(text, query_type="hybrid").vector(v).limit(10).to_list()
    lat.append(time.perf_counter() - a)
print(json.dumps({"appends_per_s": appends_per_s, "query_p50_ms": statistics.median(lat) * 1e3}))
"""


def cost(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    base = scratch / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=REPO, check=True)
    try:
        sides: dict[str, list[dict[str, float]]] = {"checksums": [], "baseline": []}
        for r in range(args.rounds):
            for side, src in (
                (("baseline", base), ("checksums", REPO))
                if r % 2
                else (
                    ("checksums", REPO),
                    ("baseline", base),
                )
            ):
                env = {**os.environ, "PYTHONPATH": str(src)}
                done = subprocess.run(
                    [sys.executable, "-c", WORKLOAD, str(args.appends), str(args.queries), str(r), str(scratch)],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                if done.returncode:
                    raise RuntimeError(f"the {side} workload failed:\n{done.stderr[-2000:]}")
                sides[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, check=False)
    out: dict[str, Any] = {"baseline_revision": args.baseline, "runs": sides}
    for key in ("appends_per_s", "query_p50_ms"):
        a, b = median([s[key] for s in sides["checksums"]]), median([s[key] for s in sides["baseline"]])
        out[key] = {"checksums": a, "baseline": b, "ratio": a / b if a and b else None}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    with scratch_dir(args, "hybrid-integrity-") as scratch:
        started = time.perf_counter()
        res: dict[str, Any] = {"detection": detection(args, scratch)}
        res["detection_s"] = time.perf_counter() - started
        if args.rounds:
            res["cost"] = cost(args, scratch)
    return res


def targets(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    det = res["detection"]
    tried = sum(d.get("positions", 0) for d in det.values())
    caught = sum(d.get("detected", 0) for d in det.values())
    wrong = sum(d.get("read_wrong_rows", 0) for d in det.values())
    out: list[tuple[str, str, str]] = []
    if det:
        out.append(("every flipped byte detected by check (100%)", _met(caught == tried), f"{caught}/{tried}"))
        out.append(("a damaged table never reads as other rows", _met(wrong == 0), f"{wrong} wrong reads"))
    c = res.get("cost")
    if c:
        a, q = c["appends_per_s"]["ratio"], c["query_p50_ms"]["ratio"]
        out.append(("appends >= 0.95x without checksums", _met(a >= 0.95), f"{a:.3f}x"))
        out.append(("query p50 <= 1.02x without checksums", _met(q <= 1.02), f"{q:.3f}x"))
    return out


def _met(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def tables(res: dict[str, Any]) -> list[str]:
    head = ["file kind", "bytes", "positions", "detected", "reads", "raised", "same rows", "wrong rows"]
    body = [
        [k, str(d.get("file_bytes", "")), str(d.get("positions", "")), str(d.get("detected", d.get("error", ""))),
         str(d.get("reads", "")), str(d.get("read_raised", "")), str(d.get("read_same_rows", "")),
         str(d.get("read_wrong_rows", ""))]
        for k, d in res["detection"].items()
    ]  # fmt: skip
    out = [grid([head, *body], labels=1)] if body else [""]
    c = res.get("cost")
    if c:
        out.append(
            grid(
                [
                    ["measure", "checksums", f"baseline ({c['baseline_revision']})", "ratio"],
                    *[
                        [k, f"{c[k]['checksums']:.2f}", f"{c[k]['baseline']:.2f}", f"{c[k]['ratio']:.3f}"]
                        for k in ("appends_per_s", "query_p50_ms")
                    ],
                ],
                labels=1,
            )
        )
    return out


def render_md(res: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = md_intro("Integrity: checksums find damage, at what cost", "eval/integrity.py", meta)
    lines += md_machine(meta)
    lines += ["## Single-byte flips, per file kind\n", tables(res)[0], ""]
    lines += [
        "`detected`: `Table.check(all_versions=True)` on a freshly opened table reported the file. "
        "`reads`: of those positions, how many were also read and searched through the public API; "
        "`raised`: `CorruptionError` naming the file; `same rows`: exactly the undamaged table's answers "
        "(none of the damaged bytes was needed); `wrong rows`: anything else (must be 0).\n"
    ]
    if res.get("cost"):
        lines += ["## Cost: the same workload with and without checksums\n", tables(res)[1], ""]
        lines += [
            "20,000 rows (64-d vectors, FTS and vector indexes), single-row appends, then hybrid searches; "
            "each side in fresh processes, alternating, medians over rounds.\n"
        ]
    lines += md_targets(targets(res))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=1000, help="byte positions flipped per file kind (0: skip)")
    ap.add_argument("--read-sample", type=int, default=50, help="of those, how many are also read and searched")
    ap.add_argument("--baseline", default="ae7963d~1", help="git revision without checksums (for the cost)")
    ap.add_argument("--rounds", type=int, default=3, help="cost rounds per side (0: skip the cost)")
    ap.add_argument("--appends", type=int, default=300)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    add_output_args(ap, "integrity")
    args = ap.parse_args(argv)
    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=lambda: machine_info(("numpy", "pyarrow", "tantivy", "hnswlib", "xxhash")),
        targets=targets,
        render_md=render_md,
        tables=tables,
    )
    print_outcome(res, rd, args.name)


if __name__ == "__main__":
    main()
