"""Schemathesis against the live server, with an admin key: no 5xx, ever.

The spec is the one the live server serves (the test checks they are equal); it is built
at import so that pytest can parametrize one test per operation, and every request goes
over real HTTP to the uvicorn server of the session. The default checks run except
`positive_data_acceptance`: a request can match the schema and still be refused with 400
for what no schema can express (a `where` naming an unknown column, rows that do not fit
the table). `not_a_server_error` must never fail.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402  (schemathesis sends its requests with it)
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from hybrid.server import create_app  # noqa: E402
from hybrid.server.limits import DRAIN_FACTOR, DRAIN_FLOOR  # noqa: E402
from tests.server.conftest import ADMIN, MAX_BODY, Live, auth, make_config, make_table  # noqa: E402

EXAMPLES = 10
TABLE = "st_docs"
with tempfile.TemporaryDirectory(prefix="hybrid-spec-") as _folder:  # at import: no fixture yet; leaves nothing
    SPEC = create_app(_folder, make_config()).openapi()


def _schema(pin_table: bool) -> Any:
    schema = schemathesis.openapi.from_dict(SPEC)
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=True)
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]  # a body over the limit is refused too
    if pin_table:  # aim the requests at a real table with data and both indexes
        schema.config.update(parameters={"name": TABLE})
        schema = schema.exclude(method="DELETE", path="/v1/tables/{name}")
    return schema


on_table = _schema(pin_table=True)
anywhere = _schema(pin_table=False)


@pytest.fixture(scope="module")
def target(live: Live) -> Iterator[str]:
    with httpx.Client(base_url=live.url, headers=auth(ADMIN), timeout=60) as client:
        assert client.get("/openapi.json").json() == SPEC
        make_table(client, TABLE, n=40, dim=16)
    yield live.url


DRAINED = max(DRAIN_FACTOR * MAX_BODY, DRAIN_FLOOR)
"""The most body bytes the server reads and drops before it answers 413 (`hybrid.server.limits`)."""


def _body_bytes(case: Any) -> int:
    body = getattr(case, "body", None)
    return 0 if body is None else len(json.dumps(body, default=str).encode())


def _call(case: Any, url: str) -> None:
    try:
        response = case.call_and_validate(
            base_url=url, headers=auth(ADMIN), excluded_checks=[positive_data_acceptance], timeout=60
        )
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        # A body beyond what the server drains gets its 413 at once and the connection closed while the
        # client still sends, so the client may see a reset instead (documented in hybrid.server.limits).
        # Anything smaller must be answered; either way the server must still serve the next request.
        size = _body_bytes(case)
        assert size > DRAINED, f"{case.method} {case.formatted_path}: connection lost on a {size}-byte body"
        assert httpx.get(f"{url}/v1/health", headers=auth(ADMIN), timeout=60).status_code == 200
        return
    except FailureGroup as group:  # keep the report short: generated bodies can be megabytes
        titles = sorted({getattr(e, "title", type(e).__name__) for e in group.exceptions})
        pytest.fail(f"{case.method} {case.formatted_path}: {titles}: {str(group.exceptions[0])[:2000]}")
    assert response.status_code < 500, response.text[:2000]


@on_table.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_on_a_real_table(case: Any, target: str) -> None:
    _call(case, target)


@anywhere.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors_anywhere(case: Any, target: str) -> None:
    _call(case, target)
