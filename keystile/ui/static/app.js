/* keystile admin UI: a dependency-free single-page app on the admin JSON API.
 *
 * Security: the session lives in an HttpOnly cookie the page cannot read; the CSRF token is held
 * in memory only (never in web storage, never in the URL) and sent as x-keystile-csrf with every change.
 * A raw key exists only in the create/regenerate dialog that shows it once; closing the dialog
 * drops it. All text from the server goes into the page as text nodes, never parsed as markup.
 */
"use strict";

const state = { csrf: null, route: "overview" };
const app = document.getElementById("app");

/* ---------- tiny DOM helpers ---------- */

function h(tag, attrs, ...children) {
  const ns = tag.startsWith("svg:") ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "style" && typeof v === "object") for (const [p, val] of Object.entries(v)) el.style.setProperty(p.startsWith("--") ? p : p.replace(/[A-Z]/g, (m) => "-" + m.toLowerCase()), val);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const svg = (tag, attrs, ...children) => h("svg:" + tag, attrs, ...children);

const fmtMoney = (v) => "$" + (v || 0).toLocaleString("en-US", { minimumFractionDigits: v && v < 1 ? 4 : 2, maximumFractionDigits: v && v < 1 ? 6 : 2 });
const fmtInt = (v) => (v || 0).toLocaleString("en-US");
const fmtMs = (v) => (v === null || v === undefined ? "—" : v < 10 ? `${v.toFixed(1)} ms` : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`);
const fmtTime = (s) => (s ? new Date(typeof s === "number" ? s * 1000 : s).toLocaleString() : "—");
const short = (hash) => (hash ? hash.slice(0, 12) : "—");

const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;

function badge(text, kind) { return h("span", { class: `badge ${kind}` }, text); }

/* ---------- the API ---------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["content-type"] = "application/json";
    if (state.csrf) headers["x-keystile-csrf"] = state.csrf;
  }
  const response = await fetch(path, { method, headers, credentials: "same-origin", cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const text = await response.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || `HTTP ${response.status}`;
    if (response.status === 401 && path !== "/ui/login") { state.csrf = null; renderLogin(path === "/ui/session" ? "" : "Your session has ended; sign in again."); }
    throw new ApiError(response.status, message);
  }
  return data;
}

const qs = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
};

/* ---------- sign-in ---------- */

function renderLogin(message) {
  document.title = "Sign in · keystile admin";
  const error = h("div", { class: "error", role: "alert", hidden: !message }, message || "");
  const input = h("input", { id: "master-key", name: "master-key", type: "password", autocomplete: "off", required: true, spellcheck: "false", "aria-describedby": "master-key-hint" });
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      error.hidden = true;
      try {
        const data = await api("POST", "/ui/login", { key: input.value });
        input.value = "";
        state.csrf = data.csrf_token;
        go(location.hash.slice(2) || "overview");
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
        input.select();
      } finally {
        button.disabled = false;
      }
    },
  },
    h("div", { class: "field" }, h("label", { for: "master-key" }, "Master key"), input,
      h("span", { class: "hint", id: "master-key-hint" }, "The key printed when keystile first started, or KEYSTILE_MASTER_KEY.")),
    error, button);
  app.replaceChildren(h("div", { class: "login" }, h("main", { class: "panel", id: "main" },
    h("h1", {}, h("img", { src: "/ui/static/logo.svg", alt: "" }), "keystile admin"),
    h("p", { class: "sub" }, "Sign in to see and steer your gateway."), form,
    h("p", { class: "foot" }, "The session lasts 30 minutes without use, 12 hours at most. The key is not stored in this browser."))));
  input.focus();
}

async function signOut() {
  try { await api("POST", "/ui/logout"); } catch { /* the cookie is gone either way */ }
  state.csrf = null;
  location.hash = "#/overview";
  renderLogin("You are signed out.");
}

/* ---------- shell and routing ---------- */

const PAGES = [
  ["overview", "Overview"], ["keys", "Keys"], ["users", "Users"], ["teams", "Teams"],
  ["logs", "Spend logs"], ["deployments", "Deployments"], ["config", "Config"],
];

function go(route) { if (location.hash !== `#/${route}`) location.hash = `#/${route}`; else render(); }

function shell(active, content) {
  const nav = h("nav", { "aria-label": "Sections" }, PAGES.map(([id, label]) =>
    h("a", { href: `#/${id}`, "aria-current": id === active ? "page" : null }, label)));
  return h("div", { class: "shell" },
    h("aside", { class: "side" },
      h("div", { class: "brand" }, h("img", { src: "/ui/static/logo.svg", alt: "" }), "keystile"),
      nav,
      h("div", { class: "bottom" }, "Signed in with the master key",
        h("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out"))),
    h("main", { id: "main", tabindex: "-1" }, content));
}

async function render() {
  if (!state.csrf) {
    try { state.csrf = (await api("GET", "/ui/session")).csrf_token; } catch { return; }
  }
  const [route, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES.find(([id]) => id === route) ? route : "overview";
  const title = PAGES.find(([id]) => id === page)[1];
  document.title = `${title} · keystile admin`;
  const content = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  app.replaceChildren(shell(page, content));
  try {
    const view = await VIEWS[page](rest.map(decodeURIComponent));
    content.replaceChildren(view);
  } catch (e) {
    if (e.status === 401) return;
    content.replaceChildren(h("div", { class: "error", role: "alert" }, e.message));
  }
}

window.addEventListener("hashchange", render);

/* ---------- charts (SVG drawn here, no library) ---------- */

function niceStep(max) {
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 2.5 ? 2.5 : unit <= 5 ? 5 : 10) * power;
}

function lineChart(points, series, { height = 200, format = (v) => v, title, integer = false }) {
  const width = 640, left = 64, right = 24, top = 12, bottom = 26;
  const plotW = width - left - right, plotH = height - top - bottom;
  const peak = Math.max(0, ...series.flatMap((s) => points.map((p) => p[s.key] || 0)));
  let step = peak > 0 ? niceStep(peak) : 1;
  if (integer) step = Math.max(1, Math.ceil(step));
  const max = step * Math.max(1, Math.ceil(peak / step));
  const n = Math.max(points.length, 1);
  const x = (i) => left + (n === 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const y = (v) => top + plotH - (v / max) * plotH;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  for (let v = 0; v <= max + step / 2; v += step) {
    const yy = y(v);
    root.append(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: yy, y2: yy }));
    root.append(svg("text", { x: left - 8, y: yy + 4, "text-anchor": "end" }, format(v, step)));
  }
  const labels = Math.min(6, points.length);
  for (let j = 0; j < labels; j++) {
    const i = labels === 1 ? 0 : Math.round((j * (points.length - 1)) / (labels - 1));
    const d = new Date(points[i].ts * 1000);
    const text = points.length > 1 && points[points.length - 1].ts - points[0].ts > 2 * 86400
      ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
      : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    const anchor = labels > 1 && j === 0 ? "start" : labels > 1 && j === labels - 1 ? "end" : "middle";
    root.append(svg("text", { x: x(i), y: height - 6, "text-anchor": anchor }, text));
  }
  for (const s of series) {
    if (!points.length) break;
    const line = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join("");
    if (s.area) {
      root.append(svg("path", { d: `${line}L${x(points.length - 1).toFixed(1)},${top + plotH}L${x(0).toFixed(1)},${top + plotH}Z`, fill: s.color, "fill-opacity": "0.12" }));
    }
    root.append(svg("path", { d: line, fill: "none", stroke: s.color, "stroke-width": s.dash ? "1.6" : "2.2", "stroke-dasharray": s.dash ? "5 4" : null, "stroke-linejoin": "round" }));
    if (points.length <= 40) {
      points.forEach((p, i) => { if (p[s.key]) root.append(svg("circle", { cx: x(i), cy: y(p[s.key]), r: 3, fill: s.color },
        svg("title", {}, `${new Date(p.ts * 1000).toLocaleString()}: ${s.label} ${format(p[s.key], step / 10)}`))); });
    }
  }
  root.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotH, y2: top + plotH }));
  const legend = h("div", { class: "legend" }, series.map((s) => h("span", { style: { "--dot": s.color } }, s.label)));
  if (!points.length) return h("div", {}, root, h("p", { class: "empty" }, "No requests in this period yet."));
  return h("div", {}, root, legend);
}

