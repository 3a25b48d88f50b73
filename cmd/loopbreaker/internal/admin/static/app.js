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

async function refresh() {
  try {
    const [status, blocks, top, events] = await Promise.all([
      api("GET", "/v1/status"), api("GET", "/v1/blocks"), api("GET", "/v1/top?n=20"), api("GET", "/v1/events?n=50"),
    ]);
    document.getElementById("mode").hidden = status.mode !== "monitor";
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
    fill("events", events.slice().reverse(), (row, e) => {
      cell(row, time(e.time)); cell(row, e.queue_id); actionCell(row, e.action, e.would_action); cell(row, e.rule);
      cell(row, e.key); cell(row, e.limit ? `${e.count}/${e.limit}` : e.count, "num"); cell(row, e.subject);
    });
    showError(null);
  } catch (e) {
    showError(e);
  }
}

refresh();
setInterval(refresh, 2000);
