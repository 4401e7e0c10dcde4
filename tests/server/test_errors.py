"""Bad requests get the right 4xx with a JSON error naming the problem, never a 500 or a traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server.conftest import ADMIN, MAX_BODY, MAX_CHARS, MAX_LIMIT, MAX_ROWS, Live, docs_rows, make_table


@pytest.fixture(scope="module")
def table(live: Live) -> Iterator[str]:
    with live.client() as client:
        make_table(client, "err_docs", n=30)
    yield "err_docs"


def error_of(r: httpx.Response, status: int) -> dict[str, str]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert "Traceback" not in r.text
    err: dict[str, str] = r.json()["error"]
    assert set(err) >= {"type", "message"}
    return err


def test_bad_filter_is_400_naming_the_column(admin: httpx.Client, table: str) -> None:
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "where": "colour = 'red'"}), 400)
    assert err["type"] == "FilterError" and "colour" in err["message"]
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "where": "year >"}), 400)
    assert err["type"] == "FilterError"
    unsafe = {"query": "x", "where": "id IN (SELECT 1)"}
    assert error_of(admin.post(f"/v1/tables/{table}/search", json=unsafe), 400)["type"] == "FilterError"
    err = error_of(admin.post(f"/v1/tables/{table}/rows/delete", json={"where": "nope = 1"}), 400)
    assert "nope" in err["message"]


def test_unknown_table_is_404(admin: httpx.Client) -> None:
    for r in (
        admin.get("/v1/tables/missing_table"),
        admin.post("/v1/tables/missing_table/search", json={"query": "x"}),
        admin.post("/v1/tables/missing_table/rows", json={"rows": [{"id": 1}]}),
        admin.get("/v1/tables/missing_table/versions"),
    ):
        err = error_of(r, 404)
        assert err["type"] == "TableNotFoundError" and "missing_table" in err["message"]
        assert "/" not in err["message"]  # the server's folder is not revealed


def test_wrong_vector_dimension_is_400(admin: httpx.Client, table: str) -> None:
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"vector": [0.1, 0.2], "query_type": "vector"}), 400)
    assert err["type"] == "VectorError" and "dimension 2" in err["message"]
    rows = [{"id": 99, "text": "t", "topic": "x", "year": 1, "vector": [1.0, 2.0]}]
    assert error_of(admin.post(f"/v1/tables/{table}/rows", json={"rows": rows}), 400)["type"] == "VectorError"


def test_nan_and_bad_types_are_rejected(admin: httpx.Client, table: str) -> None:
    nan_body = '{"vector": [NaN, 1.0], "query_type": "vector"}'
    r = admin.post(f"/v1/tables/{table}/search", content=nan_body, headers={"content-type": "application/json"})
    assert error_of(r, 422)["type"] == "ValidationError"
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "limt": 3}), 422)
    assert "limt" in err["message"]
    assert error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "limit": "3"}), 422)
    bad_rows = {"rows": [{"id": "not a number", "text": "t", "topic": "x", "year": 1}]}
    assert error_of(admin.post(f"/v1/tables/{table}/rows", json=bad_rows), 400)
    assert error_of(admin.post(f"/v1/tables/{table}/rows", json={"rows": [{"color": "red"}]}), 400)
    r = admin.post(f"/v1/tables/{table}/search", content=b"{not json", headers={"content-type": "application/json"})
    assert error_of(r, 422)
    deep = "[" * 5000 + "]" * 5000
    body = f'{{"rows": [{{"id": {deep}}}]}}'
    r = admin.post(f"/v1/tables/{table}/rows", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text


def test_search_input_errors(admin: httpx.Client, table: str) -> None:
    assert error_of(admin.post(f"/v1/tables/{table}/search", json={}), 400)
    no_index_on_topic = {"query": "x", "query_type": "fts", "fts_columns": ["topic"]}
    assert "full-text" in error_of(admin.post(f"/v1/tables/{table}/search", json=no_index_on_topic), 400)["message"]
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "select": ["nope"]}), 400)
    assert "nope" in err["message"]
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "rerank": {"name": "nanoranker"}}), 400)
    assert err["type"] == "RerankerNotEnabled"


def test_limits(admin: httpx.Client, table: str) -> None:
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x", "limit": MAX_LIMIT + 1}), 422)
    assert str(MAX_LIMIT) in err["message"]
    err = error_of(admin.post(f"/v1/tables/{table}/search", json={"query": "x" * (MAX_CHARS + 1)}), 422)
    assert str(MAX_CHARS) in err["message"]
    rows = [{"id": i} for i in range(MAX_ROWS + 1)]
    assert error_of(admin.post(f"/v1/tables/{table}/rows", json={"rows": rows}), 422)["type"] == "TooManyRows"
    # the spec advertises the configured limits
    spec = admin.get("/openapi.json").json()["components"]["schemas"]
    assert spec["SearchRequest"]["properties"]["limit"]["maximum"] == MAX_LIMIT
    assert spec["AddRowsRequest"]["properties"]["rows"]["maxItems"] == MAX_ROWS


def test_oversized_body_is_413_before_parsing(live: Live, admin: httpx.Client, table: str) -> None:
    big = json.dumps({"rows": docs_rows(range(5_000))}).encode()
    assert len(big) > MAX_BODY
    err = error_of(
        admin.post(f"/v1/tables/{table}/rows", content=big, headers={"content-type": "application/json"}), 413
    )
    assert err["type"] == "PayloadTooLarge" and str(MAX_BODY) in err["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    with live.client() as client:
        r = client.post(f"/v1/tables/{table}/rows", content=chunks(), headers={"content-type": "application/json"})
    assert error_of(r, 413)["type"] == "PayloadTooLarge"
    assert admin.get(f"/v1/tables/{table}").json()["num_rows"] == 30


@pytest.mark.parametrize("mib", [2, 8])
def test_oversized_body_gets_a_whole_413_while_the_client_still_sends(live: Live, table: str, mib: int) -> None:
    """A client that writes its whole body before reading (as requests does) reads the whole 413, not a reset."""
    body = b'{"rows": [' + b" " * (mib * 1024 * 1024) + b"]}"
    url = urlsplit(live.url)
    head = (
        f"POST /v1/tables/{table}/rows HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {ADMIN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert status.split()[1] == b"413", status
    headers, _, payload = rest.partition(b"\r\n\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b":") for h in headers.split(b"\r\n")) if k.lower() == b"content-length"
    )
    assert len(payload) == length
    assert json.loads(payload)["error"]["type"] == "PayloadTooLarge"


def test_table_names_and_embedders(admin: httpx.Client) -> None:
    assert error_of(admin.get("/v1/tables/.hidden"), 422)
    assert error_of(admin.post("/v1/tables", json={"name": "../up", "rows": [{"id": 1}]}), 422)
    assert error_of(admin.post("/v1/tables", json={"name": "no_rows", "rows": []}), 422)
    openai = {
        "name": "err_embed",
        "rows": [{"id": 1, "text": "a"}],
        "embedding": {"vector": {"source": "text", "embedder": "openai", "config": {"model": "x"}}},
    }
    assert error_of(admin.post("/v1/tables", json=openai), 400)["type"] == "EmbedderNotEnabled"
    bad_config = {**openai, "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": -1}}}}
    assert error_of(admin.post("/v1/tables", json=bad_config), 400)
    wrong_source = {**openai, "embedding": {"vector": {"source": "nope", "embedder": "hashing"}}}
    assert "nope" in error_of(admin.post("/v1/tables", json=wrong_source), 400)["message"]
    assert admin.get("/v1/tables/err_embed").status_code == 404


def test_unknown_routes_and_methods_are_json(admin: httpx.Client) -> None:
    assert error_of(admin.get("/v1/nothing"), 404)["type"] == "NotFound"
    r = admin.put("/v1/tables")
    assert error_of(r, 405) and "GET" in r.headers["allow"]
