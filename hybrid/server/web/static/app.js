// The hybrid web page: every call goes to this server's public /v1 API with the key the user typed.
// Values from tables only ever enter the page as text (textContent / text nodes), never as HTML.
"use strict";

const KEY = "hybrid.apiKey";
const ROLES = ["read", "write", "admin"];
const state = { role: null, features: null, table: null, info: null, rowsOffset: 0, lastResults: [], hidden: new Set() };
const $ = (id) => document.getElementById(id);

// -- DOM helpers: text only --------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function showError(id, error) {
  const node = $(id);
  node.textContent = error ? String(error.message || error) : "";
  show(node, Boolean(error));
}

function display(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fmt(x, digits = 4) {
  return typeof x === "number" ? x.toFixed(digits) : "–";
}

// -- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(`${type}: ${message}`);
    this.status = status;
    this.type = type;
  }
}

async function api(path, { method = "GET", body, key, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${key || sessionStorage.getItem(KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (!response.ok) {
    let type = `HTTP ${response.status}`;
    let message = response.statusText;
    try {
      const doc = await response.json();
      if (doc && doc.error) ({ type, message } = doc.error);
    } catch (_) {
      /* not JSON */
    }
    if (response.status === 401 && !key) logout(`${type}: ${message}`);
    throw new ApiError(response.status, type, message);
  }
  return raw ? response : response.json();
}

const tablePath = (suffix = "") => `/v1/tables/${encodeURIComponent(state.table)}${suffix}`;
const canWrite = () => state.role !== null && ROLES.indexOf(state.role) >= ROLES.indexOf("write");

// -- login ---------------------------------------------------------------------------------------

async function login(key) {
  const who = await api("/v1/whoami", { key });
  sessionStorage.setItem(KEY, key);
  state.role = who.role;
  state.features = who.features;
  $("role-badge").textContent = `${who.role} key`;
  document.body.dataset.role = who.role;
  for (const select of document.querySelectorAll("#rerank, .rerank-choice")) {
    clear(select).append(el("option", { value: "", text: "none" }));
    for (const name of who.features.rerankers) select.append(el("option", { value: name, text: name }));
  }
  $("chat-mode").textContent =
    who.features.chat === "llm"
      ? "Answers are written by the server's language model from the cited passages, streamed."
      : "Extractive answers: the best passages, cited (no language model is configured on the server).";
  show($("login-view"), false);
  show($("app"), true);
  show($("tabs"), true);
  show($("who"), true);
  await loadTables();
}

function logout(reason) {
  sessionStorage.removeItem(KEY);
  state.role = null;
  delete document.body.dataset.role;
  show($("app"), false);
  show($("tabs"), false);
  show($("who"), false);
  show($("login-view"), true);
  showError("login-error", reason || null);
  $("api-key").value = "";
  $("api-key").focus();
}

// -- tables, versions ----------------------------------------------------------------------------

async function loadTables() {
  const { tables } = await api("/v1/tables");
  const select = clear($("table"));
  for (const name of tables) select.append(el("option", { value: name, text: name }));
  if (tables.length === 0) {
    $("table-summary").textContent = "No tables yet: create one with the API or `hybrid ingest`.";
    return;
  }
  await selectTable(tables.includes(state.table) ? state.table : tables[0]);
}

async function selectTable(name) {
  state.table = name;
  $("table").value = name;
  const [info, versions] = await Promise.all([api(tablePath()), api(tablePath("/versions"))]);
  state.info = info;
  state.versions = versions.versions;
  const indexes = info.indexes.map((i) => `${i.name} (${i.kind}: ${i.columns.join(", ")})`);
  const embedders = Object.entries(info.embeddings).map(([col, e]) => `${col} ← ${e.source} (${e.embedder})`);
  const columns = info.columns.map((c) => c.name);
  $("table-summary").textContent =
    `${info.num_rows} rows · version ${info.version} · columns: ${columns.join(", ")} · ` +
    `indexes: ${indexes.join("; ") || "none"} · embedders: ${embedders.join("; ") || "none"}`;
  const list = clear($("column-names"));
  const chips = clear($("where-columns"));
  for (const c of info.columns.filter((c) => c.vector_dim === null)) {
    list.append(el("option", { value: c.name }));
    chips.append(el("button", { type: "button", class: "chip", text: c.name, title: `${c.type}: insert into the filter`, onclick: () => insertColumn(c.name) }));
  }
  state.hidden = new Set();
  const toggles = clear($("column-toggles"));
  for (const c of info.columns.filter((c) => c.vector_dim === null)) {
    const id = `show-column-${c.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const box = el("input", { type: "checkbox", id, checked: true });
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(c.name);
      else state.hidden.add(c.name);
      renderResults($("results"), state.lastResults, { full: true });
    });
    toggles.append(el("label", { for: id, class: "chip" }, box, ` ${c.name}`));
  }
  for (const select of document.querySelectorAll("#version, .version-choice")) {
    clear(select).append(el("option", { value: "", text: `latest (${info.version})` }));
    for (const v of [...versions.versions].reverse()) {
      select.append(el("option", { value: String(v.version), text: `v${v.version} · ${v.operation} · ${v.num_rows} rows` }));
    }
  }
  await loadFeedbackCount();
  if (currentView() === "table") await loadTableView();
}

function insertColumn(name) {
  const input = $("where");
  const at = input.selectionStart ?? input.value.length;
  const quoted = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
  input.value = input.value.slice(0, at) + quoted + input.value.slice(input.selectionEnd ?? at);
  input.focus();
}

function ftsColumn() {
  // the column whose matches are marked: the embedded text if the full-text index covers it, else its first
  const fts = state.info && state.info.indexes.find((i) => i.kind === "fts");
  if (!fts) return null;
  const sources = Object.values(state.info.embeddings).map((e) => e.source);
  return fts.columns.find((c) => sources.includes(c)) || fts.columns.find((c) => c === "text") || fts.columns[0];
}

// -- search --------------------------------------------------------------------------------------

function searchBody({ query, type, where, limit, fusion, param, rerank, version, explain }) {
  const body = { query: query || null, query_type: type, limit: Number(limit) || 10, explain: Boolean(explain) };
  if (where && where.trim()) body.where = where.trim();
  if (fusion === "rrf") body.fusion = { method: "rrf", k: Number(param) };
  else if (fusion === "linear") body.fusion = { method: "linear", alpha: Number(param) };
  else if (fusion === "dbsf") body.fusion = { method: "dbsf" };
  if (rerank) body.rerank = { name: rerank };
  if (version) body.version = Number(version);
  const column = ftsColumn();
  if (column && type !== "vector" && query) body.highlight = { column, width: 240 };
  return body;
}

async function runSearch(event) {
  event.preventDefault();
  const started = performance.now();
  const fusion = $("fusion").value;
  const body = searchBody({
    query: $("q").value,
    type: $("qtype").value,
    where: $("where").value,
    limit: $("limit").value,
    fusion,
    param: fusion === "rrf" ? $("rrf-k").value : $("alpha").value,
    rerank: $("rerank").value,
    version: $("version").value,
    explain: $("show-plan").checked,
  });
  showError("search-error", null);
  $("search-status").textContent = "searching…";
  try {
    const found = await api(tablePath("/search"), { method: "POST", body });
    state.lastResults = found.results;
    state.lastQuery = body.query;
    renderResults($("results"), found.results, { full: true });
    $("plan").textContent = found.explain || "";
    show($("plan"), Boolean(found.explain));
    requestAnimationFrame(() =>
      setTimeout(() => {
        const ms = performance.now() - started;
        document.body.dataset.lastSearchMs = ms.toFixed(1);
        $("search-status").textContent =
          `${found.count} results from version ${found.version} · ${ms.toFixed(0)} ms in the page, ${found.took_ms.toFixed(0)} ms on the server`;
      }, 0),
    );
  } catch (error) {
    clear($("results"));
    show($("plan"), false);
    $("search-status").textContent = "";
    showError("search-error", error);
  }
}

function branches(row) {
  const out = [];
  for (const key of Object.keys(row)) {
    if (key === "_fts_rank") out.push({ branch: "text (BM25)", rank: row._fts_rank, raw: row._bm25, rawName: "bm25" });
    if (key.startsWith("_vector_rank")) {
      const suffix = key.slice("_vector_rank".length);
      out.push({ branch: `vector${suffix ? " " + suffix.slice(1) : ""}`, rank: row[key], raw: row[`_distance${suffix}`], rawName: "distance" });
    }
  }
  return out;
}

function highlighted(text, row) {
  const chars = Array.from(text); // the server counts characters (code points)
  const win = row._highlight_window || { start: 0, end: chars.length };
  const spans = (row._highlight_spans || []).filter((s) => s.start >= win.start && s.end <= win.end);
  const node = el("span", { class: "snippet" });
  if (win.start > 0) node.append("…");
  let at = win.start;
  for (const s of spans) {
    node.append(chars.slice(at, s.start).join(""));
    node.append(el("mark", { text: chars.slice(s.start, s.end).join("") }));
    at = s.end;
  }
  node.append(chars.slice(at, win.end).join(""));
  if (win.end < chars.length) node.append("…");
  return node;
}

function explanation(row) {
  const found = branches(row);
  const table = el("table", { class: "grid why" }, el("thead", {}, el("tr", {}, el("th", { text: "branch" }), el("th", { text: "rank" }), el("th", { text: "raw score" }))));
  const body = el("tbody");
  for (const b of found) {
    body.append(el("tr", {}, el("td", { text: b.branch }), el("td", { text: b.rank ?? "not found" }), el("td", { text: b.raw === null || b.raw === undefined ? "–" : `${b.rawName} ${fmt(b.raw)}` })));
  }
  table.append(body);
  const lines = [el("p", { text: `found by: ${found.filter((b) => b.rank !== null && b.rank !== undefined).map((b) => b.branch).join(" + ") || "–"}` })];
  if (row._relevance_score !== undefined) {
    lines.push(el("p", { text: `fused score ${fmt(row._fused_score)} · reranker score ${fmt(row._relevance_score)}` }));
  } else {
    lines.push(el("p", { text: `fused score ${fmt(row._score)}` }));
  }
  return el("details", { class: "why" }, el("summary", { text: "why this rank" }), table, ...lines);
}

function titleOf(row) {
  for (const key of ["title", "name"]) if (typeof row[key] === "string" && row[key]) return row[key];
  for (const key of ["id", "source", "path"]) if (row[key] !== undefined && row[key] !== null) return `${key} ${display(row[key])}`;
  return `row ${row._rowid}`;
}

function renderResults(list, rows, { full = false, marks = null } = {}) {
  clear(list);
  const hl = ftsColumn();
  rows.forEach((row, i) => {
    const item = el("li", { class: "result", tabindex: 0, "data-rowid": row._rowid, "aria-label": `result ${i + 1}: ${titleOf(row)}` });
    const head = el("div", { class: "result-head" }, el("strong", { text: `${i + 1}. ${titleOf(row)}` }), el("span", { class: "score", text: `score ${fmt(row._score)}` }));
    if (marks) head.append(marks(row, i));
    item.append(head);
    if (full) {
      const fields = el("dl", { class: "fields" });
      for (const [key, value] of Object.entries(row)) {
        if (key.startsWith("_") || state.hidden.has(key)) continue;
        const shown = key === hl && row._highlight_spans ? highlighted(String(value ?? ""), row) : display(value);
        fields.append(el("dt", { text: key }), el("dd", {}, shown));
      }
      item.append(fields, explanation(row));
      if (canWrite()) item.append(feedbackControls(row, i + 1));
    } else {
      const text = hl && row[hl] ? String(row[hl]) : "";
      if (text) item.append(el("p", { class: "muted", text: text.length > 140 ? `${text.slice(0, 140)}…` : text }));
    }
    list.append(item);
  });
  if (rows.length === 0) list.append(el("li", { class: "muted", text: "no results" }));
}

// -- feedback (write keys) ------------------------------------------------------------------------

function feedbackControls(row, rank) {
  const status = el("span", { class: "muted", role: "status" });
  const box = el("div", { class: "feedback", role: "group", "aria-label": `feedback on result ${rank}` });
  const send = async (label, button) => {
    status.textContent = "saving…";
    try {
      const query = state.lastQuery || "";
      const body = { feedback: [{ query, rowid: row._rowid, label, source: "web", shown_rank: rank }] };
      await api(tablePath("/feedback"), { method: "POST", body });
      for (const b of box.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
      status.textContent = "saved";
      await loadFeedbackCount();
    } catch (error) {
      status.textContent = String(error.message);
      status.className = "error";
    }
  };
  const relevant = el("button", { type: "button", class: "fb-relevant", "aria-pressed": "false", text: "Relevant" });
  const not = el("button", { type: "button", class: "fb-not-relevant", "aria-pressed": "false", text: "Not relevant" });
  relevant.addEventListener("click", () => send(1, relevant));
  not.addEventListener("click", () => send(0, not));
  box.append(relevant, not, status);
  return box;
}

async function loadFeedbackCount() {
  const parts = [];
  try {
    const { count } = await api(tablePath("/feedback?limit=0"));
    parts.push(`${count} feedback judgment${count === 1 ? "" : "s"} on this table`);
  } catch (error) {
    if (error.status !== 404) parts.push(`feedback: ${error.message}`);
  }
  try {
    const tune = await api(tablePath("/tune"));
    const on = Object.keys(tune.enabled).filter((k) => k !== "run");
    const used = on.length ? `tune run ${tune.enabled.run} enabled (${on.join(" + ")})` : "tune: library defaults";
    parts.push(`${used}; ${tune.runs.length} tune run${tune.runs.length === 1 ? "" : "s"}`);
  } catch (error) {
    if (error.status !== 404) parts.push(`tune: ${error.message}`);
  }
  $("feedback-count").textContent = parts.join(" · ");
}

// -- compare -------------------------------------------------------------------------------------

function sideBody(side) {
  const fusion = $(`${side}-fusion`).value;
  return searchBody({
    query: $("cq").value,
    type: $(`${side}-type`).value,
    where: $("cwhere").value,
    limit: $("climit").value,
    fusion,
    param: $(`${side}-param`).value,
    rerank: $(`${side}-rerank`).value,
    version: $(`${side}-version`).value,
    explain: false,
  });
}

async function runCompare(event) {
  event.preventDefault();
  showError("compare-error", null);
  try {
    const [a, b] = await Promise.all([
      api(tablePath("/search"), { method: "POST", body: sideBody("a") }),
      api(tablePath("/search"), { method: "POST", body: sideBody("b") }),
    ]);
    const rankA = new Map(a.results.map((r, i) => [r._rowid, i]));
    const rankB = new Map(b.results.map((r, i) => [r._rowid, i]));
    renderResults($("compare-a"), a.results, {
      marks: (row) => (rankB.has(row._rowid) ? el("span", { class: "change same", text: `B: #${rankB.get(row._rowid) + 1}` }) : el("span", { class: "change down", text: "dropped in B" })),
    });
    renderResults($("compare-b"), b.results, {
      marks: (row, i) => {
        if (!rankA.has(row._rowid)) return el("span", { class: "change new", text: "new in B" });
        const moved = rankA.get(row._rowid) - i;
        if (moved > 0) return el("span", { class: "change up", text: `▲ ${moved}`, title: `up ${moved} from A` });
        if (moved < 0) return el("span", { class: "change down", text: `▼ ${-moved}`, title: `down ${-moved} from A` });
        return el("span", { class: "change same", text: "=", title: "same rank as in A" });
      },
    });
  } catch (error) {
    clear($("compare-a"));
    clear($("compare-b"));
    showError("compare-error", error);
  }
}

// -- chat ----------------------------------------------------------------------------------------

function renderAnswer(text) {
  const node = clear($("answer"));
  let at = 0;
  for (const m of text.matchAll(/\[(\d+)\]/g)) {
    node.append(text.slice(at, m.index));
    node.append(el("a", { href: `#cite-${m[1]}`, class: "cite", text: `[${m[1]}]` }));
    at = m.index + m[0].length;
  }
  node.append(text.slice(at));
}

function renderCitations(citations, column) {
  const list = clear($("citations"));
  for (const c of citations) {
    const item = el("li", { id: `cite-${c.n}`, class: "result", tabindex: 0, value: c.n });
    const fields = Object.entries(c.fields).map(([k, v]) => `${k}: ${display(v)}`).join(" · ");
    item.append(
      el("div", { class: "result-head" }, el("strong", { text: `[${c.n}] row ${c._rowid}` }), el("span", { class: "muted", text: fields })),
      el("p", { class: "passage", text: c.text }),
    );
    list.append(item);
  }
  list.dataset.column = column;
}

async function runChat(event) {
  event.preventDefault();
  showError("chat-error", null);
  clear($("answer"));
  clear($("citations"));
  const body = { question: $("question").value, passages: Number($("passages").value) || 4 };
  const version = $("version").value;
  if (version) body.version = Number(version);
  try {
    const response = await api(tablePath("/answer"), { method: "POST", body, raw: true });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let answer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line) continue;
        const ev = JSON.parse(line);
        if (ev.type === "citations") {
          renderCitations(ev.citations, ev.column);
          $("answer").dataset.mode = ev.mode;
        } else if (ev.type === "delta") {
          answer += ev.text;
          renderAnswer(answer);
        } else if (ev.type === "error") {
          showError("chat-error", ev.message);
        } else if (ev.type === "done") {
          $("answer").dataset.done = "true";
        }
      }
      if (done) break;
    }
  } catch (error) {
    showError("chat-error", error);
  }
}

