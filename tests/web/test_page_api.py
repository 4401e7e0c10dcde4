"""The page's HTTP side without a browser: security headers, and the /v1 endpoints the page uses."""

from __future__ import annotations

import fnmatch
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from hybrid.server import ApiKey, ConfigError, ServerConfig, create_app, load_config, web  # noqa: E402
from tests.web.conftest import ADMIN, READER, WRITER, rows, tiny_png  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def config(**overrides: Any) -> ServerConfig:
    keys = (
        ApiKey.from_secret(ADMIN, "admin", "admin"),
        ApiKey.from_secret(WRITER, "write", "writer"),
        ApiKey.from_secret(READER, "read", "reader"),
    )
    return ServerConfig(api_keys=keys, **overrides)


def client_for(app: Any, key: str | None) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {key}"} if key else {})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    db = tmp_path_factory.mktemp("page-api") / "db"
    app = create_app(db, config())
    with client_for(app, ADMIN) as admin:
        created = admin.post(
            "/v1/tables",
            json={
                "name": "docs",
                "rows": rows(0, 30),
                "embedding": {"vector": {"source": "text", "embedder": "hashing", "config": {"dim": 32}}},
            },
        )
        assert created.status_code == 201, created.text
        assert admin.post("/v1/tables/docs/indexes", json={"kind": "fts", "columns": ["text"]}).status_code == 201
        assert admin.post("/v1/tables/docs/rows", json={"rows": rows(30, 35)}).status_code == 200
        yield app, db


