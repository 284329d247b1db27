// spendsentry dashboard: vanilla JS, inline SVG, no build step, no CDN.
// Reads /v1/* with fetch(); the token the user saved is sent as an Authorization header and kept
// in localStorage, never in a URL. The query string is the view: every parameter except
// group_by and window filters every panel (e.g. ?team=search).
"use strict";

const TOKEN_KEY = "spendsentry.token";
const REFRESH_MS = 5000;
const VIEW_PARAMS = ["group_by", "window"];
const SVG_NS = "http://www.w3.org/2000/svg";

const params = new URLSearchParams(location.search);
const lens = {};
for (const [name, value] of params) if (!VIEW_PARAMS.includes(name)) lens[name] = value;
const groupBy = params.get("group_by") || "model";
const windowText = params.get("window") || "6h";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

const usd = (v) => (v === null || v === undefined ? "–" : "$" + Number(v).toLocaleString(undefined, {maximumFractionDigits: 4}));
const keyText = (key) => Object.entries(key || {}).map(([k, v]) => `${k}=${v ?? "(untagged)"}`).join(", ");

function headers(json) {
  const out = json ? {"Content-Type": "application/json"} : {};
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) out.Authorization = "Bearer " + token;
  return out;
}

async function getJson(path) {
  const response = await fetch(path, {headers: headers(false)});
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${response.status} ${body.error || ""}`);
  return body;
}

function setStatus(text, isError) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

// -- spend charts --------------------------------------------------------------------------
function chart(series, from, to) {
  const W = 560, H = 140, L = 44, R = 6, T = 6, B = 16;
  const pts = series.points, band = series.expected || [];
  const top = Math.max(1e-9, ...pts.map((p) => p.cost_usd), ...band.map((e) => e.high));
  const x = (t) => L + ((t - from) / Math.max(1, to - from)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  const root = svg("svg", {class: "spark", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
                           "data-points": String(pts.length), "data-band": String(band.length)});
  root.append(svg("line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  const label = svg("text", {x: 2, y: T + 8});
  label.textContent = usd(top);
  root.append(label);
  if (band.length) {
    const upper = band.map((e) => `${x(e.t)},${y(e.high)}`);
    const lower = band.slice().reverse().map((e) => `${x(e.t)},${y(e.low)}`);
    root.append(svg("polygon", {class: "band", points: upper.concat(lower).join(" ")}));
    root.append(svg("polyline", {class: "expected", points: band.map((e) => `${x(e.t)},${y(e.expected)}`).join(" ")}));
  }
  root.append(svg("polyline", {class: "actual", points: pts.map((p) => `${x(p.t)},${y(p.cost_usd)}`).join(" ")}));
  return root;
}

function renderSpend(body) {
  const from = Date.parse(body.from) / 1000, to = Date.parse(body.to) / 1000;
  const charts = document.getElementById("charts");
  charts.replaceChildren(...body.series.map((s) => el("div", {class: "chart"},
    el("h3", {}, keyText(s.key), " ", el("span", {class: "muted"}, usd(s.cost_usd) + " in " + windowText,
      s.expected === null ? " · no detector on this grouping" : "")),
    chart(s, from, to))));
  if (!body.series.length) charts.replaceChildren(el("p", {class: "muted"}, "no spend in this view yet"));
  const units = document.getElementById("unit-table");
  units.replaceChildren(el("tr", {}, el("th", {}, body.group_by.join(", ")), el("th", {}, "spend"),
    el("th", {}, "per 1k tokens"), el("th", {}, "per request"), el("th", {}, "requests")),
    ...body.rows.map((r) => el("tr", {}, el("td", {}, keyText(r.key)), el("td", {}, usd(r.cost_usd)),
      el("td", {}, usd(r.cost_per_1k_tokens)), el("td", {}, usd(r.cost_per_request)), el("td", {}, r.requests))));
  const share = body.untagged.share;
  document.getElementById("untagged").textContent = body.untagged.required.length
    ? `untagged share ${share === null ? "–" : (share * 100).toFixed(1) + " %"} (required: ${body.untagged.required.join(", ")})`
    : "no required tags configured";
}

// -- alerts --------------------------------------------------------------------------------
function inLens(key, lensModels) {
  for (const [dim, value] of Object.entries(lens)) {
    if (dim in key) { if (key[dim] !== value) return false; }
    else if (!("model" in key) || !lensModels.has(key.model)) return false;
  }
  return true;
}

async function feedback(alertId, action) {
  const response = await fetch(`/v1/alerts/${encodeURIComponent(alertId)}/feedback`, {
    method: "POST", headers: headers(true), body: JSON.stringify({action, user: "dashboard"})});
  const body = await response.json().catch(() => ({}));
  setStatus(response.ok ? `${action}: ${body.state}` : `${action} refused: ${body.error || response.status}`, !response.ok);
  await refreshAlerts();
}

function renderAlert(record) {
  const a = record.alert;
  const driver = a.details && a.details.driver ? ` · driver: ${a.details.driver}` : "";
  const buttons = [["ack", "Acknowledge"], ["snooze", "Snooze 1h"], ["expected", "Expected"]].map(([action, text]) => {
    const button = el("button", {type: "button", "data-action": action, "data-alert": a.alert_id}, text);
    button.addEventListener("click", () => feedback(a.alert_id, action));
    return button;
  });
  const log = el("ul", {class: "log"},
    ...record.deliveries.map((d) => el("li", {}, `${new Date(d.at * 1000).toLocaleTimeString()} ${d.status} → ${d.sink}: `
      + (d.ok ? "delivered" : `failed (${d.error || d.http_status})`) + ` after ${d.attempts} attempt(s)`)),
    ...(record.feedback || []).map((f) => el("li", {class: "feedback"},
      `${new Date(f.at * 1000).toLocaleTimeString()} feedback: ${f.action} by ${f.user || "someone"}`)));
  return el("div", {class: `alert ${a.severity} ${a.status}`, "data-alert-id": a.alert_id},
    el("strong", {}, `${a.status.toUpperCase()} ${a.severity} `), `[${a.type}] ${a.summary}`,
    el("div", {class: "muted"}, `${keyText(a.key)} · observed ${usd(a.observed)} vs expected ${usd(a.expected)}${driver} · ${a.triggered_at}`),
    el("div", {}, ...buttons), log);
}

let lensModels = new Set();

async function refreshAlerts() {
  const body = await getJson("/v1/alerts?limit=50");
  const shown = body.alerts.filter((r) => inLens(r.alert.key, lensModels));
  const list = document.getElementById("alert-list");
  list.replaceChildren(...shown.map(renderAlert));
  if (!shown.length) list.replaceChildren(el("p", {class: "muted"}, "no alerts in this view"));
}

// -- budgets and forecasts -----------------------------------------------------------------
function budgetInLens(match) {
  return Object.entries(lens).every(([dim, value]) => match[dim] === value);
}

async function refreshBudgets() {
  const [budgets, forecasts] = await Promise.all([getJson("/v1/budgets"), getJson("/v1/forecast")]);
  const byId = Object.fromEntries(forecasts.forecasts.map((f) => [f.budget_id, f.forecast]));
  const list = budgets.budgets.filter((b) => budgetInLens(b.match || {}));
  const table = document.getElementById("budget-table");
  table.replaceChildren(el("tr", {}, ...["budget", "spent", "of", "burn rates", "runs out", "month-end forecast (80 %)"]
    .map((h) => el("th", {}, h))),
    ...list.map((b) => {
      const s = b.state || {}, f = byId[b.id];
      const burns = Object.entries(s.burn_rates || {}).map(([w, r]) => `${w} ${r}×`).join(" ");
      return el("tr", {"data-budget": b.id}, el("td", {}, b.name), el("td", {}, usd(s.spent_usd) + (s.pct !== undefined ? ` (${s.pct} %)` : "")),
        el("td", {}, usd(b.amount_usd)), el("td", {}, burns || "–"), el("td", {}, s.projected_exhaustion || "not this period"),
        el("td", {}, f ? `${usd(f.projected_usd)} (${usd(f.low_usd)} – ${usd(f.high_usd)})` : "–"));
    }));
  if (!list.length) table.replaceChildren(el("tr", {}, el("td", {class: "muted"}, "no budgets in this view")));
}

// -- GPU -----------------------------------------------------------------------------------
async function refreshGpu() {
  const box = document.getElementById("gpu-body");
  const response = await fetch("/v1/gpu", {headers: headers(false)});
  if (response.status === 404) { box.replaceChildren(el("p", {class: "muted"}, "GPU accounting is not running")); return; }
  const body = await response.json();
  const keys = body.keys.filter((k) => Object.entries(lens).every(([d, v]) => !(d in k.key) || k.key[d] === v));
  const idle = body.idle.filter((a) => Object.entries(lens).every(([d, v]) => !(d in a.key) || a.key[d] === v));
  const waste = idle.reduce((sum, a) => sum + Math.max(0, a.observed - a.expected), 0);
  box.replaceChildren(
    el("p", {}, `idle waste (firing idle alerts): ${usd(waste)} · ${idle.length} idle GPU key(s)`),
    el("table", {}, el("tr", {}, ...["key", "GPU-hours", "utilization", "cost", "per GPU-hour"].map((h) => el("th", {}, h))),
      ...keys.map((k) => el("tr", {}, el("td", {}, keyText(k.key)), el("td", {}, k.gpu_hours),
        el("td", {}, k.utilization === null ? "–" : (k.utilization * 100).toFixed(0) + " %"), el("td", {}, usd(k.cost_usd)),
        el("td", {}, usd(k.cost_per_gpu_hour))))),
    ...body.purchase_options.map((o) => el("p", {}, `${o.cluster} ${o.gpu_model}: `
      + (o.comparison ? JSON.stringify(o.comparison) : `no comparison (${o.reason})`))));
}

// -- loop ----------------------------------------------------------------------------------
async function refresh() {
  const query = new URLSearchParams({...lens, group_by: groupBy, window: windowText});
  try {
    renderSpend(await getJson("/v1/series?" + query));
    if (Object.keys(lens).length) {
      const models = await getJson("/v1/series?" + new URLSearchParams({...lens, group_by: "model", window: windowText}));
      lensModels = new Set(models.rows.map((r) => r.key.model));
    }
    await Promise.all([refreshAlerts(), refreshBudgets(), refreshGpu()]);
    setStatus("updated " + new Date().toLocaleTimeString(), false);
  } catch (error) {
    setStatus(String(error.message || error), true);
  }
}

function init() {
  document.getElementById("lens").replaceChildren(...Object.entries(lens).map(([d, v]) => el("span", {}, `${d}=${v}`)));
  const select = document.getElementById("group-by");
  select.value = groupBy;
  select.addEventListener("change", () => { params.set("group_by", select.value); location.search = params.toString(); });
  const input = document.getElementById("token");
  input.value = localStorage.getItem(TOKEN_KEY) || "";
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value);
    refresh();
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
}

init();