const decimalsFor = (step) => Math.max(0, Math.min(8, -Math.floor(Math.log10(step || 1))));
const axisMoney = (v, step) => "$" + v.toFixed(decimalsFor(step));
const axisCount = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1000 ? `${(v / 1000).toFixed(v >= 1e4 ? 0 : 1)}k` : fmtInt(Math.round(v)));
// Ticks less than 1 ms apart keep the decimals that tell them apart (0.5 ms steps: 1.5 ms, not 2 ms twice).
const axisMs = (v, step) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s`
  : `${v.toFixed(step && step < 1 ? Math.min(3, Math.ceil(-Math.log10(step))) : 0)} ms`);

function barList(items, { value, label, format, color }) {
  if (!items.length) return h("p", { class: "empty" }, "Nothing yet.");
  const max = Math.max(1e-9, ...items.map(value));
  return h("div", { class: "bars", role: "list" }, items.map((it) => h("div", { class: "bar-row", role: "listitem" },
    h("span", { class: "name", title: label(it) }, label(it)),
    h("span", { class: "num" }, format(value(it))),
    h("div", { class: "bar-track", "aria-hidden": "true" }, h("div", { class: "bar-fill", style: { width: `${(100 * value(it)) / max}%`, "--bar": color } })))));
}

function meter(spend, budget) {
  if (!budget) return h("span", {}, fmtMoney(spend));
  const ratio = Math.min(1, spend / budget);
  return h("div", { title: `${Math.round(ratio * 100)}% of the budget` }, `${fmtMoney(spend)} / ${fmtMoney(budget)}`,
    h("div", { class: `meter${ratio > 0.8 ? " high" : ""}`, role: "meter", "aria-valuemin": 0, "aria-valuemax": budget, "aria-valuenow": spend, "aria-label": "budget used" },
      h("div", { style: { width: `${ratio * 100}%` } })));
}

/* ---------- dialogs ---------- */

function dialog(title, body, buttons, { onclose } = {}) {
  const dlg = h("dialog", { "aria-labelledby": "dialog-title" },
    h("div", { class: "dialog-head" }, h("h2", { id: "dialog-title" }, title),
      h("button", { type: "button", class: "small", "aria-label": "Close", onclick: () => dlg.close() }, "✕")),
    h("div", { class: "dialog-body" }, body),
    h("div", { class: "dialog-foot" }, buttons || h("button", { type: "button", onclick: () => dlg.close() }, "Close")));
  dlg.addEventListener("close", () => { dlg.remove(); if (onclose) onclose(); });
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

function confirmDialog(title, text, action, label = "Confirm") {
  return new Promise((resolve) => {
    let done = false;
    const dlg = dialog(title, h("p", {}, text), [
      h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"),
      h("button", { type: "button", class: action === "danger" ? "danger" : "primary", onclick: () => { done = true; dlg.close(); } }, label),
    ], { onclose: () => resolve(done) });
  });
}

/* ---------- forms ---------- */

function field(id, labelText, input, hint) {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, labelText), input, hint ? h("span", { class: "hint" }, hint) : null);
}

const LIMIT_FIELDS = [
  ["models", "Models", "comma-separated; empty: every model"],
  ["max_budget", "Budget (USD)", "empty: no budget"],
  ["budget_duration", "Budget period", "e.g. 30d; spend resets each period"],
  ["rpm_limit", "Requests per minute", ""],
  ["tpm_limit", "Tokens per minute", ""],
  ["max_parallel_requests", "Parallel requests", ""],
];

function limitInputs(prefix, record = {}) {
  const inputs = {};
  const els = LIMIT_FIELDS.map(([name, label, hint]) => {
    const value = name === "models" ? (record.models || []).join(", ") : record[name] ?? "";
    inputs[name] = h("input", { name, value, inputmode: ["max_budget", "rpm_limit", "tpm_limit", "max_parallel_requests"].includes(name) ? "decimal" : null });
    return field(`${prefix}-${name}`, label, inputs[name], hint);
  });
  return { els, inputs };
}

function readLimits(inputs, { forUpdate = false } = {}) {
  const out = {};
  for (const [name, input] of Object.entries(inputs)) {
    const raw = input.value.trim();
    if (name === "models") { out.models = raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : []; continue; }
    if (!raw) { if (forUpdate) out[name] = null; continue; }
    if (name === "budget_duration") out[name] = raw;
    else if (name === "max_budget") out[name] = Number(raw);
    else out[name] = Number.parseInt(raw, 10);
  }
  return out;
}

/* ---------- Overview ---------- */

const RANGES = { "24h": [86400, 3600], "7d": [7 * 86400, 86400], "30d": [30 * 86400, 86400] };

async function overviewView() {
  const range = sessionStorage.getItem("keystile-range") || "24h";
  const [span, bucket] = RANGES[range] || RANGES["24h"];
  const now = Date.now() / 1000;
  const start = Math.floor((now - span) / bucket) * bucket;
  const data = await api("GET", `/keystile/activity${qs({ start_date: start, end_date: Math.ceil(now), bucket })}`);
  const t = data.totals;
  const errorRate = t.requests ? (100 * t.errors) / t.requests : 0;
  const lat = data.series.filter((p) => p.latency_ms_avg !== null);
  const avgLatency = lat.length ? lat.reduce((a, p) => a + p.latency_ms_avg * p.requests, 0) / Math.max(1, lat.reduce((a, p) => a + p.requests, 0)) : null;
  // Fill empty buckets so the lines show quiet hours as zero, not as a straight jump.
  const points = [];
  const byTs = new Map(data.series.map((p) => [p.ts, p]));
  for (let ts = start; ts < now; ts += bucket) points.push(byTs.get(ts) || { ts, requests: 0, errors: 0, spend: 0, tokens: 0, latency_ms_avg: null, latency_ms_max: null });
  const rangeSelect = h("select", { onchange: (e) => { sessionStorage.setItem("keystile-range", e.target.value); render(); } },
    Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === range }, `Last ${r}`)));
  const stat = (label, value, note) => h("div", { class: "panel stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), note ? h("div", { class: "note" }, note) : null);
  const top = (title, items, labelOf, color) => h("section", { class: "panel", "aria-label": title }, h("h2", {}, title),
    barList(items, { value: (i) => i.spend || 0, label: labelOf, format: (v) => fmtMoney(v), color }));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Overview"), h("p", { class: "sub" }, "Traffic, spend, errors and latency through this gateway.")),
      field("range", "Period", rangeSelect)),
    h("div", { class: "grid cols-4" },
      stat("Requests", fmtInt(t.requests), `${fmtInt(t.tokens)} tokens`),
      stat("Spend", fmtMoney(t.spend), `last ${range}`),
      stat("Errors", fmtInt(t.errors), `${errorRate.toFixed(1)}% of requests`),
      stat("Mean latency", fmtMs(avgLatency), "answered requests")),
    h("div", { class: "grid cols-2 section" },
      h("section", { class: "panel" }, h("h2", {}, "Requests and errors"),
        lineChart(points, [{ key: "requests", label: "requests", color: "var(--c1)", area: true }, { key: "errors", label: "errors", color: "var(--c3)" }], { title: "Requests and errors over time", format: axisCount, integer: true })),
      h("section", { class: "panel" }, h("h2", {}, "Spend"),
        lineChart(points, [{ key: "spend", label: "spend (USD)", color: "var(--c2)", area: true }], { title: "Spend over time", format: axisMoney })),
      h("section", { class: "panel" }, h("h2", {}, "Latency"),
        lineChart(points.map((p) => ({ ...p, latency_ms_avg: p.latency_ms_avg || 0, latency_ms_max: p.latency_ms_max || 0 })),
          [{ key: "latency_ms_max", label: "slowest", color: "var(--c3)", dash: true }, { key: "latency_ms_avg", label: "mean", color: "var(--c4)", area: true }], { title: "Latency over time", format: axisMs })),
      h("section", { class: "panel" }, h("h2", {}, "Tokens"),
        lineChart(points, [{ key: "tokens", label: "tokens", color: "var(--c1)", area: true }], { title: "Tokens over time", format: axisCount, integer: true }))),
    h("div", { class: "grid cols-2 section" },
      top("Top keys", data.top.keys, (i) => i.key_alias || short(i.id), "var(--c1)"),
      top("Top models", data.top.models, (i) => i.id, "var(--c4)"),
      top("Top users", data.top.users, (i) => i.id, "var(--c2)"),
      top("Top teams", data.top.teams, (i) => i.id, "var(--c3)")));
}

/* ---------- Keys ---------- */

const KEY_PAGE = 20;

async function keysView() {
  const search = sessionStorage.getItem("keystile-key-search") || "";
  const page = Number(sessionStorage.getItem("keystile-key-page") || 1);
  const data = await api("GET", `/key/list${qs({ return_full_object: "true", page, size: KEY_PAGE, key_alias: search })}`);
  const searchInput = h("input", { type: "search", value: search, placeholder: "alias, key, user or team" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem("keystile-key-search", searchInput.value.trim()); sessionStorage.setItem("keystile-key-page", "1"); render(); } },
    field("key-search", "Search keys", searchInput), h("button", { type: "submit" }, "Search"));
  const rows = data.keys.map((k) => {
    const expired = k.expires && new Date(k.expires) < new Date();
    const status = k.blocked ? badge("blocked", "bad") : expired ? badge("expired", "warn") : badge("active", "ok");
    const limits = [k.rpm_limit && `${fmtInt(k.rpm_limit)} rpm`, k.tpm_limit && `${fmtInt(k.tpm_limit)} tpm`, k.max_parallel_requests && `${k.max_parallel_requests} parallel`].filter(Boolean).join(" · ") || "—";
    return h("tr", { "data-key": k.token },
      h("td", {}, h("strong", {}, k.key_alias || "(no alias)"), h("div", { class: "mono", style: { color: "var(--muted)" } }, k.key_name)),
      h("td", {}, status),
      h("td", {}, k.models.length ? k.models.join(", ") : "all"),
      h("td", {}, meter(k.spend, k.max_budget), k.budget_duration ? h("div", { class: "hint", style: { color: "var(--muted)", fontSize: "12px" } }, `per ${k.budget_duration}`) : null),
      h("td", {}, limits),
      h("td", {}, k.expires ? fmtTime(k.expires) : "never"),
      h("td", {}, h("div", { class: "actions" },
        h("button", { type: "button", class: "small", onclick: () => editKey(k) }, "Edit"),
        h("button", { type: "button", class: "small", onclick: () => blockKey(k) }, k.blocked ? "Unblock" : "Block"),
        h("button", { type: "button", class: "small", onclick: () => regenerateKey(k) }, "Regenerate"),
        h("button", { type: "button", class: "small danger", onclick: () => deleteKey(k) }, "Delete"))));
  });
  const pager = h("div", { class: "pager" }, `Page ${data.current_page} of ${data.total_pages} · ${plural(data.total_count, "key")}`,
    h("button", { type: "button", class: "small", disabled: page <= 1, onclick: () => { sessionStorage.setItem("keystile-key-page", String(page - 1)); render(); } }, "Previous"),
    h("button", { type: "button", class: "small", disabled: page >= data.total_pages, onclick: () => { sessionStorage.setItem("keystile-key-page", String(page + 1)); render(); } }, "Next"));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Keys"), h("p", { class: "sub" }, "Virtual keys: who may call which models, with what budget and limits.")),
      h("button", { type: "button", class: "primary", id: "create-key", onclick: createKey }, "Create key")),
    h("div", { class: "panel" }, form,
      rows.length ? h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "visually-hidden" }, "Keys"),
        h("thead", {}, h("tr", {}, ["Key", "Status", "Models", "Spend", "Limits", "Expires", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))) : h("p", { class: "empty" }, search ? "No key matches." : "No keys yet: create one."),
      pager));
}

function createKey() {
  const alias = h("input", { name: "key_alias" });
  const user = h("input", { name: "user_id" });
  const team = h("input", { name: "team_id" });
  const expiry = h("input", { name: "duration", placeholder: "e.g. 90d" });
  const { els, inputs } = limitInputs("new");
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "form-grid", id: "create-key-form" },
    field("new-key_alias", "Alias", alias, "a name you will recognise, e.g. alice-laptop"),
    field("new-duration", "Expires after", expiry, "empty: never"),
    field("new-user_id", "User", user), field("new-team_id", "Team", team), ...els, h("div", { class: "wide" }, error));
  const submit = h("button", { type: "submit", class: "primary", form: "create-key-form" }, "Create");
  const dlg = dialog("Create a key", form, [h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), submit]);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = readLimits(inputs);
    for (const [name, input] of Object.entries({ key_alias: alias, user_id: user, team_id: team, duration: expiry })) if (input.value.trim()) body[name] = input.value.trim();
    submit.disabled = true;
    try {
      const created = await api("POST", "/key/generate", body);
      dlg.close();
      showSecret("Your new key", created.key, created.key_alias);
    } catch (err) { error.textContent = err.message; error.hidden = false; submit.disabled = false; }
  });
  alias.focus();
}

function snippets(key) {
  const base = location.origin;
  return {
    "Claude Code": `export ANTHROPIC_BASE_URL=${base}\nexport ANTHROPIC_API_KEY=${key}\nclaude`,
    "Codex": `# ~/.codex/config.toml\nmodel_provider = "keystile"\n\n[model_providers.keystile]\nname = "keystile"\nbase_url = "${base}/v1"\nenv_key = "KEYSTILE_API_KEY"\nwire_api = "responses"\n\n# then, in your shell:\nexport KEYSTILE_API_KEY=${key}\ncodex`,
    "Gemini CLI": `export GOOGLE_GEMINI_BASE_URL=${base}\nexport GEMINI_API_KEY=${key}\ngemini`,
    "curl": `curl ${base}/v1/messages \\\n  -H "x-api-key: ${key}" \\\n  -H "anthropic-version: 2023-06-01" \\\n  -H "content-type: application/json" \\\n  -d '{"model": "<model>", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]}'`,
    "OpenAI SDK": `from openai import OpenAI\nclient = OpenAI(base_url="${base}/v1", api_key="${key}")`,
  };
}

