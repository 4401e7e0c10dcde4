"""LangChain's own standard suite for vector stores, run against `HybridVectorStore`.

`VectorStoreIntegrationTests` (langchain-tests) checks adding, upserting by id, deleting,
`get_by_ids` and the async twins, with LangChain's deterministic fake embeddings.

Its async tests need pytest-asyncio, which (in its default strict mode) runs only tests marked
``asyncio``. The suite forbids overriding its tests (``test_no_overrides_DO_NOT_OVERRIDE``), so
the mark is set on the class; pytest-asyncio then warns that the sync tests are marked too,
which is expected here and silenced for exactly that message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_tests", reason="langchain-tests is not installed (dev extra)")
pytest.importorskip("pytest_asyncio", reason="pytest-asyncio is not installed (dev extra)")

from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

import hybrid  # noqa: E402
from hybrid.integrations.langchain import HybridVectorStore  # noqa: E402


@pytest.mark.asyncio
@pytest.mark.filterwarnings(
    "ignore:The test <Function .*> is marked with '@pytest.mark.asyncio' but it is not an async"
)
class TestHybridVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[HybridVectorStore]:  # type: ignore[override]
        """An empty store in a fresh database folder (removed with tmp_path)."""
        store = HybridVectorStore.create(
            self.get_embeddings(), connection=hybrid.connect(tmp_path / "db"), table_name="standard"
        )
        assert store.table.count_rows() == 0
        yield store
