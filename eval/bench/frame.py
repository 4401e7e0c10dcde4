"""The benchmarks' shared frame: timing and statistics, machine and git information, the common
command-line options, guarded steps, scratch folders, and writing the results (JSON + Markdown).

Used by ``eval/bench_search.py``, ``eval/bench_storage.py`` and ``eval/peer_lancedb.py`` (and, through
``bench_storage``'s names, by ``eval/bench_embed.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

EVAL_DIR = Path(__file__).resolve().parents[1]
REPO = EVAL_DIR.parent
RESULTS_DIR = EVAL_DIR / "results"

# --------------------------------------------------------------------------
# timing and statistics
# --------------------------------------------------------------------------


def now() -> float:
    return time.perf_counter()


def log(msg: str) -> None:
    print(msg, flush=True)


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs: list[float], p: float) -> float | None:
    return float(np.percentile(np.asarray(xs), p)) if xs else None


def mean(xs: list[float]) -> float | None:
    return float(statistics.fmean(xs)) if xs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def scaled(x, d):
    """`x / d`, or None when `x` is None."""
    return None if x is None else x / d


def fmt(x, spec=",.2f", none="n/a"):
    return none if x is None else format(x, spec)


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


# --------------------------------------------------------------------------
# machine
# --------------------------------------------------------------------------


def damon_reclaim_info() -> dict[str, Any] | None:
    """Read-only look at a DAMON page-out scheme (some VMs drop idle page cache)."""
    base = Path("/sys/kernel/mm/damon/admin/kdamonds/0")
    try:
        if (base / "state").read_text().strip() != "on":
            return None
        ctx = base / "contexts/0"
        sch = ctx / "schemes/0"
        aggr_us = int((ctx / "monitoring_attrs/intervals/aggr_us").read_text())
        min_age = int((sch / "access_pattern/age/min").read_text())
        return {
            "operations": (ctx / "operations").read_text().strip(),
            "action": (sch / "action").read_text().strip(),
            "min_idle_seconds": min_age * aggr_us / 1e6,
            "quota_bytes_per_reset": int((sch / "quotas/bytes").read_text()),
            "quota_reset_ms": int((sch / "quotas/reset_interval_ms").read_text()),
        }
    except (OSError, ValueError):
        return None


def proc_field(path: str, key: str) -> int | None:
    """The first number on the line of `path` that starts with `key` (a /proc file), or None."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mem_total_bytes() -> int | None:
    kib = proc_field("/proc/meminfo", "MemTotal:")
    return None if kib is None else kib * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pkg_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def pkg_versions(names: tuple[str, ...]) -> dict[str, str]:
    """{package: installed version} for the installed ones among `names`, in that order."""
    versions = {name: pkg_version(name) for name in names}
    return {k: v for k, v in versions.items() if v is not None}


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info(packages: tuple[str, ...], processor: bool = False) -> dict[str, Any]:
    """Cores, RAM, platform (and CPU model if `processor`), Python, the packages' versions, DAMON page-out."""
    mem = mem_total_bytes()
    info: dict[str, Any] = {
        "damon_page_cache_reclaim": damon_reclaim_info(),
        "cpu_count": os.cpu_count(),
        "ram_gib": (mem or 0) / 2**30,
        "platform": platform.platform(),
    }
    if processor:
        info["processor"] = cpu_model()
    info["python"] = platform.python_version()
    info["versions"] = pkg_versions(packages)
    return info


# --------------------------------------------------------------------------
# git
# --------------------------------------------------------------------------


def _git(*args: str, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=text, timeout=10)