function showSecret(title, key, alias) {
  const code = h("code", { id: "new-key-value" }, key);
  const copied = h("span", { role: "status", class: "visually-hidden" });
  const copy = async (text, button) => {
    try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; copied.textContent = "Copied to the clipboard"; }
    catch { const range = document.createRange(); range.selectNodeContents(code); getSelection().removeAllRanges(); getSelection().addRange(range); button.textContent = "Selected: press Ctrl+C"; }
  };
  const copyButton = h("button", { type: "button", class: "small", id: "copy-key", onclick: (e) => copy(key, e.currentTarget) }, "Copy");
  const all = snippets(key);
  const names = Object.keys(all);
  const pre = h("pre", { class: "snippet", id: "snippet", tabindex: "0" }, all[names[0]]);
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "How to use it" }, names.map((name, i) =>
    h("button", { type: "button", role: "tab", "aria-selected": i === 0 ? "true" : "false", "aria-controls": "snippet",
      onclick: (e) => { for (const b of tabs.children) b.setAttribute("aria-selected", "false"); e.currentTarget.setAttribute("aria-selected", "true"); pre.textContent = all[name]; } }, name)));
  const copySnippet = h("button", { type: "button", class: "small", onclick: (e) => copy(pre.textContent, e.currentTarget) }, "Copy snippet");
  dialog(title, h("div", {},
    h("div", { class: "notice" }, `Copy ${alias ? `the key for ${alias}` : "this key"} now: keystile stores only its hash and will not show it again.`),
    h("div", { class: "secret" }, code, copyButton), copied,
    h("h2", { style: { marginTop: "18px" } }, "Use it"), tabs, pre, h("div", { style: { marginTop: "8px" } }, copySnippet)),
    null, { onclose: () => { code.textContent = ""; pre.textContent = ""; render(); } });
  copyButton.focus();
}

