// loopbreaker admin page: polls the admin API and renders it. No build step.
"use strict";

// A token (TCP admin listener) comes in the URL fragment once (#token=...)
// and is kept for the tab only.
(function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("lbToken", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
})();

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem("lbToken");
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

// actionCell shows an action; monitor mode's would-action as "would X"
// (nothing was, or is, done).
function actionCell(row, action, would) {
  if (would) cell(row, "would " + would, "would");
  else cell(row, action);
}

function time(s) { return s ? new Date(s).toLocaleString() : ""; }

function fill(id, rows, render) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const r of rows) render(body.insertRow(), r);
}

async function release(rule, key) {
  try {
    await api("POST", "/v1/release", { rule, key });
    await refresh();
  } catch (e) {
    showError(e);
  }
}

function showError(e) { document.getElementById("error").textContent = e ? String(e.message || e) : ""; }

// The chart: messages per minute by kind (stacked bars) over the last
// minutes the daemon remembers (GET /v1/timeline, up to 6 hours), with each
// block drawn over it as a translucent span (data-block-rule, data-block-key),
// as in the replay report. Inline SVG, drawn here; nothing is fetched.
const kindColors = { ordinary: "#9aa5b1", bounce: "#d64545", "forwarded-ndr": "#e8833a", "auto-reply": "#3a7be8" };
const ruleColors = ["#b8336a", "#2a9d8f", "#7b2cbf", "#e76f51", "#264653", "#6a994e", "#bc6c25"];
const SVG = "http://www.w3.org/2000/svg";

function svgEl(parent, name, attrs, title) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (title) {
    const t = document.createElementNS(SVG, "title");
    t.textContent = title;
    el.appendChild(t);
  }
  parent.appendChild(el);
  return el;
}

function hhmm(unix) { return new Date(unix * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); }

function drawTimeline(tl) {
  const svg = document.getElementById("timeline");
  svg.replaceChildren();
  const W = 1000, H = 240, px = 50, py = 30, pw = W - px - 10, ph = H - py - 30;
  const n = tl.counts.length;
  // Show from the first minute with mail or a block (30 minutes at least).
  let from = n - 30;
  const firstUsed = tl.counts.findIndex((c) => c.some((x) => x > 0));
  if (firstUsed >= 0) from = Math.min(from, firstUsed);
  for (const b of tl.blocks) {
    const i = Math.floor((Date.parse(b.since) / 1000 - tl.start) / tl.step);
    from = Math.min(from, Math.max(i, 0));
  }
  from = Math.max(from, 0);
  const shown = n - from, t0 = tl.start + from * tl.step, t1 = tl.start + n * tl.step;
  const xOf = (t) => px + (pw * (Math.min(Math.max(t, t0), t1) - t0)) / (t1 - t0);
  let peak = 1;
  for (let i = from; i < n; i++) peak = Math.max(peak, tl.counts[i].reduce((a, b) => a + b, 0));
  const barW = pw / shown;
  svgEl(svg, "line", { x1: px, y1: py + ph, x2: px + pw, y2: py + ph, stroke: "#999" });
  for (let i = from; i < n; i++) {
    let y = py + ph;
    tl.counts[i].forEach((c, k) => {
      if (!c) return;
      const h = (ph * c) / peak;
      y -= h;
      const kind = tl.kinds[k];
      svgEl(svg, "rect", { class: "bar", "data-kind": kind, x: px + barW * (i - from), y, width: Math.max(barW * 0.9, 0.5), height: h, fill: kindColors[kind] || "#666" },
        `${hhmm(tl.start + i * tl.step)}: ${c} ${kind}`);
    });
  }
  const rules = tl.rules || [];
  tl.blocks.forEach((b) => {
    const ri = Math.max(rules.indexOf(b.rule), 0);
    const since = Date.parse(b.since) / 1000, until = Date.parse(b.until) / 1000;
    const x = xOf(since), w = Math.max(xOf(until) - x, pw * 0.004);
    svgEl(svg, "rect", { class: "block", "data-block-rule": b.rule, "data-block-key": b.key, x, y: py, width: w, height: ph,
      fill: ruleColors[ri % ruleColors.length], "fill-opacity": 0.18, stroke: ruleColors[ri % ruleColors.length] },
      `${b.rule} ${b.key}: ${time(b.since)} to ${time(b.until)}${b.active ? " (in force)" : ""}, ${b.messages} messages`);
  });
  for (let i = 0; i <= 4; i++) {
    const f = i / 4;
    svgEl(svg, "text", { x: px - 6, y: py + ph * (1 - f) + 4, "text-anchor": "end" }).textContent = String(Math.round(peak * f));
    svgEl(svg, "text", { x: px + pw * f, y: py + ph + 16, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }).textContent = hhmm(t0 + f * (t1 - t0));
  }
  document.getElementById("timeline-range").textContent = `(last ${shown} minutes · ${tl.blocks.length} blocks)`;
  const legend = document.getElementById("timeline-legend");
  if (!legend.childElementCount) {
    for (const k of tl.kinds) {
      const s = document.createElement("span");
      const i = document.createElement("i");
      i.style.background = kindColors[k] || "#666";
      s.append(i, k);
      legend.appendChild(s);
    }
  }
}

