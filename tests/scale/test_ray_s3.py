"""hybrid.ray.write / read on an object store: moto's S3 server on loopback, a real local Ray cluster.
Each task connects to the store itself, writes its data files and puts them on the store; the driver
commits once; a connection with an empty cache reads everything back from the store."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from tests.objstore.conftest import bucket, options, s3_endpoint  # noqa: F401 - fixtures
from tests.scale.test_ray_io import rows

ray = pytest.importorskip("ray")
hr = pytest.importorskip("hybrid.ray")

pytestmark = pytest.mark.usefixtures("cluster")


def test_write_and_read_through_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    uri = f"s3://{bucket}/db"
    store = options(s3_endpoint, tmp_path / "driver-cache")
    commit = hr.write(ray.data.from_items(rows(0, 400), override_num_blocks=4), uri, "docs", storage_options=store)
    assert commit.inserted == 400 and commit.version == 2  # create + ONE append
    fresh = hybrid.connect(uri, storage_options=options(s3_endpoint, tmp_path / "other-cache"), upkeep=None)
    t = fresh.open_table("docs")
    assert sorted(t.to_arrow(["id"])["id"].to_pylist()) == list(range(400))
    assert not t.check().damage  # every data file the version lists is on the store, intact
    got = hr.read(uri, "docs", columns=["id"], where="grp = 2", storage_options=store).to_arrow_refs()
    assert sorted(pa.concat_tables(ray.get(got))["id"].to_pylist()) == [i for i in range(400) if i % 4 == 2]
    with pytest.raises(ValueError, match="memory:// store lives in one process"):
        hr.write(ray.data.from_items(rows(0, 4)), "memory://x", "docs")
    with pytest.raises(ValueError, match="storage_options are for object-store URIs"):
        hr.write(ray.data.from_items(rows(0, 4)), tmp_path / "local", "docs", storage_options=store)
