"""Checking a table: every file its versions need, read whole and compared with its checksum.

`check_table` is what ``hybrid check`` and ``Table.check()`` run. It rereads
every manifest and page from disk (no cache), then every data, row-id and
deletion file and every file of every index folder the checked versions refer
to, once each however many versions share it, and reports each damaged or
missing file with the versions that need it. Files written before checksums
existed are counted as unverified, not as damaged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hybrid.errors import CorruptionError
from hybrid.storage import checksums, pages, remote
from hybrid.storage.manifest import Manifest
from hybrid.storage.versions import VERSIONS_DIR, VersionLog

Problem = Literal["damaged", "missing", "unreadable"]


@dataclass(frozen=True)
class Damage:
    """One file that is damaged or missing, and the versions that need it."""

    path: str
    """Relative to the table folder."""
    problem: Problem
    detail: str
    versions: tuple[int, ...]
    kind: str
    """manifest, page, data, rowids, deletions or index."""


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_table` found."""

    table: str
    versions: tuple[int, ...]
    files_checked: int
    bytes_checked: int
    unverified: int
    """Files written before checksums existed (they could only be checked for presence)."""
    damage: tuple[Damage, ...] = ()
    broken_indexes: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """Per version, the names of its indexes that have a damaged or missing file."""

    @property
    def ok(self) -> bool:
        return not self.damage

    @property
    def broken_versions(self) -> tuple[int, ...]:
        """Checked versions that need at least one damaged or missing file."""
        return tuple(sorted({v for d in self.damage for v in d.versions}))

    def data_broken(self, version: int) -> bool:
        """Whether `version` cannot be read: its manifest, a page or a data, row-id or deletion file is bad."""
        return any(version in d.versions and d.kind != "index" for d in self.damage)

    def summary(self) -> str:
        lines = [
            f"table {self.table}: {len(self.versions)} version(s), {self.files_checked} file(s), "
            f"{self.bytes_checked / 1e6:.1f} MB checked, {self.unverified} without checksum (older files)"
        ]
        for d in self.damage:
            needed = f"needed by versions {_span(d.versions)}"
            lines.append(f"  {d.problem.upper()} {d.path} ({d.kind}): {d.detail}; {needed}")
        lines.append("OK" if self.ok else f"DAMAGED: versions {_span(self.broken_versions)} are affected")
        return "\n".join(lines)


def check_table(root: Path, versions: Iterable[int] | None = None) -> CheckReport:
    """Verify every file of `versions` of the table at `root` (default: the newest)."""
    log = VersionLog(root)
    wanted = list(versions) if versions is not None else [log.latest_version()]
    needed: dict[str, set[int]] = defaultdict(set)
    index_files: dict[str, dict[str, str]] = {}
    index_names: dict[str, set[tuple[int, str]]] = defaultdict(set)
    unloadable: dict[str, tuple[Problem, str, set[int]]] = {}
    checked = [0, 0, 0]  # files, bytes, unverified
    pages.clear_cache()  # pages are reread from disk, not trusted from this process's memory
    for version in wanted:
        try:
            manifest = log.load(version)
        except CorruptionError as exc:  # the manifest or a page it lists: several versions may share a page
            rel = exc.path or f"{VERSIONS_DIR}/{version}.json"
            problem: Problem = "missing" if exc.problem == "missing" else "damaged"
            unloadable.setdefault(rel, (problem, str(exc), set()))[2].add(version)
            continue
        checked[0] += 1
        checked[1] += (root / VERSIONS_DIR / f"{version}.json").stat().st_size
        for rel in manifest.page_paths():
            needed[rel].add(version)
        for rel in _fragment_files(manifest):
            needed[rel].add(version)
        for entry in manifest.indexes:
            folder = entry["path"]
            index_files[folder] = entry.get("checksums", {})
            index_names[folder].add((version, entry["name"]))
    store = remote.lookup(root)
    if store is not None:  # a table on an object store: check the store's bytes, fetched into the cache
        for rel in needed:
            store.ensure(root / rel)
        for folder, digests in index_files.items():
            store.ensure_folder(root / folder, digests)
    damage = [Damage(rel, p, why, tuple(sorted(users)), _kind(rel)) for rel, (p, why, users) in unloadable.items()]
    for rel, versions in sorted(needed.items()):
        found = _verify(root, rel, checked)
        if found is not None:
            damage.append(Damage(rel, found[0], found[1], tuple(sorted(versions)), _kind(rel)))
    broken: dict[int, set[str]] = defaultdict(set)
    for folder, digests in sorted(index_files.items()):
        sharing = tuple(sorted(v for v, _ in index_names[folder]))
        bad = _verify_index(root, folder, digests, checked)
        for rel, what, detail in bad:
            damage.append(Damage(rel, what, detail, sharing, "index"))
        if bad:
            for v, name in index_names[folder]:
                broken[v].add(name)
    return CheckReport(
        root.name,
        tuple(wanted),
        checked[0],
        checked[1],
        checked[2],
        tuple(damage),
        {v: tuple(sorted(names)) for v, names in sorted(broken.items())},
    )


def _fragment_files(manifest: Manifest) -> Iterable[str]:
    for frag in manifest.fragments:
        yield from frag.file_paths()


def _verify(root: Path, rel: str, checked: list[int]) -> tuple[Problem, str] | None:
    path = root / rel
    expected = checksums.digest_in_name(rel)
    try:
        size = path.stat().st_size
        found = checksums.digest_file(path) if expected is not None else None
    except FileNotFoundError:
        return "missing", "the file is gone"
    except OSError as exc:
        return "unreadable", str(exc)
    checked[0] += 1
    checked[1] += size
    if expected is None:
        checked[2] += 1
        return None
    if found != expected:
        return "damaged", f"checksum {found}, written as {expected}"
    return None


def _verify_index(
    root: Path, folder: str, digests: dict[str, str], checked: list[int]
) -> list[tuple[str, Problem, str]]:
    if not digests:  # built before checksums: presence only
        if not (root / folder).is_dir():
            return [(folder, "missing", "the index folder is gone")]
        checked[2] += sum(1 for p in (root / folder).rglob("*") if p.is_file())
        return []
    bad: list[tuple[str, Problem, str]] = []
    for name, expected in digests.items():
        rel = f"{folder}/{name}"
        try:
            found = checksums.digest_file(root / rel)
            checked[1] += (root / rel).stat().st_size
        except FileNotFoundError:
            bad.append((rel, "missing", "the file is gone"))
            continue
        except OSError as exc:
            bad.append((rel, "unreadable", str(exc)))
            continue
        checked[0] += 1
        if found != expected:
            bad.append((rel, "damaged", f"checksum {found}, written as {expected}"))
    return bad


def _kind(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return {VERSIONS_DIR: "manifest", pages.PAGES_DIR: "page", "indexes": "index"}.get(top, top)


def _span(versions: tuple[int, ...]) -> str:
    if len(versions) > 6:
        return f"{versions[0]}..{versions[-1]} ({len(versions)})"
    return ", ".join(map(str, versions))