def _head_and_changes() -> tuple[str, list[str]] | None:
    """HEAD and the `git status --porcelain` lines of hybrid/, or None outside a checkout."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--", "hybrid")
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip(), [line for line in dirty.stdout.splitlines() if line.strip()]


def git_info() -> dict[str, Any] | None:
    """Commit of the repository holding `hybrid`, and whether hybrid/ had local changes."""
    state = _head_and_changes()
    if state is None:
        return None
    return {"commit": state[0], "hybrid_dir_has_uncommitted_changes": bool(state[1])}


def git_state() -> dict[str, Any] | None:
    """HEAD, and the files under hybrid/ that differ from it (with a digest of the diff), if any."""
    state = _head_and_changes()
    if state is None:
        return None
    commit, lines = state
    changed = [line[3:] for line in lines]
    out: dict[str, Any] = {
        "commit": commit,
        "hybrid_tree": _git("rev-parse", "HEAD:hybrid").stdout.strip(),
        "hybrid_dir_has_uncommitted_changes": bool(changed),
    }
    if changed:
        diff = _git("diff", "HEAD", "--", "hybrid", text=False)
        out["hybrid_changed_files"] = changed
        out["hybrid_diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()
    return out


# --------------------------------------------------------------------------
# running: guarded steps, scratch folder, LanceDB's noise
# --------------------------------------------------------------------------


class Guard:
    """Runs steps that may fail, records what failed per system and lets the others carry on."""

    def __init__(self, names: list[str] | tuple[str, ...] = (), tb_limit: int = 8):
        self.errors: dict[str, dict[str, str]] = {s: {} for s in names}
        self.tb_limit = tb_limit

    def guarded(self, system: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`, or None (and the error recorded) if it raises; a None result becomes True."""
        try:
            out = fn(*args)
            return True if out is None else out
        except Exception as exc:  # keep going; report what failed
            msg = f"{type(exc).__name__}: {exc}"
            self.errors.setdefault(system, {})[what] = msg + "\n" + traceback.format_exc(limit=self.tb_limit)
            log(f"  !! {system} {what} failed: {msg}")
            return None

    def or_drop(self, systems: dict[str, Any], name: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`guarded`, and `name` leaves `systems` (the run goes on without it) if the step fails."""
        out = self.guarded(name, what, fn, *args)
        if out is None:
            del systems[name]
        return out

    def construct(self, names: list[str], make: Callable[[str], Any]) -> dict[str, Any]:
        """{name: make(name)} for the names whose construction does not fail (step "setup")."""
        made = {}
        for name in names:
            obj = self.guarded(name, "setup", make, name)
            if obj is not None:
                made[name] = obj
        return made

    def finish(self, res: dict[str, Any], t_start: float) -> dict[str, Any]:
        """Add the errors, the wall time since `t_start` and the peak RSS to `res`."""
        res["errors"] = {s: e for s, e in self.errors.items() if e}
        res["wall_seconds"] = now() - t_start
        res["peak_rss_mb"] = peak_rss_mb()
        return res


@contextmanager
def scratch_dir(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """``--out-dir``, or a temp folder under /tmp that is deleted at the end unless ``--keep``."""
    tmp_created = args.out_dir is None
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")) if tmp_created else Path(args.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    log(f"scratch dir: {root}")
    try:
        yield root
    finally:
        if tmp_created and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif tmp_created:
            log(f"kept scratch dir {root}")


def quiet_lancedb() -> None:
    """LanceDB warns on every vector query that selects columns without `_distance`, and 0.40 marks
    create_fts_index / create_scalar_index (used here on purpose) as deprecated: silence both."""
    os.environ.setdefault("LANCEDB_LOG", "error")
    warnings.filterwarnings("ignore", message=r"create_(fts|scalar)_index is deprecated")


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------


def add_output_args(ap: argparse.ArgumentParser, name: str) -> None:
    """``--out-dir``, ``--keep``, ``--results-dir`` and ``--name`` (the results file stem)."""
    ap.add_argument("--out-dir", default=None, help="scratch dir (default: a temp dir under /tmp, deleted at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the temp scratch dir")
    ap.add_argument("--results-dir", default=str(RESULTS_DIR))
    ap.add_argument("--name", default=name, help=f"results file stem (default: {name})")


def name_list(ap: argparse.ArgumentParser, value: str, known: tuple[str, ...], what: str) -> list[str]:
    """A comma-separated list of names, each one of `known` (else an argparse error about `what`)."""
    names = [s.strip() for s in value.split(",") if s.strip()]
    bad = set(names) - set(known)
    if bad:
        ap.error(f"unknown {what} {sorted(bad)}")
    return names


# --------------------------------------------------------------------------
# results: JSON + Markdown
# --------------------------------------------------------------------------


def portable(text: str) -> str:
    """`text` without this machine's paths: the repository, site-packages and the standard library
    become relative or named (profiles and the working directory name them)."""
    import sysconfig

    repo = str(Path(__file__).resolve().parents[2])
    for path, name in (
        (sysconfig.get_paths()["purelib"], "<site-packages>"),
        (sysconfig.get_paths()["platlib"], "<site-packages>"),
        (sysconfig.get_paths()["stdlib"], "<stdlib>"),
        (repo, "."),
    ):
        text = text.replace(path.rstrip("/") + "/", name + "/").replace(json.dumps(path), json.dumps(name))
    return text


def write_results(folder: Path, name: str, data: dict[str, Any], markdown: str, **json_options: Any) -> None:
    """``<folder>/<name>.json`` (indented) and ``<folder>/<name>.md``, without this machine's paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(portable(json.dumps(data, indent=2, **json_options)) + "\n")
    (folder / f"{name}.md").write_text(portable(markdown))


def run_and_report(
    args: argparse.Namespace,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    *,
    machine_info: Callable[[], dict[str, Any]],
    targets: Callable[[dict[str, Any]], list[tuple[str, str, str]]],
    render_md: Callable[[dict[str, Any], dict[str, Any]], str],
    tables: Callable[[dict[str, Any]], list[str]],
    extra_meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """The benchmarks' shared frame: record the command, machine, git state and load, `run`, write
    ``<results-dir>/<name>.json`` and ``.md``, print the `tables` and the targets; returns the results
    and the results folder."""
    meta = {
        "command": " ".join(
            shlex.quote(x)
            for x in [Path(sys.executable).name] + sys.argv[:1] + (argv if argv is not None else sys.argv[1:])
        ),
        "cwd": os.getcwd(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": vars(args),
        **(extra_meta or {}),
        "machine": machine_info(),
        "git": git_info(),
    }
    res = run(args)
    meta["loadavg_at_end"] = os.getloadavg()
    out = {
        "meta": meta,
        "results": res,
        "targets": [dict(zip(("target", "result", "figures"), t, strict=True)) for t in targets(res)],
    }
    rd = Path(args.results_dir)
    write_results(rd, args.name, out, render_md(res, meta), default=str)
    for table in tables(res):
        print()
        print(table)
    print()
    for t, r, f in targets(res):
        print(f"  {r:4}  {t}   [{f}]")
    return res, rd


def print_outcome(res: dict[str, Any], rd: Path, name: str) -> None:
    """The errors (first line of each) and where the results went."""
    if res.get("errors"):
        print("\nerrors:")
        for s, e in res["errors"].items():
            for what, msg in e.items():
                print(f"  {s} {what}: {msg.splitlines()[0]}")
    print(f"\nwrote {rd / (name + '.json')} and {rd / (name + '.md')}")


def grid(rows: list[list[str]], labels: int = 2) -> str:
    """A Markdown table; the first `labels` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        cells = [c.ljust(widths[i]) if i < labels else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("| " + " | ".join(cells) + " |")
        if j == 0:
            rule = ["-" * (w + 2) if i < labels else "-" * (w + 1) + ":" for i, w in enumerate(widths)]
            lines.append("|" + "|".join(rule) + "|")
    return "\n".join(lines)


def md_intro(title: str, script: str, meta: dict[str, Any]) -> list[str]:
    """Title, "Generated by `script` on <date>." and the command."""
    return [
        f"# {title}\n",
        f"Generated by `{script}` on {meta['date']}.\n",
        "Command:\n",
        f"```\n{meta['command']}\n```\n",
    ]


def md_machine(meta: dict[str, Any]) -> list[str]:
    """The machine line and, where known, the commit."""
    m = meta["machine"]
    out = [
        f"Machine: {m['cpu_count']} cores, {m['ram_gib']:.1f} GiB RAM, {m['platform']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".\n"
    ]
    g = meta.get("git")
    if g:
        out.append(
            f"Code: commit `{g['commit'][:12]}`"
            + (" with uncommitted changes in `hybrid/`" if g["hybrid_dir_has_uncommitted_changes"] else "")
            + ".\n"
        )
    return out


def md_targets(targets: list[tuple[str, str, str]]) -> list[str]:
    return (
        ["## Targets\n", "| target | result | figures |\n|---|---|---|"]
        + [f"| {t} | **{r}** | {f} |" for t, r, f in targets]
        + [""]
    )


def md_errors(errs: dict[str, dict[str, str]]) -> list[str]:
    if not errs:
        return []
    out = ["## Errors\n"]
    for s, e in errs.items():
        for what, msg in e.items():
            out.append(f"- **{s}** `{what}`: {msg.splitlines()[0] if msg else ''}")
    return out + [""]


def md_damon(meta: dict[str, Any], why: str, quota: bool = False) -> list[str]:
    """A note on the machine's DAMON page-out scheme, if it runs one: how idle a page may get (and with
    `quota`, how much it drops per interval), then `why` (what the benchmark does about it)."""
    dm = meta["machine"].get("damon_page_cache_reclaim")
    if not dm:
        return []
    note = (
        f"Note: this machine runs a DAMON `{dm['action']}` scheme that drops page-cache pages idle for "
        f"{dm['min_idle_seconds']:.0f} s or more"
    )
    if quota:
        note += f" (up to {dm['quota_bytes_per_reset'] / 2**20:.0f} MiB per {dm['quota_reset_ms']} ms)"
    return [note + why + "\n"]


def md_load(meta: dict[str, Any]) -> str:
    """ "Load average (1/5/15 min) at start a/b/c, at end d/e/f" (the sentence goes on at the caller)."""

    def la(v):
        return "/".join(f"{x:.2f}" for x in v) if v else "n/a"

    return f"Load average (1/5/15 min) at start {la(meta['loadavg_at_start'])}, at end {la(meta.get('loadavg_at_end'))}"
