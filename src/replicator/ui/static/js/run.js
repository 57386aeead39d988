// The run page: everything recorded for one run, its metric curves, and, while it runs, its
// curves, status and output updated from the server's event stream without a reload.

import { getJSON, withParams, pathTail, experimentUrl } from "./api.js";
import { lineChart, color } from "./chart.js";
import { start, setTitle } from "./page.js";
import { panel, kvTable, listTable, patchView, nothing, isEmpty } from "./render.js";
import { h, clear, fmtTime, fmtDuration, fmtNumber, fmtBytes, statusBadge } from "./util.js";

const POINTS = 2000; // per curve; the server downsamples longer series (LTTB, extremes kept)
const SHOWN_KEYS = 8; // curves drawn at first; the others are one click away
const TAIL = 200; // lines of stdout/stderr
const FINAL = new Set(["completed", "failed", "crashed", "interrupted", "damaged"]);

const runId = pathTail();
const api = `/api/runs/${encodeURIComponent(runId)}`;
const state = {
  run: null,
  series: {}, // key -> {step: [], value: [], total, downsampled}
  charts: {}, // key -> {plot, node}
  output: { stdout: [], stderr: [] },
  stream: "stdout",
  live: null,
  pending: false,
};

const $ = (id) => document.getElementById(id);

start(async () => {
  const run = await getJSON(api);
  state.run = run;
  const record = run.record || {};
  setTitle(record.name ? `${record.name} (${run.id})` : run.id);
  renderHeader(run);
  const sections = [
    metricsSection(run),
    outputSection(),
    h("div", { class: "grid-2" },
      panel("status", "Status history", statusHistory(run.status_history)),
      panel("summary", "Summary", kvTable(run.summary, { csvName: `${run.id}-summary.csv` }))),
    configSection(run),
    codeSection(run.code),
    h("div", { class: "grid-2" },
      panel("environment", "Environment", kvTable(run.environment, { csvName: `${run.id}-environment.csv` })),
      panel("hardware", "Hardware", kvTable(run.hardware))),
    h("div", { class: "grid-2" },
      panel("seeds", "Seeds", kvTable(run.seeds)),
      panel("datasets", "Datasets", listTable(run.datasets))),
    panel("outputs", "Outputs", listTable(run.outputs, { csvName: `${run.id}-outputs.csv` })),
    checkpointsSection(run.checkpoints),
    panel("record", "Record (run.json)",
      h("details", {}, h("summary", {}, "as recorded, secrets redacted"),
        h("pre", { class: "block" }, JSON.stringify(record, null, 2)))),
  ];
  clear($("sections"), sections);
  clear($("toc"), [...document.querySelectorAll("section.panel")].map((s) =>
    h("a", { href: `#${s.id}` }, s.querySelector("h2").firstChild.textContent)));
  await Promise.all([loadMetrics(initialKeys(run)), loadOutput()]);
  if (run.status === "running" && !run.damaged) openLive();
});

function renderHeader(run) {
  const record = run.record || {};
  const experiment = run.experiment ?? record.experiment;
  clear($("run-status"), statusBadge(run.damaged ? "damaged" : run.status, { "data-status": run.status }));
  if (experiment) {
    const link = $("experiment-link");
    link.href = experimentUrl(experiment);
    link.textContent = `Experiment ${experiment}`;
    link.classList.remove("hidden");
  }
  const fact = (label, value) => (value === null || value === undefined || value === "" ? null : h("span", {}, `${label} `, h("b", {}, value)));
  clear($("facts"),
    fact("experiment", experiment),
    fact("seed", run.seed ?? record.seed),
    fact("started", fmtTime(typeof run.started === "number" ? run.started : record.started)),
    h("span", { id: "duration-fact" }, fact("duration", fmtDuration(run.duration ?? record.duration_s))),
    fact("exit code", record.exit_code),
    fact("command", Array.isArray(record.command) ? record.command.join(" ") : record.command),
    fact("reproduction of", record.reproduction_of));
  if (run.damaged) {
    $("sections").before(h("div", { class: "error-box", "data-testid": "damaged" },
      `This run is damaged: ${String(run.damaged).replace(/\.*$/, "")}. What could be read is shown below.`));
  }
}

function statusHistory(history) {
  if (isEmpty(history)) return nothing();
  return listTable(history.map((entry) => ({ ...entry, time: fmtTime(entry.time) })));
}

// ---- metrics -------------------------------------------------------------------------------

function initialKeys(run) {
  return (run.metric_keys || []).slice(0, SHOWN_KEYS);
}

