// The runs page: every run of the store in one table, filtered by the server with the same
// --where expressions as `replicator ls`, sorted and grouped here, selected for compare.
// Only the rows in view are in the DOM (fixed row height), so 10,000 runs stay fast.

import { getJSON, fetchDownload, withParams, runUrl, experimentUrl } from "./api.js";
import { start } from "./page.js";
import {
  h, clear, fmtValue, fmtTime, fmtDuration, statusBadge, toCSV, download, compareValues,
} from "./util.js";

const ROW_HEIGHT = 28; // px; app.css gives every row of table.runs this height
const OVERSCAN = 10;

const BASE_COLUMNS = [
  { key: "id", label: "id", cls: "col-id" },
  { key: "experiment", label: "experiment", cls: "col-text" },
  { key: "name", label: "name", cls: "col-text" },
  { key: "status", label: "status", cls: "col-status" },
  { key: "seed", label: "seed", cls: "col-num" },
  { key: "started", label: "started", cls: "col-time" },
  { key: "duration", label: "duration", cls: "col-num" },
];

const state = {
  runs: [],
  columns: [],
  items: [], // what the table shows, in order: {run} or {group, runs}
  sort: { key: "started", descending: true },
  grouped: false,
  selected: new Set(),
  where: "",
};

const $ = (id) => document.getElementById(id);

function value(run, key) {
  if (key.startsWith("config.")) return run.config ? run.config[key.slice(7)] : undefined;
  if (key.startsWith("summary.")) return run.summary ? run.summary[key.slice(8)] : undefined;
  return run[key];
}

function cellText(run, key) {
  const v = value(run, key);
  if (key === "started") return fmtTime(v);
  if (key === "duration") return fmtDuration(v);
  return fmtValue(v);
}

async function load() {
  const where = $("filter-input").value.trim();
  const body = await getJSON("/api/runs", { where }).catch((err) => {
    if (err.status !== 400) throw err;
    showFilterError(err.message);
    return null;
  });
  if (!body) return;
  showFilterError("");
  state.where = where;
  const url = withParams(location.pathname, { where: state.where });
  history.replaceState(null, "", url + location.hash);
  state.runs = body.runs;
  state.columns = [
    ...BASE_COLUMNS,
    ...body.config_keys.map((k) => ({ key: `config.${k}`, label: k, cls: "col-num", group: "config" })),
    ...body.summary_keys.map((k) => ({ key: `summary.${k}`, label: k, cls: "col-num", group: "summary" })),
  ];
  const n = body.runs.length;
  $("run-count").textContent = `${n} run${n === 1 ? "" : "s"}${state.where ? " match the filter" : ""}`;
  renderHead();
  arrange();
}

function showFilterError(message) {
  const box = $("filter-error");
  box.textContent = message;
  box.classList.toggle("hidden", !message);
  $("filter-input").classList.toggle("invalid", Boolean(message));
}

function renderHead() {
  const { key: sortKey, descending } = state.sort;
  const allSelected = state.runs.length > 0 && state.runs.every((r) => state.selected.has(r.id));
  const header = h("tr", {},
    h("th", { class: "col-select" },
      h("input", {
        type: "checkbox", "aria-label": "select all shown runs", checked: allSelected,
        onchange: (e) => selectMany(state.runs, e.target.checked),
      })),
    state.columns.map((col) =>
      h("th", {
        class: `${col.cls} sortable${col.group ? ` col-${col.group}` : ""}`,
        "data-testid": "sort-header",
        "data-key": col.key,
        "aria-sort": col.key === sortKey ? (descending ? "descending" : "ascending") : null,
        title: col.group ? `${col.group}.${col.label} (click to sort)` : "click to sort",
        onclick: () => sortBy(col.key),
      }, col.label, col.key === sortKey ? h("span", { class: "sort-mark" }, descending ? " ▼" : " ▲") : null)),
  );
  clear($("runs-head"), header);
}

function sortBy(key) {
  state.sort = state.sort.key === key ? { key, descending: !state.sort.descending } : { key, descending: false };
  renderHead();
  arrange();
}

function sortedRuns() {
  const { key, descending } = state.sort;
  const sign = descending ? -1 : 1;
  return [...state.runs].sort((a, b) => {
    const va = value(a, key);
    const vb = value(b, key);
    const missing = (v) => v === null || v === undefined || v === "";
    // Runs without the value go last whichever the direction.
    if (missing(va) || missing(vb)) return compareValues(va, vb);
    return sign * compareValues(va, vb) || compareValues(a.id, b.id);
  });
}

function arrange() {
  const runs = sortedRuns();
  if (!state.grouped) {
    state.items = runs.map((run) => ({ run }));
  } else {
    const groups = new Map();
    for (const run of runs) {
      const id = run.group || run.id;
      if (!groups.has(id)) groups.set(id, []);
      groups.get(id).push(run);
    }
    state.items = [];
    for (const [group, members] of groups) {
      state.items.push({ group, runs: members });
      for (const run of members) state.items.push({ run });
    }
  }
  const empty = $("runs-empty");
  empty.textContent = state.where ? `No run matches ${state.where}.` : "No runs in this store yet.";
  empty.classList.toggle("hidden", state.items.length > 0);
  renderRows(true);
  updateButtons();
}

