"""The web page in a real headless Chromium against a real ``hybrid serve`` (uvicorn on loopback)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hybrid.server import ApiKey, ServerConfig, create_app
from tests.server.conftest import running
from tests.web.conftest import ANSWER_PIECES, CHAT_KEY, READER, WRITER, FakeChat, Site
from tests.web.conftest import api as api_client

TIMEOUT = 30_000  # generous: CI machines and this shared one can be slow


@dataclass
class Tab:
    page: Any
    site: Site
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def login(self, key: str) -> None:
        self.page.goto(self.site.live.url + "/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_label("API key").press("Enter")
        self.page.locator("#table-summary").filter(has_text="rows").wait_for(timeout=TIMEOUT)

    def search(self, query: str, **controls: str) -> Any:
        p = self.page
        for name, value in controls.items():
            node = p.locator(f"#{name}")
            if node.evaluate("n => n.tagName") == "SELECT":
                node.select_option(value)
            else:
                node.fill(value)
        p.evaluate("() => ['search-status', 'search-error'].forEach(i => document.getElementById(i).textContent = '')")
        p.locator("#q").fill(query)
        p.locator("#q").press("Enter")
        p.locator("#search-status, #search-error").filter(has_text=re.compile(r"results|:")).first.wait_for(
            timeout=TIMEOUT
        )
        return p.locator("#results > li.result")

    def shot(self, name: str) -> None:
        path = self.site.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    t = Tab(page, site)
    page.on("dialog", lambda d: (t.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: t.console_errors.append(m.text) if m.type == "error" else None)
    yield t
    context.close()


def rowids(results: Any) -> list[int]:
    return [int(x) for x in results.evaluate_all("items => items.map(i => i.dataset.rowid)")]


def test_read_key_searches_in_each_mode_with_explanations(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    assert p.locator("#role-badge").inner_text() == "read key"
    summary = p.locator("#table-summary").inner_text()
    assert "45 rows" in summary and "fts (fts: text, title)" in summary and "vector ← text (hashing)" in summary
    p.locator("#feedback-count").filter(has_text="tune: library defaults; 0 tune runs").wait_for()
    assert p.evaluate("() => sessionStorage.getItem('hybrid.apiKey')") == READER
    assert READER not in p.url
    found_by = {}
    for mode in ("hybrid", "fts", "vector"):
        results = tab.search("rotate certificates", qtype=mode)
        assert results.count() == 10, mode
        first = results.first
        first.locator("details.why summary").click()
        why = first.locator("details.why").inner_text()
        found_by[mode] = why
        assert "fused score" in why
        if mode != "vector":
            marks = first.locator("mark").all_inner_texts()
            assert marks and {m.lower() for m in marks} <= {"rotate", "certificates"}, marks
        tab.shot(f"search-{mode}")
    assert "text (BM25)" in found_by["hybrid"] and "vector" in found_by["hybrid"]
    assert "found by: text (BM25)" in found_by["fts"] and "found by: vector" in found_by["vector"]
    # a read key sees no write action
    assert tab.page.locator(".feedback").count() == 0
    assert tab.dialogs == [] and not [e for e in tab.console_errors if "Content Security Policy" in e]


def test_fusion_reranker_and_plan(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    p.locator("#show-plan").check()
    results = tab.search("rotate keys", fusion="linear", alpha="0.3", rerank="mmr")
    assert results.count() == 10
    plan = p.locator("#plan").inner_text()
    assert "Linear(alpha=0.3" in plan and "rerank: MMRReranker" in plan
    results.first.locator("details.why summary").click()
    assert re.search(r"fused score \d+\.\d+ · reranker score", results.first.locator("details.why").inner_text())
    results = tab.search("rotate keys", fusion="rrf", **{"rrf-k": "5", "rerank": ""})
    assert "RRF(k=5" in p.locator("#plan").inner_text()


def test_filter_and_inline_errors(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    p.locator("#where-columns .chip", has_text="year").click()
    assert p.locator("#where").input_value() == "year"
    results = tab.search("rotate", where="year >= 2022 AND topic = 'keys'")
    assert results.count() > 0
    for item in results.all():
        fields = dict(zip(item.locator("dt").all_inner_texts(), item.locator("dd").all_inner_texts()))
        assert int(fields["year"]) >= 2022 and fields["topic"] == "keys"
    p.locator("#columns-box summary").click()
    p.get_by_label("title", exact=True).uncheck()
    assert results.first.locator("dt").all_inner_texts() == ["id", "text", "topic", "year"]
    results = tab.search("rotate", where="nope = 1")
    error = p.locator("#search-error")
    assert error.is_visible() and "FilterError" in error.inner_text() and "unknown column 'nope'" in error.inner_text()
    assert results.count() == 0
    tab.shot("search-bad-filter")
    tab.search("", where="")
    assert "query" in p.locator("#search-error").inner_text().lower()


def test_version_pin(tab: Tab) -> None:
    tab.login(READER)
    old, new = tab.site.versions
    newest = tab.search("runbook step 41", qtype="fts", limit="50")
    assert 41 in [int(t.split()[-1]) for t in newest.locator(".result-head strong").all_inner_texts() if "note" in t]
    pinned = tab.search("runbook step 41", qtype="fts", limit="50", version=str(old))
    assert f"from version {old}" in tab.page.locator("#search-status").inner_text()
    ids = [int(t.split()[-1]) for t in pinned.locator(".result-head strong").all_inner_texts() if "note" in t]
    assert ids and max(ids) < 40  # the rows added after `old` are not in it
    assert new > old


def test_compare_marks_rank_changes(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    p.locator("#tabs button[data-view='compare']").click()
    p.locator("#cq").fill("rotate keys safely")
    p.locator("#a-type").select_option("fts")
    p.locator("#b-type").select_option("hybrid")
    p.locator("#b-fusion").select_option("linear")
    p.locator("#b-param").fill("0.7")
    p.locator("#cq").press("Enter")
    a, b = p.locator("#compare-a > li.result"), p.locator("#compare-b > li.result")
    b.first.wait_for()
    ids_a, ids_b = rowids(a), rowids(b)
    assert len(ids_a) == len(ids_b) == 10 and ids_a != ids_b
    marks = b.locator(".change").all_inner_texts()
    for i, (rowid, mark) in enumerate(zip(ids_b, marks)):
        if rowid not in ids_a:
            assert mark == "new in B"
        else:
            moved = ids_a.index(rowid) - i
            assert mark == ("=" if moved == 0 else f"▲ {moved}" if moved > 0 else f"▼ {-moved}")
    dropped = [m for rowid, m in zip(ids_a, a.locator(".change").all_inner_texts()) if rowid not in ids_b]
    assert all(m == "dropped in B" for m in dropped)
    tab.shot("compare")


def test_chat_streams_a_cited_answer(tab: Tab, fake_chat: FakeChat) -> None:
    tab.login(READER)
    p = tab.page
    p.locator("#tabs button[data-view='chat']").click()
    assert "language model" in p.locator("#chat-mode").inner_text()
    before = len(fake_chat.requests)
    p.get_by_label("Question").fill("how do I rotate keys?")
    p.get_by_label("Question").press("Enter")
    p.locator("#answer[data-done='true']").wait_for()
    assert p.locator("#answer").inner_text() == "".join(ANSWER_PIECES)
    links = p.locator("#answer a.cite")
    assert links.all_inner_texts() == ["[1]", "[2]"] and links.first.get_attribute("href") == "#cite-1"
    assert p.locator("#citations > li").count() == 4
    cited = p.locator("#cite-1 .passage").inner_text()
    request = fake_chat.requests[before]
    assert request["stream"] is True and request["model"] == "fake-model"
    prompt = request["messages"][1]["content"]
    assert f"[1] {cited}" in prompt and "how do I rotate keys?" in prompt
    assert fake_chat.auth[before] == f"Bearer {CHAT_KEY}"
    assert CHAT_KEY not in p.content()
    links.first.click()
    assert p.url.endswith("#cite-1")
    tab.shot("chat")


def test_chat_without_a_model_answers_with_cited_passages(browser: Any, site: Site, fake_chat: FakeChat) -> None:
    """A server with no chat endpoint configured (same database): the extractive answer, cited, in the page."""
    config = ServerConfig(api_keys=(ApiKey.from_secret(READER, "read", "reader"),))
    db_path = site.live.db_path
    with running(create_app(db_path, config), db_path) as plain:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT)
            t = Tab(page, Site(plain, site.versions, site.shots))
            t.login(READER)
            page.locator("#tabs button[data-view='chat']").click()
            assert "Extractive answers" in page.locator("#chat-mode").inner_text()
            before = len(fake_chat.requests)
            page.get_by_label("Question").fill("how do I rotate backups?")
            page.get_by_label("Question").press("Enter")
            page.locator("#answer[data-done='true']").wait_for()
            assert len(fake_chat.requests) == before  # no model was asked
            passages = page.locator("#citations > li .passage").all_inner_texts()
            assert len(passages) == 4 and any("backups" in x for x in passages)
            links = page.locator("#answer a.cite")
            assert links.all_inner_texts() == ["[1]", "[2]", "[3]", "[4]"]
            answer = page.locator("#answer").inner_text()
            for n, passage in enumerate(passages, 1):  # each cited passage is quoted before its number
                assert passage.split()[0] in answer.split(f"[{n}]")[0]
            links.nth(1).click()
            assert page.url.endswith("#cite-2")
            t.shot("chat-extractive")
        finally:
            context.close()


def test_table_view(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    p.locator("#tabs button[data-view='table']").click()
    p.locator("#rows tbody tr").first.wait_for()
    schema = p.locator("#schema tbody").inner_text()
    assert "title" in schema and "fixed_size_list" in schema and "text (hashing)" in schema
    statuses = p.locator("#indexes tbody td:nth-child(4)").all_inner_texts()
    assert statuses == ["stale", "stale"]  # 4 rows were added after both indexes were built
    versions = p.locator("#versions tbody tr td:nth-child(2)").all_inner_texts()
    assert versions[0] == "append" and "create" in versions[-1]
    assert p.locator("#rows tbody tr").count() == 20
    assert "rows 1–20 of 45" in p.locator("#rows-where").inner_text()
    p.locator("#rows-next").click()
    p.locator("#rows-where").filter(has_text="rows 21–40").wait_for()
    assert "nDCG@10" in p.locator("#eval pre").inner_text()
    p.locator("#eval img.plot").wait_for()
    assert p.locator("#eval img.plot").evaluate("img => img.complete && img.naturalWidth") == 2
    tab.shot("table")


def test_hostile_rows_render_as_text(tab: Tab) -> None:
    tab.login(READER)
    p = tab.page
    results = tab.search("rotate javascript svg onload", qtype="fts", where="topic = 'xss'")
    assert results.count() == 1
    text = results.first.inner_text()
    assert "<script>window.__xss = 1</script>" in text and 'onerror="window.__xss = 2"' in text
    assert results.first.locator("img, script, svg").count() == 0
    p.locator("#tabs button[data-view='chat']").click()
    p.get_by_label("Question").fill("rotate javascript svg onload")
    p.get_by_label("Question").press("Enter")
    p.locator("#answer[data-done='true']").wait_for()
    p.locator("#tabs button[data-view='table']").click()
    p.locator("#rows-next").click()
    p.locator("#rows-next").click()
    p.locator("#rows tbody").filter(has_text="<script>").wait_for()
    p.wait_for_timeout(300)
    assert p.evaluate("() => window.__xss") is None
    assert tab.dialogs == []
    assert p.locator("main img:not(.plot), main script, main svg").count() == 0
    tab.shot("xss")


def test_keyboard_only_at_360px(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT)
    try:
        p.goto(site.live.url + "/")
        assert p.evaluate("() => document.activeElement.id") == "api-key"
        p.keyboard.type(READER)
        p.keyboard.press("Enter")
        p.locator("#table-summary").filter(has_text="rows").wait_for()
        p.wait_for_function("() => document.activeElement.id === 'q'")  # signed in, the query box has focus
        p.keyboard.type("rotate backups")
        p.keyboard.press("Enter")
        p.locator("#results > li.result").first.wait_for()
        for _ in range(40):  # Tab through the controls until the first result has focus
            p.keyboard.press("Tab")
            if p.evaluate("() => document.activeElement.classList.contains('result')"):
                break
        assert p.evaluate("() => document.activeElement.dataset.rowid") is not None
        width = p.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} px wide at a 360 px viewport"
        p.screenshot(path=str(site.shots / "search-360px.png"), full_page=False)
        print(f"screenshot: {site.shots / 'search-360px.png'}")
    finally:
        context.close()


def test_key_is_checked_and_forgotten(tab: Tab) -> None:
    p = tab.page
    p.goto(tab.site.live.url + "/")
    p.get_by_label("API key").fill("not-a-valid-key-at-all")
    p.get_by_label("API key").press("Enter")
    p.locator("#login-error").filter(has_text="the API key is not valid").wait_for()
    assert p.evaluate("() => sessionStorage.getItem('hybrid.apiKey')") is None
    tab.login(WRITER)
    assert p.locator("#role-badge").inner_text() == "write key"
    p.locator("#logout").click()
    assert p.locator("#login-view").is_visible()
    assert p.evaluate("() => sessionStorage.getItem('hybrid.apiKey')") is None


def test_feedback_with_a_write_key_refused_with_a_read_key(tab: Tab) -> None:
    writer = api_client(tab.site, WRITER)
    before = writer.get("/v1/tables/docs/feedback", params={"limit": 1000}).json()["count"]
    tab.login(WRITER)
    p = tab.page
    results = tab.search("rotate logging")
    assert results.first.locator(".feedback button").all_inner_texts() == ["Relevant", "Not relevant"]
    rowid = rowids(results)[1]
    results.nth(1).locator("button.fb-not-relevant").click()
    results.nth(1).locator(".feedback [role=status]").filter(has_text="saved").wait_for()
    assert results.nth(1).locator("button.fb-not-relevant").get_attribute("aria-pressed") == "true"
    p.locator("#feedback-count").filter(has_text=f"{before + 1} feedback").wait_for()
    kept = writer.get("/v1/tables/docs/feedback", params={"limit": 1000}).json()
    assert kept["count"] == before + 1
    last = kept["feedback"][-1]
    assert (last["query"], last["row"], last["label"], last["shown_rank"]) == ("rotate logging", rowid, 0, 2)
    assert last["source"] == "web"
    tab.shot("feedback")
    # a read key: no buttons, and the API refuses the same request sent with its key from the page
    p.locator("#logout").click()
    tab.login(READER)
    results = tab.search("rotate logging")
    assert results.first.locator(".feedback").count() == 0
    status = p.evaluate(
        """async (rowid) => (await fetch('/v1/tables/docs/feedback', {method: 'POST',
             headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('hybrid.apiKey'),
                       'Content-Type': 'application/json'},
             body: JSON.stringify({feedback: [{query: 'rotate logging', rowid, label: 1}]})})).status""",
        rowid,
    )
    assert status == 403
    assert writer.get("/v1/tables/docs/feedback", params={"limit": 1000}).json()["count"] == before + 1