function editKey(k) {
  const alias = h("input", { name: "key_alias", value: k.key_alias || "" });
  const expiry = h("input", { name: "duration", placeholder: "e.g. 90d from now" });
  const { els, inputs } = limitInputs("edit", k);
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "form-grid", id: "edit-key-form" },
    field("edit-key_alias", "Alias", alias), field("edit-duration", "New expiry", expiry, k.expires ? `now: ${fmtTime(k.expires)}` : "now: never; empty keeps it"),
    ...els, h("div", { class: "wide" }, error));
  const submit = h("button", { type: "submit", class: "primary", form: "edit-key-form" }, "Save");
  const dlg = dialog(`Edit ${k.key_alias || k.key_name}`, form, [h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), submit]);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { key: k.token, ...readLimits(inputs, { forUpdate: true }), key_alias: alias.value.trim() || null };
    if (expiry.value.trim()) body.duration = expiry.value.trim();
    submit.disabled = true;
    try { await api("POST", "/key/update", body); dlg.close(); render(); }
    catch (err) { error.textContent = err.message; error.hidden = false; submit.disabled = false; }
  });
  alias.focus();
}

async function blockKey(k) {
  const verb = k.blocked ? "unblock" : "block";
  if (!k.blocked && !(await confirmDialog("Block this key?", `Requests with ${k.key_alias || k.key_name} will be refused from the next one on, on every instance.`, "danger", "Block"))) return;
  await api("POST", `/key/${verb}`, { key: k.token });
  render();
}