function renderRows(force = false) {
  const scroller = $("table-scroll");
  const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const count = Math.ceil((scroller.clientHeight || 800) / ROW_HEIGHT) + 2 * OVERSCAN;
  const last = Math.min(state.items.length, first + count);
  if (!force && state.window && state.window[0] === first && state.window[1] === last) return;
  state.window = [first, last];
  const span = state.columns.length + 1;
  const top = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: span }));
  const bottom = h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: span }));
  top.style.height = `${first * ROW_HEIGHT}px`;
  bottom.style.height = `${(state.items.length - last) * ROW_HEIGHT}px`;
  const rows = state.items.slice(first, last).map((item) => (item.run ? runRow(item.run) : groupRow(item)));
  clear($("runs-body"), top, rows, bottom);
}

function runRow(run) {
  const damaged = run.damaged || run.status === "damaged";
  return h("tr", {
    class: `run${damaged ? " damaged" : ""}${state.selected.has(run.id) ? " selected" : ""}`,
    "data-testid": "runs-row",
    "data-run-id": run.id,
    title: damaged ? `damaged: ${run.damaged || "the run's files cannot be read"}` : null,
  },
    h("td", { class: "col-select" },
      h("input", {
        type: "checkbox", "aria-label": `select ${run.id}`, checked: state.selected.has(run.id),
        onchange: (e) => selectMany([run], e.target.checked),
      })),
    state.columns.map((col) => h("td", { class: col.cls }, cell(run, col.key))),
  );
}

function cell(run, key) {
  if (key === "id") return h("a", { href: runUrl(run.id) }, run.id);
  if (key === "experiment" && run.experiment) return h("a", { href: experimentUrl(run.experiment) }, run.experiment);
  if (key === "status") return statusBadge(run.damaged ? "damaged" : run.status);
  return cellText(run, key);
}

// A group's header row: its size and hash over the base columns, then its config values and the
// mean of each summary metric, aligned with the columns below.
function groupRow({ group, runs }) {
  const all = runs.every((r) => state.selected.has(r.id));
  const base = state.columns.filter((c) => !c.group).length;
  const mean = (key) => {
    const values = runs.map((r) => value(r, key)).filter((v) => typeof v === "number");
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  return h("tr", { class: "group", "data-testid": "group-row", "data-group": group },
    h("td", { class: "col-select" },
      h("input", {
        type: "checkbox", "aria-label": "select the group", checked: all,
        onchange: (e) => selectMany(runs, e.target.checked),
      })),
    h("td", { colspan: base },
      h("strong", {}, `${runs.length} run${runs.length === 1 ? "" : "s"}`),
      " · config ", h("code", {}, String(group).slice(0, 12))),
    state.columns.filter((c) => c.group).map((c) =>
      c.group === "config"
        ? h("td", { class: c.cls }, cellText(runs[0], c.key))
        : h("td", { class: `${c.cls} mean`, title: "mean over the group" }, fmtValue(mean(c.key)))),
  );
}

function selectMany(runs, on) {
  for (const run of runs) {
    if (on) state.selected.add(run.id);
    else state.selected.delete(run.id);
  }
  renderHead();
  renderRows(true);
  updateButtons();
}

function selectedIds() {
  // In table order, so that compare and the report list runs as the user sees them.
  return state.items.filter((i) => i.run && state.selected.has(i.run.id)).map((i) => i.run.id);
}

function updateButtons() {
  const n = state.selected.size;
  const compare = $("compare-button");
  compare.disabled = n < 2;
  compare.textContent = n ? `Compare (${n})` : "Compare";
  $("report-button").disabled = n < 1;
}

function exportCSV() {
  const runs = state.items.filter((i) => i.run).map((i) => i.run);
  const header = state.columns.map((c) => (c.group ? `${c.group}.${c.label}` : c.key));
  const rows = runs.map((run) => state.columns.map((c) => {
    const v = value(run, c.key);
    return c.key === "started" && v ? new Date(v * 1000).toISOString() : v;
  }));
  download("runs.csv", toCSV(header, rows));
}

async function downloadReport() {
  const button = $("report-button");
  const message = $("action-error");
  button.disabled = true;
  button.textContent = "Report...";
  message.classList.add("hidden");
  try {
    await fetchDownload(withParams("/api/export/report", { ids: selectedIds() }), "report.html");
  } catch (err) {
    message.textContent = `Report: ${err.message}`;
    message.classList.remove("hidden");
  } finally {
    button.textContent = "Report";
    updateButtons();
  }
}

start(async () => {
  const input = $("filter-input");
  input.value = new URLSearchParams(location.search).get("where") || "";
  $("filter-form").addEventListener("submit", (e) => {
    e.preventDefault();
    load().catch((err) => showFilterError(err.message));
  });
  $("group-toggle").addEventListener("change", (e) => {
    state.grouped = e.target.checked;
    arrange();
  });
  $("compare-button").addEventListener("click", () => {
    location.href = withParams("/compare", { ids: selectedIds() });
  });
  $("report-button").addEventListener("click", downloadReport);
  $("export-csv").addEventListener("click", exportCSV);
  $("table-scroll").addEventListener("scroll", () => renderRows(), { passive: true });
  window.addEventListener("resize", () => renderRows());
  await load();
});
