// The experiment page: how a summary metric moves with each hyperparameter across the runs of one
// experiment (scatter, parallel coordinates), and the runs themselves as a table.

import { getJSON, withParams, pathTail, runUrl } from "./api.js";
import { start, setTitle } from "./page.js";
import { scatterPlot, parallelCoordinates } from "./plots.js";
import { nothing } from "./render.js";
import { h, clear, fmtNumber, fmtValue, toCSV, download } from "./util.js";

const TABLE_ROWS = 500; // rows drawn in the table; the CSV has all
const name = pathTail();
const state = { rows: [], configKeys: [], summaryKeys: [] };
const $ = (id) => document.getElementById(id);

start(async () => {
  setTitle(`Experiment ${name}`);
  $("runs-of-experiment").href = withParams("/", { where: `experiment == ${JSON.stringify(name)}` });
  const body = await getJSON(`/api/experiments/${encodeURIComponent(name)}/params`);
  state.rows = body.rows;
  state.configKeys = body.config_keys;
  state.summaryKeys = body.summary_keys;
  $("run-count").textContent = `${body.rows.length} runs`;
  fillSelect($("metric-key"), state.summaryKeys, new URLSearchParams(location.search).get("metric"));
  fillSelect($("param-key"), state.configKeys, new URLSearchParams(location.search).get("param"));
  $("metric-key").addEventListener("change", draw);
  $("param-key").addEventListener("change", draw);
  $("export-csv").addEventListener("click", exportCSV);
  draw();
});

function fillSelect(select, keys, wanted) {
  clear(select, keys.map((key) => h("option", { value: key }, key)));
  if (wanted && keys.includes(wanted)) select.value = wanted;
}

const pick = (id) => {
  location.href = runUrl(id);
};

function draw() {
  const metric = $("metric-key").value;
  const param = $("param-key").value;
  const url = withParams(location.pathname, { metric, param });
  history.replaceState(null, "", url);
  const usable = state.rows.filter((r) => typeof r.summary?.[metric] === "number" && Number.isFinite(r.summary[metric]));
  const left = state.rows.length - usable.length;
  $("plot-note").textContent = left ? `${left} run${left === 1 ? "" : "s"} without ${metric} left out` : "";
  drawScatter(usable, metric, param);
  drawParallel(usable, metric);
  drawTable(metric);
}

function drawScatter(rows, metric, param) {
  const host = $("scatter");
  if (!metric || !param) {
    clear(host, nothing(!metric ? "No summary metric recorded in this experiment." : "No config key varies between these runs."));
    return;
  }
  const points = rows.filter((r) => r.config?.[param] !== undefined).map((r) => ({
    id: r.id, x: r.config[param], y: r.summary[metric],
    title: `${r.id}\n${param} = ${fmtValue(r.config[param])}\n${metric} = ${fmtNumber(r.summary[metric])}\nseed ${r.seed ?? "?"}`,
  }));
  clear(host, points.length ? scatterPlot({ points, xLabel: param, yLabel: metric, onPick: pick }) : nothing());
  host.dataset.points = String(points.length);
}

function drawParallel(rows, metric) {
  const host = $("parallel-coords");
  if (!metric || !rows.length) {
    clear(host, nothing("Parallel coordinates need runs with a summary metric."));
    return;
  }
  const values = rows.map((r) => r.summary[metric]);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  $("scale-low").textContent = fmtNumber(lo);
  $("scale-high").textContent = `${fmtNumber(hi)} ${metric}`;
  const axes = [...state.configKeys.map((key) => ({ key, label: key })), { key: " metric", label: metric, metric: true }];
  const lines = rows.map((r) => ({
    id: r.id,
    values: { ...r.config, " metric": r.summary[metric] },
    color: hi > lo ? (r.summary[metric] - lo) / (hi - lo) : 0.5,
    title: `${r.id}: ${metric} = ${fmtNumber(r.summary[metric])}\n` +
      state.configKeys.map((k) => `${k} = ${fmtValue(r.config?.[k])}`).join("\n"),
  }));
  clear(host, parallelCoordinates({ rows: lines, axes, onPick: pick }));
  host.dataset.lines = String(lines.length);
}

function columns(metric) {
  const rest = state.summaryKeys.filter((k) => k !== metric);
  return [
    { label: "id", get: (r) => r.id },
    { label: "seed", get: (r) => r.seed },
    ...state.configKeys.map((k) => ({ label: k, get: (r) => r.config?.[k] })),
    ...[metric, ...rest].filter(Boolean).map((k) => ({ label: k, get: (r) => r.summary?.[k], metric: true })),
  ];
}

function drawTable(metric) {
  const cols = columns(metric);
  const rows = [...state.rows].sort((a, b) => (b.summary?.[metric] ?? -Infinity) - (a.summary?.[metric] ?? -Infinity));
  const shown = rows.slice(0, TABLE_ROWS);
  clear($("params-table"),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c.label)))),
      h("tbody", {}, shown.map((r) => h("tr", {}, cols.map((c, i) => h("td", { class: typeof c.get(r) === "number" ? "num" : null },
        i === 0 ? h("a", { href: runUrl(r.id) }, r.id) : fmtValue(c.get(r)))))))),
    rows.length > TABLE_ROWS ? nothing(`The first ${TABLE_ROWS} of ${rows.length} runs by ${metric}; Export CSV has all.`) : null);
}

function exportCSV() {
  const cols = columns($("metric-key").value);
  download(`${name}-runs.csv`, toCSV(cols.map((c) => c.label), state.rows.map((r) => cols.map((c) => c.get(r)))));
}