function metricsSection(run) {
  const keys = run.metric_keys || [];
  const shown = new Set(initialKeys(run));
  const picker = keys.length > SHOWN_KEYS
    ? h("div", { class: "key-picker" }, h("label", {}, "curves:"), keys.map((key) =>
      h("label", { class: "toggle" }, h("input", {
        type: "checkbox", checked: shown.has(key), value: key, onchange: (e) => toggleKey(key, e.target.checked),
      }), key)))
    : null;
  const csv = h("a", { href: `${api}/metrics.csv`, download: `${run.id}-metrics.csv` }, "Download all points (CSV)");
  return panel("metrics", "Metrics",
    h("div", { class: "toolbar" }, csv, h("span", { class: "muted" }, keys.length ? `${keys.length} key${keys.length === 1 ? "" : "s"}` : "")),
    picker,
    keys.length ? null : h("p", { class: "muted", id: "no-metrics" }, "No metric logged yet."),
    h("div", { class: "chart-grid", id: "charts" }));
}

async function loadMetrics(keys) {
  if (!keys.length) return;
  const body = await getJSON(`${api}/metrics`, { keys, points: POINTS });
  // The live stream starts where this answer ended, so no point is lost between the two.
  if (state.offset === undefined && body.offset !== undefined) state.offset = body.offset;
  for (const [key, series] of Object.entries(body.series)) {
    state.series[key] = { step: [...series.step], value: [...series.value], total: series.total, downsampled: series.downsampled };
    drawChart(key);
  }
}

function toggleKey(key, on) {
  if (!on) {
    const chart = state.charts[key];
    if (chart) {
      chart.plot.destroy();
      chart.node.remove();
      delete state.charts[key];
    }
    return;
  }
  if (state.series[key]) drawChart(key);
  else loadMetrics([key]);
}

function drawChart(key) {
  const series = state.series[key];
  let chart = state.charts[key];
  if (!chart) {
    const host = h("div", { class: "plot" });
    const node = h("div", { class: "chart", "data-testid": "metric-chart", "data-key": key },
      h("h3", {}, key), h("p", { class: "note" }), host);
    $("charts").append(node);
    $("no-metrics")?.remove();
    const index = Object.keys(state.charts).length;
    const plot = lineChart(host, { series: [{ label: key, color: color(index) }], data: [series.step, series.value] });
    chart = state.charts[key] = { plot, node };
  } else {
    chart.plot.setData([series.step, series.value]);
  }
  chart.node.dataset.points = String(series.step.length);
  const note = series.downsampled
    ? `${series.step.length.toLocaleString()} of ${series.total.toLocaleString()} points drawn (downsampled; the CSV has all)`
    : `${series.step.length.toLocaleString()} points`;
  chart.node.querySelector(".note").textContent = note;
}

// ---- live updates --------------------------------------------------------------------------

function openLive() {
  const source = new EventSource(withParams(`${api}/live`, { from: state.offset ?? 0 }));
  state.live = source;
  $("live-note").textContent = "live";
  source.addEventListener("metrics", (e) => appendPoints(JSON.parse(e.data)));
  source.addEventListener("output", (e) => appendOutput(JSON.parse(e.data)));
  source.addEventListener("status", (e) => {
    const { status, duration, damaged } = JSON.parse(e.data);
    if (damaged) state.run.damaged = damaged;
    clear($("run-status"), statusBadge(status, { "data-status": status }));
    if (duration !== null && duration !== undefined) {
      clear($("duration-fact"), "duration ", h("b", {}, fmtDuration(duration)));
    }
    // The server ends the stream after this event; closing it here would abort the request.
    if (FINAL.has(status)) state.ended = status;
  });
  source.addEventListener("end", (e) => {
    state.ended = JSON.parse(e.data).status || state.ended || "ended";
  });
  // The run resumed or its metrics file was replaced: what is drawn is no longer a prefix.
  source.addEventListener("resume", () => {
    const keys = Object.keys(state.charts);
    for (const key of keys) delete state.series[key];
    loadMetrics(keys).catch(() => {});
  });
  // The end of the stream (or a lost server) fires "error"; closing stops the browser from
  // reconnecting, which would replay the stream.
  source.addEventListener("error", () => closeLive(state.ended ? `run ${state.ended}` : "live updates stopped"));
  window.addEventListener("pagehide", () => closeLive(""));
}

function closeLive(note) {
  if (!state.live) return;
  state.live.close();
  state.live = null;
  $("live-note").textContent = note;
}

function appendPoints(update) {
  for (const [key, points] of Object.entries(update)) {
    let series = state.series[key];
    if (!series) {
      // A known key that is not drawn is fetched in full when it is picked.
      if (state.run.metric_keys.includes(key)) continue;
      state.run.metric_keys.push(key);
      series = state.series[key] = { step: [], value: [], total: 0, downsampled: false };
    }
    // A point the first fetch already had (logged while the stream was opening) is skipped.
    const last = series.step.length ? series.step[series.step.length - 1] : -Infinity;
    points.step.forEach((step, i) => {
      if (step <= last) return;
      series.step.push(step);
      series.value.push(points.value[i]);
      series.total += 1;
    });
  }
  if (state.pending) return;
  state.pending = true;
  requestAnimationFrame(() => {
    state.pending = false;
    const shown = Object.keys(state.charts);
    for (const key of Object.keys(update)) {
      if (state.series[key] && (state.charts[key] || shown.length < SHOWN_KEYS)) drawChart(key);
    }
  });
}