def test_page_has_a_strict_csp_and_no_inline_script(served: tuple[Any, Path]) -> None:
    app, _ = served
    anonymous = client_for(app, None)
    page = anonymous.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert scripts and all('src="/static/' in attrs and body.strip() == "" for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", page.text) and "style=" not in page.text
    js = anonymous.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["content-security-policy"] == csp
    code = js.text
    assert "innerHTML" not in code and "eval(" not in code and "new Function" not in code
    assert "localStorage" not in code  # the key lives in sessionStorage, for the tab only
    assert "content-security-policy" not in anonymous.get("/v1/health").headers  # the API is left as it was
    assert anonymous.get("/v1/whoami").status_code == 401


def test_whoami_names_the_role_and_features(served: tuple[Any, Path]) -> None:
    app, _ = served
    for key, role in ((READER, "read"), (WRITER, "write"), (ADMIN, "admin")):
        who = client_for(app, key).get("/v1/whoami").json()
        assert who["role"] == role
        assert who["features"] == {"rerankers": ["mmr", "bi-encoder"], "chat": "extractive", "max_limit": 1000}
    assert client_for(app, "x" * 20).get("/v1/whoami").status_code == 401


def test_search_pins_a_version_and_explains(served: tuple[Any, Path]) -> None:
    app, _ = served
    c = client_for(app, READER)
    versions = [v["version"] for v in c.get("/v1/tables/docs/versions").json()["versions"]]
    body = {"query": "runbook step 32", "query_type": "fts", "limit": 40}
    newest = c.post("/v1/tables/docs/search", json=body).json()
    assert newest["version"] == versions[-1] and newest["explain"] is None
    assert 32 in [r["id"] for r in newest["results"]]
    old = c.post("/v1/tables/docs/search", json={**body, "version": versions[-2], "explain": True}).json()
    assert old["version"] == versions[-2] and max(r["id"] for r in old["results"]) < 30
    assert old["explain"].startswith(f"search docs v{versions[-2]} (30 rows)")
    missing = c.post("/v1/tables/docs/search", json={**body, "version": 999})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "VersionNotFoundError"


def test_reranked_rows_keep_the_fused_score(served: tuple[Any, Path]) -> None:
    app, _ = served
    c = client_for(app, READER)
    plain = c.post("/v1/tables/docs/search", json={"query": "rotate keys", "limit": 30}).json()["results"]
    fused = {r["_rowid"]: r["_score"] for r in plain}
    reranked = c.post(
        "/v1/tables/docs/search", json={"query": "rotate keys", "limit": 5, "rerank": {"name": "bi-encoder"}}
    ).json()["results"]
    assert reranked and all(r["_fused_score"] == pytest.approx(fused[r["_rowid"]]) for r in reranked)
    assert all(r["_score"] == r["_relevance_score"] for r in reranked)


def test_rows_pages_through_a_version(served: tuple[Any, Path]) -> None:
    app, _ = served
    c = client_for(app, READER)
    page = c.get("/v1/tables/docs/rows", params={"offset": 28, "limit": 5}).json()
    assert page["total"] == 35 and [r["id"] for r in page["rows"]] == [28, 29, 30, 31, 32]
    assert "vector" not in page["rows"][0] and "_rowid" in page["rows"][0]
    first = c.get("/v1/tables/docs/versions").json()["versions"][-2]["version"]
    old = c.get("/v1/tables/docs/rows", params={"offset": 28, "limit": 5, "version": first}).json()
    assert old["total"] == 30 and [r["id"] for r in old["rows"]] == [28, 29]
    assert c.get("/v1/tables/docs/rows", params={"limit": 100_000}).status_code == 422
    assert c.get("/v1/tables/nope/rows").status_code == 404


def test_eval_report_is_served_when_saved(served: tuple[Any, Path]) -> None:
    app, db = served
    c = client_for(app, READER)
    missing = c.get("/v1/tables/docs/eval")
    assert missing.status_code == 404
    assert "hybrid eval --out <database>/.eval/docs/" in missing.json()["error"]["message"]
    for run, ndcg in (("older", 0.1), ("newer", 0.7)):
        folder = db / ".eval" / "docs" / run
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps({"ndcg": ndcg}))
        (folder / "report.md").write_text(f"nDCG {ndcg}")
        (folder / "runs.png").write_bytes(tiny_png())
    older = db / ".eval" / "docs" / "older" / "report.json"
    older.touch()  # now the newest
    report = c.get("/v1/tables/docs/eval").json()
    assert report["run"] == "older" and report["report"] == {"ndcg": 0.1} and report["plots"] == ["runs.png"]
    png = c.get("/v1/tables/docs/eval/runs.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content == tiny_png()
    assert c.get("/v1/tables/docs/eval/wins.png").status_code == 404
    assert c.get("/v1/tables/docs/eval/..%2Freport.json").status_code in (404, 422)
    assert "docs" in client_for(app, READER).get("/v1/tables").json()["tables"]
    assert client_for(app, READER).get("/v1/tables").json()["tables"] == ["docs"]  # .eval is no table


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_extractive_answer_cites_the_best_passages(served: tuple[Any, Path]) -> None:
    app, _ = served
    c = client_for(app, READER)
    answer = c.post("/v1/tables/docs/answer", json={"question": "rotate backups", "passages": 3})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/x-ndjson")
    got = events(answer.text)
    head, deltas, last = got[0], got[1:-1], got[-1]
    assert head["type"] == "citations" and head["mode"] == "extractive" and head["column"] == "text"
    assert [x["n"] for x in head["citations"]] == [1, 2, 3]
    assert all("backups" in x["text"] for x in head["citations"])
    assert [d["text"].strip()[-3:] for d in deltas] == ["[1]", "[2]", "[3]"] and last == {"type": "done"}
    bad = c.post("/v1/tables/docs/answer", json={"question": "x", "where": "nope = 1"})
    assert bad.status_code == 400 and "unknown column 'nope'" in bad.json()["error"]["message"]
    assert c.post("/v1/tables/docs/answer", json={"question": ""}).status_code == 422
    assert c.post("/v1/tables/docs/answer", json={"question": "x", "text_column": "nope"}).status_code == 400


def test_a_failing_chat_endpoint_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(tmp_path / "db", config(chat_url=f"http://127.0.0.1:{port}/v1", chat_model="m"))
    with client_for(app, ADMIN) as c:
        made = c.post("/v1/tables", json={"name": "t", "rows": [{"id": 1, "text": "rotate keys"}]})
        assert made.status_code == 201
        assert c.post("/v1/tables/t/indexes", json={"kind": "fts", "columns": ["text"]}).status_code == 201
        assert c.get("/v1/whoami").json()["features"]["chat"] == "llm"
        got = events(c.post("/v1/tables/t/answer", json={"question": "rotate"}).text)
    assert got[0]["mode"] == "llm" and got[0]["citations"][0]["text"] == "rotate keys"
    assert got[-1]["type"] == "error" and "the chat model failed" in got[-1]["message"]


def test_chat_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chat_url must be an http"):
        ServerConfig(chat_url="ftp://example")
    path = tmp_path / "server.toml"
    path.write_text('chat_url = "http://127.0.0.1:9/v1"\nchat_model = "m"\nchat_key_env = "K"\n')
    loaded = load_config(path, {"HYBRID_API_KEYS": f"{ADMIN}:admin"})
    assert (loaded.chat_url, loaded.chat_model, loaded.chat_key_env) == ("http://127.0.0.1:9/v1", "m", "K")
    from hybrid.server.config import from_json, to_json

    workers_get = replace(loaded, cors_origins=("https://a.example",))  # what serve hands each worker
    assert from_json(to_json(workers_get)) == workers_get


def test_the_wheel_ships_the_page() -> None:
    """Every template and static file matches a package-data pattern (.ci/wheel_smoke checks the built wheel)."""
    line = re.search(r'^"hybrid\.server\.web" = \[(.*?)\]', (ROOT / "pyproject.toml").read_text(), re.M)
    assert line, "pyproject.toml has no package-data entry for hybrid.server.web"
    patterns = re.findall(r'"([^"]+)"', line.group(1))
    files = [p.relative_to(web.HERE).as_posix() for p in web.HERE.rglob("*") if p.is_file() and p.suffix != ".pyc"]
    shipped = [f for f in files if f.endswith(".py") or any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert sorted(shipped) == sorted(files)
    sizes = web.page_bytes()
    assert sizes["html"] > 1000 and sizes["app.js"] > 1000 and sum(sizes.values()) < 100_000


def test_other_origins_are_refused_unless_the_operator_allows_them(tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://search.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    same_origin_only = client_for(create_app(tmp_path / "a", config()), READER)
    assert "access-control-allow-origin" not in same_origin_only.options("/v1/tables", headers=preflight).headers
    got = same_origin_only.get("/v1/tables", headers={"Origin": "https://search.example.com"})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers
    allowed = client_for(create_app(tmp_path / "b", config(cors_origins=("https://search.example.com",))), READER)
    answer = allowed.options("/v1/tables", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://search.example.com"
    other = allowed.options("/v1/tables", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    with pytest.raises(ConfigError, match="cors_origins"):
        ServerConfig(cors_origins=("search.example.com/path",))


def test_tune_status_names_the_enabled_run(tmp_path: Path) -> None:
    import hybrid

    app = create_app(tmp_path / "db", config())
    with client_for(app, ADMIN) as c:
        assert c.post("/v1/tables", json={"name": "t", "rows": rows(0, 5)}).status_code == 201
        status = c.get("/v1/tables/t/tune").json()
        assert status["enabled"] == {} and status["runs"] == []
        report = {
            "run": "0001",
            "created": "2026-12-06T12:00:00+00:00",
            "queries": {"train": 8, "held_out": 4},
            "decisions": [{"part": "fusion", "accepted": True, "baseline": 0.5, "candidate": 0.6, "p_value": 0.01}],
            "learned": {"run": "0001", "fusion": {"kind": "linear", "alpha": 0.4}},
        }
        folder = tmp_path / "db" / "t__tuned" / "0001"
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps(report))
        hybrid.connect(tmp_path / "db").open_table("t").use_tuned("0001")
        status = c.get("/v1/tables/t/tune").json()
        assert status["enabled"] == {"run": "0001", "fusion": {"kind": "linear", "alpha": 0.4}}
        assert [(r["run"], r["enabled"]) for r in status["runs"]] == [("0001", True)]
        assert status["runs"][0]["decisions"][0]["accepted"] is True
        assert c.get("/v1/tables/nope/tune").status_code == 404
