"""Tables on object storage (S3 and S3-compatible stores, GCS, Azure, ``memory://``) through `obstore`.

A database at a URI is mirrored by a local folder (the *mirror*, under the cache folder): the
storage layer keeps working on local paths, and this module moves bytes between the mirror and
the store at a few seams:

- a manifest is published with a conditional put (``If-None-Match: *``, obstore's
  ``mode="create"``): of two writers racing for version *n* exactly one wins, the other gets the
  same ``FileExistsError`` as a local ``os.link`` and retries or raises ``CommitConflictError``;
- every file a manifest lists (data, row-id, deletion and page files, index folders) is uploaded
  before that manifest is put, so a published version is whole on the store;
- a file of the mirror that is missing locally is fetched on first read; ``take`` reads the rows
  it needs from a data file with ranged requests instead (:mod:`hybrid.storage.ranged`);
- fetched files (index folders, whole data files) count against a size limit and the least
  recently used are evicted from the mirror (they stay on the store).

The store is probed once at connect: an object created twice with ``mode="create"`` must fail the
second time, or the store cannot keep commits atomic and :class:`~hybrid.errors.StorageError` says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from hybrid.errors import MissingDependencyError, StorageError

SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "memory")
"""URI schemes served by an object store (``file://`` is a plain local folder)."""
DEFAULT_CACHE_BYTES = 8 * 1024**3
DEFAULT_MEMORY_BYTES = 256 * 1024**2
OPTIONS_ENV = "HYBRID_STORAGE_OPTIONS"
"""Storage options (a JSON object) used when a URI is opened without any: the CLI and the server read them."""
_PROBE = "_hybrid_probe"

_mirrors: dict[str, Remote] = {}
"""Local mirror folder (with a trailing separator) -> the store it mirrors, for every connected URI."""
_lock = threading.Lock()


def is_uri(path: object) -> bool:
    """Whether `path` names an object store (``s3://bucket/prefix``, ``memory://`` ...)."""
    return isinstance(path, str) and path.split("://", 1)[0].lower() in SCHEMES and "://" in path


def lookup(path: Path | str) -> Remote | None:
    """The store mirrored by the folder holding `path`, or None for a local table (one dict test)."""
    if not _mirrors:
        return None
    text = str(path)
    for prefix, remote in _mirrors.items():
        if text.startswith(prefix) or text + os.sep == prefix:
            return remote
    return None


def connect(uri: str, storage_options: Mapping[str, Any] | None = None) -> Remote:
    """The store at `uri`, probed for conditional puts and registered with its mirror folder.

    `storage_options`: obstore's configuration for the scheme (``endpoint``, ``access_key_id``,
    ``secret_access_key``, ``region``, ``allow_http`` ...; the ``AWS_*`` environment variables are
    read too), plus ``cache_dir`` (the local cache folder; default ``HYBRID_CACHE_DIR`` or
    ``~/.cache/hybrid``), ``cache_size`` (bytes of fetched files kept there; default 8 GiB),
    ``memory_cache_size`` (bytes of ranged reads of data files kept in memory; default 256 MiB) and
    ``read_consistency_interval`` (seconds a listing of a table's versions is reused before the
    store is asked again; default 0: every read sees the newest commit; writes always ask).
    """
    options = dict(storage_options or {})
    cache_dir = Path(options.pop("cache_dir", None) or os.environ.get("HYBRID_CACHE_DIR") or _default_cache())
    settings = {
        "cache_size": int(options.pop("cache_size", DEFAULT_CACHE_BYTES)),
        "memory_cache_size": int(options.pop("memory_cache_size", DEFAULT_MEMORY_BYTES)),
        "read_consistency_interval": float(options.pop("read_consistency_interval", 0)),
    }
    key = uri.rstrip("/")
    mirror = cache_dir / "object-store" / hashlib.sha256(key.encode()).hexdigest()[:20]
    with _lock:
        known = _mirrors.get(os.path.join(str(mirror), ""))
    if known is not None and known.options == options and known.settings == settings:
        return known
    remote = Remote(key, _store(key, options), mirror, options, settings)
    remote.probe()
    mirror.mkdir(parents=True, exist_ok=True)
    with _lock:
        _mirrors[os.path.join(str(mirror), "")] = remote
    return remote


def open_store(path: object, storage_options: Mapping[str, Any] | None, encryption_key: object = None) -> Remote | None:
    """The store a database path names (None for a local folder or ``file://`` URI)."""
    if not is_uri(path):
        if storage_options:
            raise ValueError(f"storage_options apply to an object-store URI (s3://...), not to the folder {path}")
        return None
    if encryption_key is not None:
        raise StorageError("encryption at rest is not supported for a database on an object store yet")
    if storage_options is None and os.environ.get(OPTIONS_ENV):
        try:
            storage_options = json.loads(os.environ[OPTIONS_ENV])
        except json.JSONDecodeError as exc:
            raise ValueError(f"{OPTIONS_ENV} must hold a JSON object of storage options: {exc}") from None
        if not isinstance(storage_options, dict):
            raise ValueError(f"{OPTIONS_ENV} must hold a JSON object of storage options")
    return connect(str(path), storage_options)


def local_path(path: object) -> Path:
    """The folder of a local database path or ``file://`` URI."""
    text = str(path)
    if isinstance(path, str) and text.lower().startswith("file://"):
        text = text[len("file://") :]
        if not text.startswith("/"):
            raise ValueError(f"a file:// URI needs an absolute path (file:///folder), got {path!r}")
    return Path(text)


def _default_cache() -> Path:
    return Path.home() / ".cache" / "hybrid"


def _store(uri: str, options: dict[str, Any]) -> Any:
    try:
        from obstore import store as obstore_store
    except ImportError as exc:
        raise MissingDependencyError("obstore is not installed: pip install 'hybridsearch[s3]'") from exc
    config = {k: v for k, v in options.items() if k not in ("client_options", "retry_config")}
    client = {"connect_timeout": "5s", "timeout": "60s", **options.get("client_options", {})}
    retry = options.get("retry_config") or {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}
    try:
        stores: Any = obstore_store  # obstore's overloads type each scheme's options; these come from the user
        if uri.startswith("memory:"):
            return stores.MemoryStore()
        scheme, _, rest = uri.partition("://")
        if scheme.lower() in ("s3", "s3a"):  # bucket and prefix from the URI, the rest from the options
            bucket, _, prefix = rest.partition("/")
            return stores.S3Store(
                bucket, prefix=prefix or None, config=config, client_options=client, retry_config=retry
            )
        return stores.from_url(uri, config=config or None, client_options=client, retry_config=retry)
    except Exception as exc:  # obstore: unknown configuration key, malformed URI
        raise StorageError(f"cannot open the object store {uri}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Remote:
    """One object store and the local folder mirroring it; counts the requests it sends."""

    def __init__(self, uri: str, store: Any, mirror: Path, options: dict[str, Any], settings: dict[str, Any]) -> None:
        import obstore

        self._obs = obstore
        self.uri = uri
        self.store = store
        self.mirror = mirror
        self.settings = settings
        self.cache_size: int = settings["cache_size"]
        self.options = options
        self._ranges: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()  # ranged reads, least recent first
        self._range_bytes = 0
        self._listed: dict[str, tuple[float, list[int]]] = {}  # versions folder -> (when, versions)
        self._etags: dict[str, str] = {}  # manifest key -> entity tag in the newest listing
        self.counts: Counter[str] = Counter()
        """Requests sent, by kind (get, range, put, list, delete, head), ``bytes_read``, and ``refused_creates``
        (conditional puts the store refused: another writer had created the object first)."""
        self._known: dict[str, set[str]] = {}  # table folder -> keys known to be on the store
        self._fetched: OrderedDict[str, int] = OrderedDict()  # evictable mirror files, least recent first
        self._fetched_bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Remote({self.uri!r})"

    # -- requests ---------------------------------------------------------------------

    def requests(self) -> dict[str, int]:
        """A copy of the request counters (``total`` is the sum of the request kinds)."""
        with self._lock:
            out = dict(self.counts)
        out["total"] = sum(v for k, v in out.items() if k not in ("bytes_read", "refused_creates"))
        return out

    def _count(self, kind: str, n: int = 1, read: int = 0) -> None:
        with self._lock:
            self.counts[kind] += n
            if read:
                self.counts["bytes_read"] += read

    def key(self, path: Path | str) -> str:
        """The object key of a path inside the mirror."""
        rel = os.path.relpath(path, self.mirror)
        if rel == ".":
            return ""
        if rel.startswith(".."):
            raise ValueError(f"{path} is not inside the mirror of {self.uri}")
        return rel.replace(os.sep, "/")

    def get(self, key: str) -> bytes | None:
        """The bytes of `key`, or None if it does not exist."""
        found = self._get(key)
        return None if found is None else found[0]

    def _get(self, key: str) -> tuple[bytes, str] | None:
        """The bytes and the entity tag of `key`, or None if it does not exist."""
        self._count("get")
        try:
            result = self._obs.get(self.store, key)
            data = bytes(result.bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        self._count("get", 0, len(data))
        return data, str(result.meta.get("e_tag") or "")

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start`..`end` of `key`; kept in memory (objects never change) within `memory_cache_size`."""
        with self._lock:
            hit = self._ranges.get((key, start, end))
            if hit is not None:
                self._ranges.move_to_end((key, start, end))
                return hit
        data = self._get_range(key, start, end)
        limit = self.settings["memory_cache_size"]
        if len(data) <= limit // 4:
            with self._lock:
                if (key, start, end) not in self._ranges:
                    self._ranges[(key, start, end)] = data
                    self._range_bytes += len(data)
                while self._range_bytes > limit:
                    self._range_bytes -= len(self._ranges.popitem(last=False)[1])
        return data

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        self._count("range")
        try:
            data = bytes(self._obs.get_range(self.store, key, start=start, end=end))
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        self._count("range", 0, len(data))
        return data

    def get_suffix(self, key: str, length: int) -> tuple[int, bytes]:
        """The object's size and its last `length` bytes (fewer for a smaller object), in one request."""
        self._count("range")
        try:
            result = self._obs.get(self.store, key, options={"range": {"suffix": length}})
            data = bytes(result.bytes())
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        self._count("range", 0, len(data))
        return int(result.meta["size"]), data

    def size(self, key: str) -> int:
        self._count("head")
        try:
            return int(self._obs.head(self.store, key)["size"])
        except Exception as exc:
            raise self._error(exc, "read", key) from None

    def put(self, key: str, data: bytes | memoryview, *, create: bool = False) -> bool:
        """Write `key`; with `create` only if it does not exist yet (False when it does)."""
        return self._put(key, data, create=create) is not None

    def _put(self, key: str, data: bytes | memoryview, *, create: bool = False) -> str | None:
        """Write `key`; its new entity tag, or None when `create` found it existing."""
        self._count("put")
        try:
            result = self._obs.put(self.store, key, data, mode="create" if create else "overwrite")
        except Exception as exc:
            if create and type(exc).__name__ in ("AlreadyExistsError", "PreconditionError"):
                with self._lock:
                    self.counts["refused_creates"] += 1
                return None
            raise self._error(exc, "write", key) from None
        return str(result.get("e_tag") or "")

    def objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under `prefix` (a folder: no trailing slash needed)."""
        out: list[dict[str, Any]] = []
        try:
            for page in self._obs.list(self.store, prefix.rstrip("/") + "/" if prefix else None, chunk_size=1000):
                self._count("list")
                out.extend(dict(o) for o in page)
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None
        if not out:
            self._count("list")
        return out

    def list_folders(self, prefix: str) -> list[str]:
        """The names of the folders directly under `prefix`."""
        self._count("list")
        try:
            found = self._obs.list_with_delimiter(self.store, prefix.rstrip("/") + "/" if prefix else None)
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in found["common_prefixes"]]

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            self._count("delete")
            try:
                self._obs.delete(self.store, keys[start : start + 1000])
            except FileNotFoundError:
                pass
            except Exception as exc:
                raise self._error(exc, "delete", keys[start]) from None

    def _error(self, exc: Exception, action: str, key: str) -> StorageError:
        text = str(exc)
        where = f"{self.uri}/{key}" if key else self.uri
        if "NoSuchBucket" in text:
            return StorageError(f"the bucket of {self.uri} does not exist (NoSuchBucket): create it first")
        if any(s in text for s in ("169.254.169.254", "credential", "InvalidAccessKeyId", "SignatureDoesNotMatch")):
            return StorageError(
                f"cannot {action} {self.uri}: missing or invalid credentials; give access_key_id and "
                "secret_access_key in storage_options or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment"
            )
        if "AccessDenied" in text or type(exc).__name__ in ("PermissionDeniedError", "UnauthenticatedError"):
            return StorageError(f"cannot {action} {where}: access denied ({_first_line(exc)})")
        if "error sending request" in text or "onnect" in text or "timed out" in text:
            return StorageError(f"cannot {action} {self.uri}: the endpoint is unreachable ({_first_line(exc)})")
        return StorageError(f"cannot {action} {where}: {_first_line(exc)}")

    def probe(self) -> None:
        """Check that the store answers and refuses a second create of one key (conditional puts)."""
        key = f"{_PROBE}/{uuid.uuid4().hex}"
        self.put(key, b"1", create=True)
        try:
            if self.put(key, b"2", create=True):
                raise StorageError(
                    f"the object store at {self.uri} does not honour conditional puts (If-None-Match): a second "
                    "create of one object succeeded, so two writers could both commit one version; use a store "
                    "that supports them (AWS S3, MinIO, R2 ...) or set the option its client needs for them"
                )
        finally:
            self.delete([key])

    # -- the mirror -------------------------------------------------------------------

    def fetch(self, path: Path) -> bool:
        """Download the object behind mirror file `path` into place; False if the store has none."""
        key = self.key(path)
        found = self._get(key)
        if found is None:
            return False
        self._place(path, found[0])
        self._note_known(key)
        if "/_versions/" in f"/{key}":
            _tag_path(path).write_text(found[1])
        self._remember(key, len(found[0]))
        return True

    def ensure_manifest(self, path: Path) -> bool:
        """Like :meth:`ensure` for a manifest, refetching a mirror copy whose entity tag differs from the
        newest listing's (a table dropped and created again elsewhere: same names, new content)."""
        listed = self._etags.get(self.key(path))
        if path.exists():
            try:
                held = _tag_path(path).read_text()
            except FileNotFoundError:
                held = None
            if listed is None or held == listed:
                return True
        return self.fetch(path)

    def _place(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".fetch-{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def ensure(self, path: Path) -> bool:
        """Make mirror file `path` present (fetching it if needed); False if it exists nowhere."""
        if path.exists():
            self._touch(self.key(path))
            return True
        return self.fetch(path)

    def ensure_folder(self, folder: Path, names: Iterable[str] | None = None) -> None:
        """Fetch the files of an index folder missing from the mirror (listing the folder if `names` is None)."""
        prefix = self.key(folder)
        if names is None:
            if folder.is_dir():
                self._touch(prefix)
                return
            names = [o["path"][len(prefix) + 1 :] for o in self.objects(prefix)]
        for name in names:
            path = folder / name
            if not path.exists():
                data = self.get(f"{prefix}/{name}")
                if data is not None:
                    self._place(path, data)
                    self._note_known(f"{prefix}/{name}")
                    self._remember(prefix, len(data))
        self._touch(prefix)

    def _remember(self, key: str, size: int) -> None:
        """Count a fetched file (or index folder) against the cache size; evict the least recent."""
        evict: list[str] = []
        with self._lock:
            self._fetched[key] = self._fetched.get(key, 0) + size
            self._fetched.move_to_end(key)
            self._fetched_bytes += size
            while self._fetched_bytes > self.cache_size and len(self._fetched) > 1:
                old, old_size = self._fetched.popitem(last=False)
                self._fetched_bytes -= old_size
                evict.append(old)
        for old in evict:
            self._evict(self.mirror / old)

    def _touch(self, key: str) -> None:
        with self._lock:
            if key in self._fetched:
                self._fetched.move_to_end(key)

    def _evict(self, path: Path) -> None:
        import shutil

        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)  # open tantivy / hnswlib files stay readable
        else:
            path.unlink(missing_ok=True)

    def cached_bytes(self) -> int:
        """Bytes of fetched files this process keeps in the mirror (bounded by `cache_size`)."""
        with self._lock:
            return self._fetched_bytes

    # -- tables -----------------------------------------------------------------------

    def known(self, root: Path) -> set[str]:
        """Keys under table folder `root` known to be on the store (listed once, then kept up to date)."""
        prefix = self.key(root)
        with self._lock:
            found = self._known.get(prefix)
        if found is None:
            found = {o["path"] for o in self.objects(prefix)}
            with self._lock:
                found = self._known.setdefault(prefix, found)
        return found

    def upload(self, path: Path, key: str | None = None) -> None:
        """Put mirror file `path` on the store at `key` (default: its own; overwriting)."""
        key = key or self.key(path)
        self.put(key, path.read_bytes())
        self._note_known(key)

    def _note_known(self, key: str) -> None:
        """Remember that `key` is on the store (so a commit listing it does not upload it again)."""
        with self._lock:
            known = self._known.get(key.split("/", 1)[0])
            if known is not None:  # else the first commit lists the table's objects anyway
                known.add(key)

    def upload_referenced(self, root: Path, files: Iterable[str], folders: Mapping[str, Iterable[str]]) -> None:
        """Upload the files (relative to `root`) and index folders a manifest lists that the store lacks."""
        known = self.known(root)
        prefix = self.key(root)
        wanted = list(files) + [f"{rel}/{name}" for rel, names in folders.items() for name in names]
        for rel in wanted:
            if f"{prefix}/{rel}" in known:
                continue
            path = root / rel
            if path.exists():  # absent: listed by an earlier version, so already on the store
                self.upload(path)
                known.add(f"{prefix}/{rel}")

    def publish(self, source: Path, target: Path) -> None:
        """Put `source`'s bytes at `target`'s key only if nothing is there (FileExistsError otherwise),
        then give the mirror the same file."""
        self._forget_listing(self.key(target.parent))  # a new version, or a lost race: list again next time
        etag = self._put(self.key(target), source.read_bytes(), create=True)
        if etag is None:
            raise FileExistsError(f"{self.uri}/{self.key(target)} exists")
        _replace_local(source, target)
        _tag_path(target).write_text(etag)
        self._etags[self.key(target)] = etag

    def replace(self, source: Path, target: Path) -> None:
        """Put `source`'s bytes at `target`'s key, overwriting; then rename locally."""
        self.upload(source, self.key(target))
        os.replace(source, target)

    def versions(self, folder: Path, fresh: bool = False) -> list[int]:
        """The version numbers under a table's ``_versions`` folder on the store (a listing at most
        ``read_consistency_interval`` seconds old unless `fresh`)."""
        key = self.key(folder)
        interval = self.settings["read_consistency_interval"]
        if interval > 0 and not fresh:
            with self._lock:
                listed = self._listed.get(key)
            if listed is not None and time.monotonic() - listed[0] < interval:
                return listed[1]
        listing = self.objects(key)
        for obj in listing:
            self._etags[obj["path"]] = str(obj.get("e_tag") or "")
        names = (o["path"].rsplit("/", 1)[-1] for o in listing)
        found = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())
        if found and key not in self._listed:  # the table exists: give it its folder in the mirror
            folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._listed[key] = (time.monotonic(), found)
        return found

    def _forget_listing(self, versions_key: str) -> None:
        with self._lock:
            self._listed.pop(versions_key, None)

    def remove(self, path: Path) -> int:
        """Delete mirror file `path` here and on the store; the bytes it held on the store (0 if gone)."""
        key = self.key(path)
        try:
            size = self.size(key)
        except StorageError:
            size = 0
        self.delete([key])
        path.unlink(missing_ok=True)
        return size

    def remove_table(self, root: Path) -> None:
        """Delete every object of the table at `root` (manifests first: readers stop seeing it at once)."""
        prefix = self.key(root)
        keys = [o["path"] for o in self.objects(prefix)]
        self.delete(sorted(keys, key=lambda k: "/_versions/" not in k))
        with self._lock:
            self._known.pop(prefix, None)
            self._listed.pop(f"{prefix}/_versions", None)

    def sweep(self, root: Path, referenced: set[str], cutoff: float) -> tuple[int, int]:
        """Delete the table's objects no kept version lists and older than `cutoff`: (objects, bytes)."""
        prefix = self.key(root)
        folders: dict[str, list[tuple[str, int, float]]] = {}
        for obj in self.objects(prefix):
            rel = obj["path"][len(prefix) + 1 :]
            top = rel.split("/", 1)[0]
            if top in ("_versions", "_tags"):
                continue
            unit = "/".join(rel.split("/", 2)[:2])  # a file, or an index folder
            folders.setdefault(unit, []).append((obj["path"], int(obj["size"]), obj["last_modified"].timestamp()))
        files = bytes_ = 0
        doomed: list[str] = []
        for unit, objs in folders.items():
            if unit in referenced or max(o[2] for o in objs) >= cutoff:
                continue
            doomed.extend(o[0] for o in objs)
            files += 1
            bytes_ += sum(o[1] for o in objs)
            self._evict(root / unit)
        self.delete(doomed)
        known = self.known(root)
        known.difference_update(doomed)
        return files, bytes_

    # -- tags -------------------------------------------------------------------------

    def tags(self, folder: Path) -> dict[str, int]:
        out = {}
        for obj in self.objects(self.key(folder)):
            name = obj["path"].rsplit("/", 1)[-1]
            data = self.get(obj["path"]) if name.endswith(".json") else None
            if data is not None:
                out[name[:-5]] = int(json.loads(data)["version"])
        return dict(sorted(out.items()))

    def add_tag(self, path: Path, version: int) -> bool:
        return self.put(self.key(path), json.dumps({"version": version}).encode(), create=True)

    def delete_tag(self, path: Path) -> bool:
        key = self.key(path)
        if self.get(key) is None:
            return False
        self.delete([key])
        path.unlink(missing_ok=True)
        return True


def _tag_path(manifest: Path) -> Path:
    """Where the mirror keeps the entity tag of the store's copy of a manifest."""
    return manifest.with_name(f".{manifest.name}.etag")


def _replace_local(source: Path, target: Path) -> None:
    """Give `target` the bytes of `source` (kept), replacing a stale mirror copy if there is one."""
    tmp = target.with_name(f".fetch-{uuid.uuid4().hex}")
    os.link(source, tmp)
    os.replace(tmp, target)