async function refresh() {
  try {
    const [status, blocks, top, events, tl] = await Promise.all([
      api("GET", "/v1/status"), api("GET", "/v1/blocks"), api("GET", "/v1/top?n=20"), api("GET", "/v1/events?n=50"),
      api("GET", "/v1/timeline"),
    ]);
    drawTimeline(tl);
    document.getElementById("mode").hidden = status.mode !== "monitor";
    document.getElementById("name").textContent = status.name ? "· " + status.name : "";
    document.title = status.name ? "loopbreaker · " + status.name : "loopbreaker";
    document.getElementById("summary").textContent =
      `${status.policy} · ${status.mode || "enforce"} mode · ${status.rules.length} rules · ${status.tracked_keys} keys · ${status.active_blocks} blocks` +
      (status.backend && status.backend.name === "redis" ? ` · Redis ${status.backend.address}` : "") +
      (status.backend && status.backend.degraded ? " · DEGRADED: " + (status.backend.last_error || "state unavailable") : "");
    document.getElementById("block-count").textContent = `(${blocks.length})`;
    document.getElementById("no-blocks").hidden = blocks.length > 0;
    fill("blocks", blocks, (row, b) => {
      row.dataset.key = b.key;
      cell(row, b.rule); cell(row, b.key); actionCell(row, b.action, b.would_action); cell(row, time(b.since)); cell(row, time(b.until));
      cell(row, b.count, "num"); cell(row, (b.samples || [])[0]);
      const btn = document.createElement("button");
      btn.textContent = "Release";
      btn.className = "release";
      btn.addEventListener("click", () => release(b.rule, b.key));
      row.insertCell().appendChild(btn);
    });
    fill("top", top, (row, k) => { cell(row, k.rule); cell(row, k.key); cell(row, k.count, "num"); });
    // Daemons sharing a Redis share one trail: an MTA column says which
    // daemon decided, when an event carries its name.
    const fleet = events.some((e) => e.mta);
    document.getElementById("events-mta").hidden = !fleet;
    fill("events", events.slice().reverse(), (row, e) => {
      cell(row, time(e.time));
      if (fleet) cell(row, e.mta, "mta");
      cell(row, e.queue_id); actionCell(row, e.action, e.would_action); cell(row, e.rule);
      cell(row, e.key); cell(row, e.limit ? `${e.count}/${e.limit}` : e.count, "num"); cell(row, e.subject);
    });
    showError(null);
  } catch (e) {
    showError(e);
  }
}

refresh();
setInterval(refresh, 2000);
