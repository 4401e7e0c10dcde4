"""The version log of a table: one manifest file per version, never overwritten.

A commit writes the manifest to a temporary file, flushes it, then publishes it
with ``os.link`` onto ``_versions/<n>.json``, which fails if the name exists.
So a version either exists whole or not at all, and two writers racing for
the same number cannot both win.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from hybrid.errors import HybridError, VersionNotFoundError
from hybrid.storage.files import fsync_dir
from hybrid.storage.manifest import Manifest

VERSIONS_DIR = "_versions"
TAGS_DIR = "_tags"


class VersionLog:
    """Reads and publishes the manifests of the table stored at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / VERSIONS_DIR
        self._prefix = os.path.join(str(self.dir), "")  # plain strings: a query's freshness check costs 2 stats
        self._latest_seen = 0
        self._cached: tuple[int, int, int, Manifest] | None = None  # (version, inode, mtime_ns, manifest)

    def exists(self) -> bool:
        return self.latest_version() > 0

    def _path(self, version: int) -> Path:
        return self.dir / f"{version}.json"

    def _file(self, version: int) -> str:
        return f"{self._prefix}{version}.json"

    def list_versions(self) -> list[int]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def latest_version(self) -> int:
        """The newest published version (0 when the table has none)."""
        # Work on a local copy and publish once: threads sharing this log may race here, and an
        # increment of the shared counter between two of them could step past the newest file.
        seen = self._latest_seen
        if seen == 0 or not os.path.exists(self._file(seen)):  # first look, or cleaned up / dropped since
            versions = self.list_versions()
            seen = versions[-1] if versions else 0
        while seen and os.path.exists(self._file(seen + 1)):
            seen += 1
        self._latest_seen = seen
        return seen

    def load(self, version: int) -> Manifest:
        """The manifest of `version`; the newest one read is cached (manifests never change)."""
        try:
            stat = os.stat(self._file(version))
            cached = self._cached
            if cached and cached[:3] == (version, stat.st_ino, stat.st_mtime_ns):
                return cached[3]
            text = self._path(version).read_text()
        except FileNotFoundError:
            available = self.list_versions()
            span = f"{available[0]}..{available[-1]}" if available else "none"
            raise VersionNotFoundError(
                f"version {version} does not exist in {self.root.name} (available: {span})"
            ) from None
        manifest = Manifest.from_json(text)
        if self._cached is None or version >= self._cached[0]:
            self._cached = (version, stat.st_ino, stat.st_mtime_ns, manifest)
        return manifest

    def load_latest(self) -> Manifest:
        version = self.latest_version()
        if version == 0:
            raise VersionNotFoundError(f"table {self.root.name} has no committed version")
        return self.load(version)

    def publish(self, manifest: Manifest) -> bool:
        """Create the manifest of `manifest.version` exclusively; False if that version exists."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        with open(tmp, "x") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self._path(manifest.version))
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        fsync_dir(self.dir)
        self._latest_seen = max(self._latest_seen, manifest.version)
        stat = self._path(manifest.version).stat()
        self._cached = (manifest.version, stat.st_ino, stat.st_mtime_ns, manifest)
        return True

    def remove(self, version: int) -> None:
        self._path(version).unlink(missing_ok=True)

    # -- tags: names for versions, kept by cleanup ------------------------------------------

    def tags(self) -> dict[str, int]:
        folder = self.root / TAGS_DIR
        if not folder.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text())["version"] for p in sorted(folder.glob("*.json"))}

    def add_tag(self, name: str, version: int) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
            raise ValueError(f"invalid tag name {name!r}: use letters, digits, '_', '-' or '.'")
        self.load(version)  # raises if the version does not exist
        folder = self.root / TAGS_DIR
        folder.mkdir(exist_ok=True)
        try:
            with open(folder / f"{name}.json", "x") as fh:
                json.dump({"version": version}, fh)
        except FileExistsError:
            raise HybridError(f"tag {name!r} already exists (version {self.tags()[name]}); delete it first") from None

    def delete_tag(self, name: str) -> None:
        path = self.root / TAGS_DIR / f"{name}.json"
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