async function regenerateKey(k) {
  if (!(await confirmDialog("Regenerate this key?", `${k.key_alias || k.key_name} gets a new secret; the old one stops working at once. Limits and spend stay.`, "primary", "Regenerate"))) return;
  const data = await api("POST", `/key/${encodeURIComponent(k.token)}/regenerate`, {});
  showSecret("The key's new secret", data.key, data.key_alias);
}

async function deleteKey(k) {
  if (!(await confirmDialog("Delete this key?", `${k.key_alias || k.key_name} will stop working and its record is removed. Its spend-log rows stay.`, "danger", "Delete"))) return;
  await api("POST", "/key/delete", { keys: [k.token] });
  render();
}

/* ---------- Users ---------- */

async function usersView() {
  const data = await api("GET", "/user/list?page_size=500");
  const rows = data.users.map((u) => h("tr", {},
    h("td", {}, h("strong", {}, u.user_id), u.user_alias ? h("div", { style: { color: "var(--muted)" } }, u.user_alias) : null),
    h("td", {}, u.user_email || "—"),
    h("td", {}, meter(u.spend, u.max_budget)),
    h("td", {}, u.models.length ? u.models.join(", ") : "all"),
    h("td", {}, h("div", { class: "actions" },
      h("button", { type: "button", class: "small", onclick: () => userDetail(u.user_id) }, "Keys and spend"),
      h("button", { type: "button", class: "small danger", onclick: async () => {
        if (await confirmDialog("Delete this user?", `${u.user_id} and their keys will be deleted.`, "danger", "Delete")) { await api("POST", "/user/delete", { user_ids: [u.user_id] }); render(); }
      } }, "Delete")))));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Users"), h("p", { class: "sub" }, "People or services; their keys share their budget and limits.")),
      h("button", { type: "button", class: "primary", onclick: createUser }, "Create user")),
    h("div", { class: "panel" }, rows.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["User", "Email", "Spend", "Models", ""].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)))
      : h("p", { class: "empty" }, "No users yet.")));
}

function createUser() {
  const id = h("input", { name: "user_id", required: true });
  const alias = h("input", { name: "user_alias" });
  const email = h("input", { name: "user_email", type: "email" });
  const { els, inputs } = limitInputs("user");
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "form-grid", id: "create-user-form" }, field("user-id", "User id", id), field("user-alias", "Name", alias),
    field("user-email", "Email", email), ...els, h("div", { class: "wide" }, error));
  const submit = h("button", { type: "submit", class: "primary", form: "create-user-form" }, "Create");
  const dlg = dialog("Create a user", form, [h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), submit]);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { ...readLimits(inputs), user_id: id.value.trim(), auto_create_key: false };
    if (alias.value.trim()) body.user_alias = alias.value.trim();
    if (email.value.trim()) body.user_email = email.value.trim();
    try { await api("POST", "/user/new", body); dlg.close(); render(); } catch (err) { error.textContent = err.message; error.hidden = false; }
  });
  id.focus();
}