// ---- output --------------------------------------------------------------------------------

function outputSection() {
  const tab = (stream) => h("button", {
    type: "button", role: "tab", "data-stream": stream, "aria-selected": stream === state.stream ? "true" : "false",
    onclick: () => showStream(stream),
  }, stream);
  return panel("output", "Output",
    h("div", { class: "tabs", role: "tablist" }, tab("stdout"), tab("stderr"),
      h("span", { class: "muted", id: "output-size" })),
    h("pre", { class: "block output", "data-testid": "output-tail", id: "output-tail" }));
}

async function loadOutput() {
  const [out, err] = await Promise.all(["stdout", "stderr"].map((stream) =>
    getJSON(`${api}/output`, { stream, tail: TAIL }).catch((e) => ({ lines: [], size: null, error: e.message }))));
  state.output.stdout = out.lines;
  state.output.stderr = err.lines;
  state.outputSize = { stdout: out.size, stderr: err.size };
  showStream(state.stream);
}

function showStream(stream) {
  state.stream = stream;
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-selected", button.dataset.stream === stream ? "true" : "false");
  }
  const lines = state.output[stream];
  const pre = $("output-tail");
  pre.textContent = lines.length ? lines.join("\n") : `(${stream} is empty)`;
  pre.scrollTop = pre.scrollHeight;
  const size = state.outputSize ? state.outputSize[stream] : null;
  $("output-size").textContent = size ? `last ${lines.length} lines of ${fmtBytes(size)}` : "";
}

function appendOutput({ stream, lines }) {
  const buffer = state.output[stream] || (state.output[stream] = []);
  buffer.push(...lines);
  if (buffer.length > TAIL * 5) buffer.splice(0, buffer.length - TAIL * 5);
  if (stream === state.stream) showStream(stream);
}

// ---- config, code, checkpoints -------------------------------------------------------------

function configSection(run) {
  const raw = run.config_raw || {};
  return panel("config", "Config",
    h("div", { class: "grid-2" },
      h("div", {}, h("h3", {}, "resolved"), kvTable(run.config, { fold: false, csvName: `${run.id}-config.csv` })),
      h("div", {}, h("h3", {}, "as written"),
        isEmpty(raw) ? nothing("No config file: the config came from the script or the command line.") : null,
        Object.entries(raw).map(([file, text]) => [h("h3", { class: "mono" }, file), h("pre", { class: "block" }, text)]))));
}

function codeSection(code) {
  if (isEmpty(code)) return panel("code", "Code", nothing());
  const facts = {
    commit: code.commit, branch: code.branch, dirty: code.dirty, "snapshot ref": code.snapshot_ref,
  };
  const files = code.changed_files || [];
  return panel("code", "Code",
    kvTable(facts, { fold: false }),
    h("h3", {}, `Files changed against the commit (${files.length})`),
    listTable(files, { columns: ["path", "change"] }),
    h("h3", {}, "Patch"),
    patchView(code.patch));
}

function checkpointsSection(checkpoints) {
  const files = (checkpoints && checkpoints.files) || [];
  if (!files.length) return panel("checkpoints", "Checkpoints", nothing("No checkpoints."));
  const rows = files.map((f) => h("tr", { "data-name": f.name },
    h("td", { class: "mono" }, f.name), h("td", { class: "num" }, f.step ?? ""), h("td", { class: "num" }, fmtNumber(f.metric)),
    h("td", { class: "num" }, fmtBytes(f.size)), h("td", {}, [f.latest ? "latest" : "", f.best ? "best" : ""].filter(Boolean).join(", ")),
    h("td", { class: "verdict" })));
  const verify = h("button", { type: "button", "data-testid": "verify-checkpoints" }, "Verify hashes");
  verify.addEventListener("click", async () => {
    verify.disabled = true;
    verify.textContent = "Verifying...";
    try {
      const body = await getJSON(checkpoints.verify_url || `${api}/checkpoints/verify`);
      for (const file of body.files) {
        const cell = document.querySelector(`#checkpoints tr[data-name="${CSS.escape(file.name)}"] .verdict`);
        if (cell) clear(cell, file.ok ? h("span", { class: "ok" }, "ok") : h("span", { class: "bad" }, file.problem || "bad"));
      }
      verify.textContent = "Verified";
    } catch (err) {
      verify.textContent = "Verify hashes";
      verify.disabled = false;
      verify.after(h("span", { class: "bad" }, ` ${err.message}`));
    }
  });
  return panel("checkpoints", "Checkpoints",
    h("div", { class: "toolbar" }, verify),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["file", "step", "metric", "size", "kept as", "hash check"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}