// -- table view ----------------------------------------------------------------------------------

function fill(tbody, rows) {
  clear(tbody);
  for (const cells of rows) tbody.append(el("tr", {}, ...cells.map((c) => el("td", {}, c instanceof Node ? c : display(c)))));
}

async function loadRows() {
  const version = $("version").value;
  const query = new URLSearchParams({ offset: String(state.rowsOffset), limit: "20" });
  if (version) query.set("version", version);
  const page = await api(tablePath(`/rows?${query}`));
  const columns = page.rows.length ? Object.keys(page.rows[0]) : [];
  const head = clear($("rows").tHead);
  head.append(el("tr", {}, ...columns.map((c) => el("th", { text: c }))));
  fill($("rows").tBodies[0], page.rows.map((r) => columns.map((c) => {
    const text = display(r[c]);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  })));
  const last = Math.min(page.offset + page.rows.length, page.total);
  $("rows-where").textContent = `rows ${page.rows.length ? page.offset + 1 : 0}–${last} of ${page.total} (version ${page.version})`;
  $("rows-prev").disabled = page.offset === 0;
  $("rows-next").disabled = last >= page.total;
}

async function loadEval() {
  const nodes = []; // built apart, then swapped in at once: two loads at a time cannot interleave
  try {
    const report = await api(tablePath("/eval"));
    nodes.push(el("p", { class: "muted", text: `run ${report.run}, saved ${new Date(report.modified * 1000).toISOString()}` }));
    nodes.push(el("pre", { class: "plan", text: report.markdown.replace(/!\[[^\]]*\]\([^)]*\)\n?/g, "") }));
    for (const plot of report.plots) {
      const blob = await (await api(tablePath(`/eval/${encodeURIComponent(plot)}`), { raw: true })).blob();
      nodes.push(el("img", { src: URL.createObjectURL(blob), alt: `evaluation plot ${plot}`, class: "plot" }));
    }
  } catch (error) {
    nodes.push(el("p", { class: "muted", text: error.status === 404 ? "none saved for this table" : String(error.message) }));
  }
  $("eval").replaceChildren(...nodes);
}