async function userDetail(userId) {
  const data = await api("GET", `/user/info${qs({ user_id: userId })}`);
  const u = data.user_info;
  dialog(`User ${u.user_id}`, h("div", {},
    h("dl", { class: "kv" }, h("dt", {}, "Spend"), h("dd", {}, meter(u.spend, u.max_budget)), h("dt", {}, "Teams"), h("dd", {}, (u.teams || []).join(", ") || "—")),
    h("h2", { style: { marginTop: "16px" } }, `Keys (${data.keys.length})`),
    keyTable(data.keys)));
}

function keyTable(keys) {
  if (!keys.length) return h("p", { class: "empty" }, "No keys.");
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Key", "Status", "Spend"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, keys.map((k) => h("tr", {}, h("td", {}, k.key_alias || k.key_name), h("td", {}, k.blocked ? badge("blocked", "bad") : badge("active", "ok")), h("td", {}, meter(k.spend, k.max_budget)))))));
}

/* ---------- Teams ---------- */

async function teamsView([teamId]) {
  if (teamId) return teamDetailView(teamId);
  const teams = await api("GET", "/team/list");
  const rows = teams.map((t) => h("tr", {},
    h("td", {}, h("a", { href: `#/teams/${encodeURIComponent(t.team_id)}` }, t.team_alias || t.team_id), t.team_alias ? h("div", { class: "mono", style: { color: "var(--muted)" } }, t.team_id) : null),
    h("td", {}, t.blocked ? badge("blocked", "bad") : badge("active", "ok")),
    h("td", {}, fmtInt(t.members.length)),
    h("td", {}, meter(t.spend, t.max_budget)),
    h("td", {}, t.models.length ? t.models.join(", ") : "all")));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Teams"), h("p", { class: "sub" }, "Groups of users and keys with a shared budget.")),
      h("button", { type: "button", class: "primary", onclick: createTeam }, "Create team")),
    h("div", { class: "panel" }, rows.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Team", "Status", "Members", "Spend", "Models"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)))
      : h("p", { class: "empty" }, "No teams yet.")));
}

async function teamDetailView(teamId) {
  const data = await api("GET", `/team/info${qs({ team_id: teamId })}`);
  const t = data.team_info;
  const toggle = h("button", { type: "button", onclick: async () => { await api("POST", t.blocked ? "/team/unblock" : "/team/block", { team_id: t.team_id }); render(); } }, t.blocked ? "Unblock team" : "Block team");
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("p", {}, h("a", { href: "#/teams" }, "← Teams")), h("h1", {}, t.team_alias || t.team_id), h("p", { class: "sub" }, `${plural(t.members.length, "member")} · ${plural(data.keys.length, "key")}`)), toggle),
    h("div", { class: "grid cols-3" },
      h("div", { class: "panel stat" }, h("div", { class: "label" }, "Spend"), h("div", { class: "value" }, fmtMoney(t.spend)), h("div", { class: "note" }, t.max_budget ? `of ${fmtMoney(t.max_budget)}${t.budget_duration ? ` per ${t.budget_duration}` : ""}` : "no budget")),
      h("div", { class: "panel stat" }, h("div", { class: "label" }, "Members"), h("div", { class: "value" }, fmtInt(t.members.length)), h("div", { class: "note" }, t.members.join(", ") || "none")),
      h("div", { class: "panel stat" }, h("div", { class: "label" }, "Status"), h("div", { class: "value" }, t.blocked ? "blocked" : "active"))),
    h("section", { class: "panel section" }, h("h2", {}, "Keys and their spend"),
      data.keys.length ? barList(data.keys, { value: (k) => k.spend || 0, label: (k) => k.key_alias || k.key_name, format: fmtMoney, color: "var(--c3)" }) : null,
      h("div", { style: { marginTop: "12px" } }, keyTable(data.keys))));
}

function createTeam() {
  const id = h("input", { name: "team_id" });
  const alias = h("input", { name: "team_alias" });
  const members = h("input", { name: "members", placeholder: "user ids, comma-separated" });
  const { els, inputs } = limitInputs("team");
  const error = h("div", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "form-grid", id: "create-team-form" }, field("team-alias", "Name", alias), field("team-id", "Team id", id, "empty: generated"),
    h("div", { class: "wide" }, field("team-members", "Members", members)), ...els, h("div", { class: "wide" }, error));
  const submit = h("button", { type: "submit", class: "primary", form: "create-team-form" }, "Create");
  const dlg = dialog("Create a team", form, [h("button", { type: "button", onclick: () => dlg.close() }, "Cancel"), submit]);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = readLimits(inputs);
    if (id.value.trim()) body.team_id = id.value.trim();
    if (alias.value.trim()) body.team_alias = alias.value.trim();
    const list = members.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (list.length) body.members = list;
    try { await api("POST", "/team/new", body); dlg.close(); render(); } catch (err) { error.textContent = err.message; error.hidden = false; }
  });
  alias.focus();
}

/* ---------- Spend logs ---------- */

const LOG_FILTERS = ["key", "user_id", "team_id", "model", "status_filter", "start_date", "end_date"];
const HASH = /^[0-9a-f]{64}$/;

