"""Embedders by name: the built-in ones, `register`ed ones and third-party entry points
(group ``hybrid.embedders``, each pointing at an Embedder class)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hybrid.embedders.base import Embedder
from hybrid.errors import RegistryError

ENTRY_POINT_GROUP = "hybrid.embedders"
_classes: dict[str, type] = {}
_instances: dict[str, Embedder] = {}
_lock = threading.Lock()
_entry_points_loaded = False

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make an embedder class available by `name` (duplicates are refused).

    Example:
        >>> from hybrid.embedders import HashingEmbedder, register
        >>> @register("my-hashing")
        ... class MyHashing(HashingEmbedder):
        ...     pass
        >>> register("my-hashing")(MyHashing)
        Traceback (most recent call last):
        hybrid.errors.RegistryError: an embedder named 'my-hashing' is already registered (MyHashing)
    """

    def add(cls: T) -> T:
        with _lock:
            if name in _classes:
                raise RegistryError(f"an embedder named {name!r} is already registered ({_classes[name].__name__})")
            _classes[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return add


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _classes:
            register(ep.name)(ep.load())


def names() -> list[str]:
    """Every registered embedder name."""
    _load_entry_points()
    return sorted(_classes)


def create(name: str, **config: Any) -> Embedder:
    """A new embedder of the registered class `name`, built with `config`."""
    if name not in _classes:
        _load_entry_points()
    if name not in _classes:
        raise RegistryError(f"no embedder named {name!r}; registered: {names()}")
    embedder: Embedder = _classes[name](**config)
    return embedder


def _key(name: str, config: Mapping[str, Any]) -> str:
    return json.dumps({"name": name, "config": config}, sort_keys=True)


def remember(embedder: Embedder) -> None:
    """Let `from_config` return this very instance for its config (a loaded model is reused)."""
    with _lock:
        _instances.setdefault(_key(embedder.name, embedder.to_config()), embedder)


def from_config(name: str, config: Mapping[str, Any]) -> Embedder:
    """The embedder described by a stored (name, config), one shared instance per description."""
    key = _key(name, config)
    with _lock:
        found = _instances.get(key)
    if found is not None:
        return found
    embedder = create(name, **config)
    with _lock:
        return _instances.setdefault(key, embedder)
