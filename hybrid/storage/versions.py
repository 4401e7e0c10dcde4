"""The version log of a table: one manifest file per version, never overwritten.

A commit writes the manifest to a temporary file, flushes it, then publishes it
with ``os.link`` onto ``_versions/<n>.json``, which fails if the name exists.
So a version either exists whole or not at all, and two writers racing for
the same number cannot both win. The pages a manifest lists (see
:mod:`hybrid.storage.pages`) are written and synced before it is published;
inside a commit the syncs of the manifest and of every new file it lists are
made together, just before the link (:mod:`hybrid.storage.flushes`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

from hybrid.errors import CorruptionError, HybridError, VersionNotFoundError
from hybrid.storage import checksums, disk, flushes, pages, remote
from hybrid.storage.files import fsync_dir
from hybrid.storage.manifest import Manifest, Page

logger = logging.getLogger(__name__)

VERSIONS_DIR = "_versions"
TAGS_DIR = "_tags"
CLEANUP_MARK = ".cleanup"
"""Rewritten (new random content) by cleanup before and after it removes versions."""

_newest_seen: dict[str, tuple[int, str | None]] = {}
"""Per versions folder, process-wide: a version known to exist, and the cleanup mark read after it
existed. Versions are numbered without gaps from any existing one to the newest unless cleanup removed
some since, which changes the mark; so a new `VersionLog` starts from here instead of listing the folder."""


class VersionLog:
    """Reads and publishes the manifests of the table stored at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / VERSIONS_DIR
        self._prefix = os.path.join(str(self.dir), "")  # plain strings: a query's freshness check costs 2 stats
        self._latest_seen = 0
        self._cached: tuple[int, int, int, Manifest] | None = None  # (version, inode, mtime_ns, manifest)
        self._probe: tuple[int, str, str] = (0, "", "")
        """(version, its file, the next version's file): the paths load_latest checks, made once per version."""
        self._remote = remote.lookup(root)
        """The object store this table's folder mirrors (None: a local table)."""

    def exists(self) -> bool:
        return self.latest_version() > 0

    def _path(self, version: int) -> Path:
        return self.dir / f"{version}.json"

    def _file(self, version: int) -> str:
        return f"{self._prefix}{version}.json"

    def list_versions(self) -> list[int]:
        if self._remote is not None:
            return self._remote.versions(self.dir)
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def latest_version(self) -> int:
        """The newest published version (0 when the table has none)."""
        # Work on a local copy and publish once: threads sharing this log may race here, and an
        # increment of the shared counter between two of them could step past the newest file.
        if self._remote is not None:  # one LIST request: the store is the only shared truth
            versions = self._remote.versions(self.dir)
            self._latest_seen = versions[-1] if versions else 0
            return self._latest_seen
        seen = self._latest_seen
        if seen == 0 or not os.path.exists(self._file(seen)):  # first look, or cleaned up / dropped since
            seen = self._first_look()
        while seen and os.path.exists(self._file(seen + 1)):
            seen += 1
        self._latest_seen = seen
        return seen

    def _first_look(self) -> int:
        """The newest version: from the process-wide hint if no cleanup ran since, else by listing."""
        hint = _newest_seen.get(self._prefix)
        if hint is not None and os.path.exists(self._file(hint[0])):
            seen = hint[0]
            while os.path.exists(self._file(seen + 1)):
                seen += 1
            if self._cleanup_mark() == hint[1]:  # read after probing: no version was removed meanwhile
                self._note_newest(seen, hint[1])
                return seen
        mark = self._cleanup_mark()  # read before listing: a cleanup running now changes it again
        versions = self.list_versions()
        seen = versions[-1] if versions else 0
        if seen:
            self._note_newest(seen, mark)
        return seen

    def _note_newest(self, version: int, mark: str | None) -> None:
        known = _newest_seen.get(self._prefix)
        if known is None or known[1] != mark or known[0] < version:
            _newest_seen[self._prefix] = (version, mark)

    def _cleanup_mark(self) -> str | None:
        try:
            with open(self._prefix + CLEANUP_MARK) as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def mark_cleanup(self) -> None:
        """Tell other `VersionLog`s that versions may be removed (cleanup calls it before and after)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, self._prefix + CLEANUP_MARK)

    def load(self, version: int) -> Manifest:
        """The manifest of `version`; the newest one read is cached (manifests never change)."""
        try:
            if self._remote is not None and not self._remote.ensure_manifest(self._path(version)):
                raise FileNotFoundError(self._file(version))
            stat = os.stat(self._file(version))
            cached = self._cached
            if cached and cached[:3] == (version, stat.st_ino, stat.st_mtime_ns):
                return cached[3]
            raw = bytes(disk.read_plain(self._path(version), f"{VERSIONS_DIR}/{version}.json"))
        except FileNotFoundError:
            available = self.list_versions()
            span = f"{available[0]}..{available[-1]}" if available else "none"
            raise VersionNotFoundError(
                f"version {version} does not exist in {self.root.name} (available: {span})"
            ) from None
        manifest = self._parse(version, raw)
        if self._cached is None or version >= self._cached[0]:
            self._cached = (version, stat.st_ino, stat.st_mtime_ns, manifest)
        return manifest

    def _parse(self, version: int, raw: bytes) -> Manifest:
        rel = f"{VERSIONS_DIR}/{version}.json"
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise CorruptionError(f"{rel} of table {self.root.name} is damaged: {exc}", rel) from None
        body = checksums.unseal(text, rel, self.root)
        try:
            return Manifest.from_json(body, self.read_page, sealed=body is not text)
        except CorruptionError as exc:
            raise CorruptionError(f"{rel} of table {self.root.name}: {exc}", exc.path or rel, exc.problem) from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            message = f"{rel} of table {self.root.name} is unreadable: {exc!r}"
            raise CorruptionError(message, rel, "unreadable") from None

    def load_latest(self) -> Manifest:
        cached = self._cached
        if cached is not None and self._remote is None and cached[0] == self._latest_seen:
            # The newest version seen, still the same file, and none after it: two stats, where
            # latest_version() and load() would take three (a query's freshness check).
            probe = self._probe
            if probe[0] != cached[0]:
                probe = self._probe = (cached[0], self._file(cached[0]), self._file(cached[0] + 1))
            try:
                stat = os.stat(probe[1])
            except FileNotFoundError:  # cleaned up or dropped since: look again below
                stat = None
            if (
                stat is not None
                and (stat.st_ino, stat.st_mtime_ns) == cached[1:3]
                and not os.access(probe[2], os.F_OK)  # no exception for the usual missing file, as exists() has
            ):
                return cached[3]
        version = self.latest_version()
        if version == 0:
            raise VersionNotFoundError(f"table {self.root.name} has no committed version")
        return self.load(version)

    def read_page(self, rel: str) -> Page:
        return pages.read_page(self.root, rel)

    def publish(self, manifest: Manifest) -> Manifest | None:
        """Create the manifest of `manifest.version` exclusively; None if that version exists.

        Returns the manifest as published (with the pages that now hold its fragments). Once the
        manifest's name is linked the version is visible to every reader, so nothing after that
        raises: a failed sync of the folder is logged instead (the commit is whole, only its
        durability across a power cut is in doubt).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        layout, written = pages.write_pages(self.root, manifest.fragments, manifest.pages)
        published = replace(manifest, pages=layout)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        won = False
        try:
            self._upload(published)
            disk.write_new(tmp, checksums.seal(published.to_json()).encode(), sync=False)
            flushes.flush(tmp)  # the manifest's bytes, and every file put off for it: durable before the link
            disk.current().link(tmp, self._path(manifest.version))
            won = True
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
            if not won:
                pages.remove_pages(self.root, written)
        try:
            fsync_dir(self.dir)
        except OSError as exc:  # published already: raising now would make callers undo a visible version
            logger.warning(
                "version %s of %s is committed, but syncing its folder failed (%s): a power cut before "
                "the disk catches up may undo this commit whole",
                manifest.version,
                self.root.name,
                exc,
            )
        self._note_newest(manifest.version, self._cleanup_mark())
        self._latest_seen = max(self._latest_seen, manifest.version)
        stat = self._path(manifest.version).stat()
        self._cached = (manifest.version, stat.st_ino, stat.st_mtime_ns, published)
        return published

    def overwrite(self, manifest: Manifest) -> Manifest:
        """Replace the manifest of the existing version `manifest.version` (erasure only: versions are
        otherwise never rewritten). The new file is written and synced, then renamed over the old one,
        so a reader sees either manifest whole; the pages it lists are written first."""
        path = self._path(manifest.version)
        if not path.exists():
            raise VersionNotFoundError(f"version {manifest.version} of {self.root.name} does not exist")
        layout, written = pages.write_pages(self.root, manifest.fragments, manifest.pages)
        published = replace(manifest, pages=layout)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        try:
            self._upload(published)
            disk.write_new(tmp, checksums.seal(published.to_json()).encode())
            disk.current().replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            pages.remove_pages(self.root, written)
            raise
        fsync_dir(self.dir)
        self._cached = None
        return published

    def _upload(self, manifest: Manifest) -> None:
        """On an object store: put every file `manifest` lists that the store lacks (before the manifest)."""
        if self._remote is None:
            return
        folders = {}
        for entry in manifest.indexes:
            names = sorted(entry.get("checksums") or {})
            if not names and (self.root / entry["path"]).is_dir():
                folder = self.root / entry["path"]
                names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
            folders[entry["path"]] = names
        files = [f for frag in manifest.fragments for f in frag.file_paths()]
        self._remote.upload_referenced(self.root, [*files, *manifest.page_paths()], folders)

    def remove(self, version: int) -> int:
        """Delete the manifest of `version`; the bytes it held (0 if it was already gone)."""
        path = self._path(version)
        if self._remote is not None:
            return self._remote.remove(path)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    # -- tags: names for versions, kept by cleanup ------------------------------------------

    def tags(self) -> dict[str, int]:
        folder = self.root / TAGS_DIR
        if self._remote is not None:
            return self._remote.tags(folder)
        if not folder.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text())["version"] for p in sorted(folder.glob("*.json"))}

    def add_tag(self, name: str, version: int) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
            raise ValueError(f"invalid tag name {name!r}: use letters, digits, '_', '-' or '.'")
        self.load(version)  # raises if the version does not exist
        folder = self.root / TAGS_DIR
        if self._remote is not None:
            if not self._remote.add_tag(folder / f"{name}.json", version):
                raise HybridError(f"tag {name!r} already exists (version {self.tags()[name]}); delete it first")
            return
        folder.mkdir(exist_ok=True)
        try:
            with open(folder / f"{name}.json", "x") as fh:
                json.dump({"version": version}, fh)
        except FileExistsError:
            raise HybridError(f"tag {name!r} already exists (version {self.tags()[name]}); delete it first") from None

    def delete_tag(self, name: str) -> None:
        path = self.root / TAGS_DIR / f"{name}.json"
        if self._remote is not None:
            if not self._remote.delete_tag(path):
                raise VersionNotFoundError(f"no tag {name!r}; tags: {sorted(self.tags())}")
            return
        if not path.exists():
            raise VersionNotFoundError(f"no tag {name!r}; tags: {sorted(self.tags())}")
        path.unlink()

    def resolve(self, version: int | str) -> int:
        """A version number from a number or a tag name."""
        if isinstance(version, str):
            tags = self.tags()
            if version not in tags:
                raise VersionNotFoundError(f"no tag {version!r}; tags: {sorted(tags)}")
            return tags[version]
        return version