async function logsView() {
  const filters = JSON.parse(sessionStorage.getItem("keystile-log-filters") || "{}");
  const page = Number(sessionStorage.getItem("keystile-log-page") || 1);
  const { key, ...rest } = filters;
  const query = { ...rest, page, page_size: 25 };
  if (key) query[HASH.test(key) ? "api_key" : "key_alias"] = key;
  const data = await api("GET", `/spend/logs/ui${qs(query)}`);
  const inputs = {};
  const labels = { key: "Key (alias or hash)", user_id: "User", team_id: "Team", model: "Model", status_filter: "Status", start_date: "From", end_date: "To" };
  const fields = LOG_FILTERS.map((name) => {
    inputs[name] = name === "status_filter"
      ? h("select", {}, [["", "any"], ["success", "success"], ["failure", "failure"]].map(([v, l]) => h("option", { value: v, selected: (filters[name] || "") === v }, l)))
      : h("input", { type: name.endsWith("date") ? "date" : "text", value: filters[name] || "" });
    return field(`log-${name}`, labels[name], inputs[name]);
  });
  const filterError = h("div", { class: "error", role: "alert", hidden: true });
  const apply = (e) => {
    e.preventDefault();
    const f = {};
    for (const n of LOG_FILTERS) if (inputs[n].value.trim()) f[n] = inputs[n].value.trim();
    if (f.key && f.key.startsWith("sk-")) {  // a raw key never goes into storage or a URL
      inputs.key.value = "";
      filterError.textContent = "Filter by the key's alias or its hash (shown in the Keys page), not by the key itself.";
      filterError.hidden = false;
      return;
    }
    sessionStorage.setItem("keystile-log-filters", JSON.stringify(f)); sessionStorage.setItem("keystile-log-page", "1"); render();
  };
  const rows = data.data.map((r) => h("tr", { class: "clickable", tabindex: "0", "data-request-id": r.request_id, onclick: () => logDetail(r), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); logDetail(r); } } },
    h("td", {}, fmtTime(r.ts)),
    h("td", {}, r.key_alias || (r.api_key ? short(r.api_key) : "master key")),
    h("td", {}, r.model, r.model_group && r.model_group !== r.model ? h("div", { style: { color: "var(--muted)", fontSize: "12px" } }, `→ ${r.model_group}`) : null),
    h("td", {}, r.status < 400 ? badge(String(r.status), "ok") : badge(String(r.status), r.status === 429 ? "warn" : "bad")),
    h("td", { class: "num" }, fmtInt(r.total_tokens)),
    h("td", { class: "num" }, fmtMoney(r.spend)),
    h("td", { class: "num" }, fmtMs(r.latency_ms)),
    h("td", {}, (r.request_tags || []).map((t) => badge(t, "info")))));
  const pager = h("div", { class: "pager" }, `Page ${data.page} of ${data.total_pages} · ${plural(data.total, "request")}`,
    h("button", { type: "button", class: "small", disabled: page <= 1, onclick: () => { sessionStorage.setItem("keystile-log-page", String(page - 1)); render(); } }, "Previous"),
    h("button", { type: "button", class: "small", disabled: page >= data.total_pages, onclick: () => { sessionStorage.setItem("keystile-log-page", String(page + 1)); render(); } }, "Next"));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Spend logs"), h("p", { class: "sub" }, "Every request: who, which model, what it cost. Select a row for its detail."))),
    h("div", { class: "panel" },
      h("form", { class: "filters", onsubmit: apply, "aria-label": "Filter the spend log" }, fields,
        h("button", { type: "submit" }, "Filter"),
        h("button", { type: "button", onclick: () => { sessionStorage.removeItem("keystile-log-filters"); sessionStorage.setItem("keystile-log-page", "1"); render(); } }, "Clear")),
      filterError,
      rows.length ? h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "visually-hidden" }, "Spend log"),
        h("thead", {}, h("tr", {}, ["Time", "Key", "Model", "Status", "Tokens", "Cost", "Latency", "Tags"].map((t, i) => h("th", { scope: "col", class: i >= 4 && i <= 6 ? "num" : null }, t)))),
        h("tbody", {}, rows))) : h("p", { class: "empty" }, "No requests match."),
      pager));
}