async function loadTableView() {
  showError("table-error", null);
  try {
    const bound = Object.fromEntries(Object.entries(state.info.embeddings).map(([col, e]) => [col, `${e.source} (${e.embedder})`]));
    fill($("schema").tBodies[0], state.info.columns.map((c) => [c.name, c.type, c.nullable ? "yes" : "no", bound[c.name] || ""]));
    fill($("indexes").tBodies[0], state.info.indexes.map((i) => {
      const stale = i.unindexed_rows + i.dead_rows > 0;
      return [i.name, i.kind, i.columns.join(", "), el("span", { class: stale ? "stale" : "fresh", text: stale ? "stale" : "fresh" }), i.indexed_rows, i.unindexed_rows, i.dead_rows];
    }));
    fill($("versions").tBodies[0], [...state.versions].reverse().map((v) => [v.version, v.operation, v.timestamp.replace("T", " ").slice(0, 19), v.num_rows]));
    await loadRows();
    await loadEval();
  } catch (error) {
    showError("table-error", error);
  }
}

// -- views ---------------------------------------------------------------------------------------

function currentView() {
  const pressed = document.querySelector("#tabs button[aria-pressed='true']");
  return pressed ? pressed.dataset.view : "search";
}

async function switchView(name) {
  for (const button of document.querySelectorAll("#tabs button")) button.setAttribute("aria-pressed", String(button.dataset.view === name));
  for (const panel of document.querySelectorAll("[data-view-panel]")) show(panel, panel.dataset.viewPanel === name);
  if (name === "table" && state.table) await loadTableView();
}

function init() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("login-error", null);
    try {
      await login($("api-key").value.trim());
      $("q").focus();
    } catch (error) {
      showError("login-error", error);
    }
  });
  $("logout").addEventListener("click", () => logout(null));
  $("search-form").addEventListener("submit", runSearch);
  $("compare-form").addEventListener("submit", runCompare);
  $("chat-form").addEventListener("submit", runChat);
  $("table").addEventListener("change", () => selectTable($("table").value).catch((e) => showError("search-error", e)));
  $("version").addEventListener("change", () => currentView() === "table" && loadRows());
  $("rows-prev").addEventListener("click", () => { state.rowsOffset = Math.max(0, state.rowsOffset - 20); loadRows(); });
  $("rows-next").addEventListener("click", () => { state.rowsOffset += 20; loadRows(); });
  for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => switchView(button.dataset.view));
  const saved = sessionStorage.getItem(KEY);
  if (saved) login(saved).catch((error) => logout(String(error.message)));
  else $("api-key").focus();
}

document.addEventListener("DOMContentLoaded", init);
