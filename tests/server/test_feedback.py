"""Feedback over real HTTP: the write role records, the read role lists, bad items are 400 and write nothing."""

from __future__ import annotations

import httpx

import hybrid
from tests.server.conftest import READER, WRITER, Live, make_table


def test_feedback_round_trip_and_roles(live: Live, admin: httpx.Client) -> None:
    make_table(admin, "fb_api", n=10, indexes=False)
    body = {"feedback": [{"query": "cats in gardens", "key": {"id": 3}, "label": 2, "shown_rank": 1},
                         {"query": "dogs", "rowid": 1, "label": 0, "kind": "click", "who": "web"}]}  # fmt: skip
    with live.client(READER) as reader:
        denied = reader.post("/v1/tables/fb_api/feedback", json=body)
        assert denied.status_code == 403
    with live.client(WRITER) as writer:
        r = writer.post("/v1/tables/fb_api/feedback", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["table"] == "fb_api__feedback" and r.json()["inserted"] == 2
    with live.client(READER) as reader:
        listed = reader.get("/v1/tables/fb_api/feedback").json()
    assert listed["count"] == 2
    assert [(f["query"], f["row"], f["label"], f["who"]) for f in listed["feedback"]] == [
        ("cats in gardens", 3, 2.0, None),
        ("dogs", 1, 0.0, "web"),
    ]
    # the library sees the same table
    t = hybrid.connect(live.db_path).open_table("fb_api")
    assert t.feedback.count() == 2
    with live.client(None) as anonymous:
        assert anonymous.get("/v1/tables/fb_api/feedback").status_code == 401


def test_bad_feedback_is_a_clear_error_and_writes_nothing(live: Live, admin: httpx.Client) -> None:
    make_table(admin, "fb_bad", n=5, indexes=False)
    ok = {"query": "q", "rowid": 0, "label": 1}
    cases = [
        ({"feedback": [ok, {"query": "q", "rowid": 99}]}, 400, "row 99 is not a live row"),
        ({"feedback": [{"query": "q", "key": {"id": 77}}]}, 400, "has id = 77"),
        ({"feedback": [{"query": "   ", "rowid": 0}]}, 400, "query is empty"),
        ({"feedback": [{"query": "q", "rowid": 0, "key": {"id": 0}}]}, 400, "rowid or by key"),
        ({"feedback": [{"query": "q", "rowid": 0, "label": 5}]}, 422, "label"),
        ({"feedback": [{"query": "", "rowid": 0}]}, 422, "query"),
    ]
    for body, status, text in cases:
        r = admin.post("/v1/tables/fb_bad/feedback", json=body)
        assert r.status_code == status, (body, r.text)
        assert text in r.text, r.text
    assert admin.get("/v1/tables/fb_bad/feedback").json()["count"] == 0
    assert admin.post("/v1/tables/missing/feedback", json={"feedback": [ok]}).status_code == 404