function logDetail(r) {
  const rows = [
    ["Request id", r.request_id], ["Started", fmtTime(r.startTime)], ["Ended", fmtTime(r.endTime)], ["Call type", r.call_type || "—"],
    ["Key", r.key_alias ? `${r.key_alias} (${short(r.api_key)})` : r.api_key ? short(r.api_key) : "master key"],
    ["User", r.user || "—"], ["Team", r.team_id || "—"], ["Model asked for", r.model], ["Model group", r.model_group || "—"],
    ["Deployment", r.deployment || "—"], ["Provider", r.provider || "—"], ["Status", String(r.status)], ["Attempts", String(r.attempts)],
    ["Stream", r.stream ? "yes" : "no"], ["Input tokens", fmtInt(r.prompt_tokens)], ["Output tokens", fmtInt(r.completion_tokens)],
    ["Cache read / write", `${fmtInt(r.cache_read_tokens)} / ${fmtInt(r.cache_write_tokens)}`], ["Cost", fmtMoney(r.spend)],
    ["Latency", fmtMs(r.latency_ms)], ["Tags", (r.request_tags || []).join(", ") || "—"],
  ];
  dialog("Request detail", h("div", {},
    h("dl", { class: "kv" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Request id" ? "mono" : null }, v)])),
    r.request ? h("div", { class: "section" }, h("h2", {}, "Request"), h("pre", { class: "json" }, r.request)) : null,
    r.response ? h("div", { class: "section" }, h("h2", {}, "Response"), h("pre", { class: "json" }, r.response)) : null));
}

/* ---------- Deployments ---------- */

async function deploymentsView() {
  const [health, groups] = await Promise.all([api("GET", "/health"), api("GET", "/model_group/info")]);
  const stateBadge = (s) => s === "healthy" ? badge("healthy", "ok") : s === "cooling_down" ? badge("cooling down", "bad") : badge(s || "unknown", "warn");
  const result = h("div", { role: "status" });
  const check = async (group, button) => {
    button.disabled = true; button.textContent = "Checking…";
    try {
      const live = await api("GET", `/health${qs({ model: group })}`);
      result.replaceChildren(h("div", { class: live.unhealthy_count ? "error" : "notice" },
        `${group}: ${live.healthy_count} healthy, ${live.unhealthy_count} unhealthy`,
        live.unhealthy_endpoints.map((e) => h("div", {}, `${e.model_id}: ${e.error}`))));
    } catch (e) { result.replaceChildren(h("div", { class: "error" }, e.message)); }
    button.disabled = false; button.textContent = "Check now";
  };
  const rows = health.deployments.map((d) => h("tr", {},
    h("td", {}, h("strong", {}, d.id), h("div", { style: { color: "var(--muted)", fontSize: "12px" } }, `${d.provider} · ${d.model || "(pass-through)"}`)),
    h("td", {}, d.model_group), h("td", {}, stateBadge(d.state)),
    h("td", { class: "num" }, d.latency_ms === null ? "—" : fmtMs(d.latency_ms)),
    h("td", { class: "num" }, `${(100 * d.error_rate).toFixed(1)}%`),
    h("td", { class: "num" }, fmtInt(d.inflight)),
    h("td", { class: "num" }, `${fmtInt(d.requests)} / ${fmtInt(d.failures)}`),
    h("td", {}, d.cooling_down_until ? fmtTime(d.cooling_down_until) : "—")));
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Deployments"), h("p", { class: "sub" }, `${health.healthy_count} healthy, ${health.unhealthy_count} unhealthy — as the router has seen them.`))),
    h("div", { class: "grid cols-3" }, groups.data.map((g) => h("div", { class: "panel" },
      h("h2", {}, g.model_group), h("p", { class: "sub", style: { marginBottom: "10px" } }, `${g.deployments} deployment${g.deployments === 1 ? "" : "s"} · ${g.providers.join(", ")} · ${g.strategy}`),
      h("button", { type: "button", class: "small", onclick: (e) => check(g.model_group, e.currentTarget) }, "Check now")))),
    h("div", { class: "section" }, result),
    h("div", { class: "panel section" }, h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "visually-hidden" }, "Deployments"),
      h("thead", {}, h("tr", {}, ["Deployment", "Group", "State", "Latency", "Errors", "In flight", "Requests / failures", "Cooling down until"].map((t, i) => h("th", { scope: "col", class: i >= 3 && i <= 6 ? "num" : null }, t)))),
      h("tbody", {}, rows)))));
}

/* ---------- Config ---------- */

function configValue(v) {
  const none = h("span", { style: { color: "var(--muted)" } }, "—");
  if (v === null || v === undefined) return none;
  if (Array.isArray(v) && v.every((x) => typeof x !== "object")) return v.length ? h("span", { class: "mono" }, v.join(", ")) : none;
  if (typeof v === "object" && !Object.keys(v).length) return none;
  if (typeof v === "object" && Object.values(v).every((x) => typeof x !== "object" || Array.isArray(x))) {
    return h("dl", { class: "kv" }, Object.entries(v).flatMap(([k, x]) => [h("dt", { class: "mono" }, k), h("dd", {}, Array.isArray(x) ? x.join(" → ") : String(x))]));
  }
  if (typeof v === "object") return h("pre", { class: "json" }, JSON.stringify(v, null, 2));
  return h("span", { class: typeof v === "string" ? "mono" : null }, String(v));
}

async function configView() {
  const c = await api("GET", "/keystile/config");
  const section = (title, obj) => h("section", { class: "panel section" }, h("h2", {}, title),
    h("dl", { class: "kv" }, Object.entries(obj).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, configValue(v))])));
  const models = [...c.models, ...c.runtime_models.map((m) => ({ ...m, added_at_run_time: true }))];
  return h("div", {},
    h("div", { class: "head" }, h("div", {}, h("h1", {}, "Configuration"), h("p", { class: "sub" }, `Read-only, as running now, from ${c.source || "the built-in default"} (${c.source_format}). Secrets are masked.`))),
    section("Gateway", { master_key: c.master_key, database_url: c.database_url, redis_url: c.redis_url, default_max_tokens: c.default_max_tokens, key_cache_ttl: c.key_cache_ttl, store_outage_grace: c.store_outage_grace, log_level: c.log_level }),
    h("section", { class: "panel section" }, h("h2", {}, `Models (${models.length})`), h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Id", "Provider", "Upstream model", "API base", "API key", "Source"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, models.map((m) => h("tr", {}, h("td", {}, m.model_name), h("td", { class: "mono" }, m.id), h("td", {}, m.provider), h("td", {}, m.model || "(as asked)"),
        h("td", { class: "mono" }, m.api_base || "—"), h("td", { class: "mono" }, m.api_key || "—"), h("td", {}, m.added_at_run_time ? badge("added at run time", "info") : "config file"))))))),
    h("div", { class: "grid cols-2" }, section("Router", c.router), h("div", {}, section("Server", c.server), section("Spend", c.spend), section("Upstream", c.upstream))),
    c.warnings.length ? section("Warnings", Object.fromEntries(c.warnings.map((w, i) => [String(i + 1), w]))) : null);
}

const VIEWS = { overview: overviewView, keys: keysView, users: usersView, teams: teamsView, logs: logsView, deployments: deploymentsView, config: configView };

render();
