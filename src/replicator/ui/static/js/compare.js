// The compare page: the ranked difference of `replicator diff` for 2..N runs (environment first),
// the changed files with their patch, each run's curve of one metric overlaid, and for runs that
// differ only by seed the mean with the same interval band as `replicator report`.

import { getJSON, fetchDownload, withParams, queryList, runUrl } from "./api.js";
import { lineChart, alignSeries, color, translucent } from "./chart.js";
import { start, setTitle, showError } from "./page.js";
import { panel, patchView, csvButton, nothing } from "./render.js";
import { h, clear } from "./util.js";

const POINTS = 1000;
const ids = queryList("ids");
const charts = [];
const $ = (id) => document.getElementById(id);

start(async () => {
  if (ids.length < 2) {
    throw new Error("Compare needs at least two runs: select them on the runs page, then press Compare.");
  }
  $("report-button").addEventListener("click", () => {
    fetchDownload(withParams("/api/export/report", { ids }), "report.html")
      .catch((err) => showError(`Report: ${err.message}`));
  });
  const body = await getJSON("/api/compare", { ids });
  setTitle(`Compare ${body.runs.length} runs`);
  renderDiff(body);
  const keys = body.metric_keys || [];
  const select = $("curve-key");
  clear(select, keys.map((key) => h("option", { value: key }, key)));
  if (!keys.length) {
    clear($("curve-note"), "These runs have no metric in common.");
    return;
  }
  select.value = keys.includes("loss") ? "loss" : keys[0];
  select.addEventListener("change", () => showCurves(select.value).catch(showCurveError));
  await showCurves(select.value);
});

function runLabel(run) {
  return run.name ? `${run.name} (seed ${run.seed ?? "?"})` : `${run.id}${run.seed !== null && run.seed !== undefined ? ` · seed ${run.seed}` : ""}`;
}

function renderDiff({ runs, sections }) {
  const head = h("tr", {}, h("th", {}, "key"),
    runs.map((run, i) => h("th", { class: `run-col run-${i}` }, h("a", { href: runUrl(run.id) }, run.id),
      h("div", { class: "muted" }, [run.experiment, run.name, run.seed !== null && run.seed !== undefined ? `seed ${run.seed}` : null].filter(Boolean).join(" · ")))));
  const panels = sections.map((section) => {
    const rows = section.rows || [];
    const files = section.changed_files || [];
    const slug = section.title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    return h("section", {
      class: "panel", id: `diff-${slug}`, "data-testid": "diff-section", "data-title": section.title,
    },
      h("h2", {}, section.title, h("span", { class: "muted" }, `${rows.length} difference${rows.length === 1 ? "" : "s"}`),
        rows.length
          ? h("span", { class: "actions" }, csvButton(`compare-${slug}.csv`, ["key", ...runs.map((r) => r.id)], rows.map((r) => [r.key, ...r.values])))
          : null),
      rows.length
        ? [h("table", { class: "list diff" }, h("thead", {}, head.cloneNode(true)),
            h("tbody", {}, rows.map((row) => h("tr", { class: new Set(row.values).size > 1 ? "differs" : null },
              h("th", { class: "mono" }, row.key), row.values.map((v) => h("td", { class: "value-cell" }, v ?? ""))))))]
        : null,
      files.length ? changedFiles(files) : null);
  });
  clear($("compare-diff"), panels.length ? panels : panel("diff-none", "Differences", nothing("These runs were recorded alike: no difference found.")));
}

function changedFiles(files) {
  return [
    h("h3", {}, `Changed files (${files.length})`),
    files.map((file) => h("details", { class: "changed-file", "data-path": file.path },
      h("summary", {}, h("code", {}, file.path), ` · ${file.change || "changed"}`, file.run ? ` · in ${file.run}` : ""),
      patchView(file.patch))),
  ];
}

async function showCurves(key) {
  $("curve-note").textContent = "loading...";
  const body = await getJSON("/api/compare/curves", { ids, key, points: POINTS });
  for (const plot of charts.splice(0)) plot.destroy();
  // Each run's curve, in the order the runs were given.
  const runIds = ids.filter((id) => body.runs[id]);
  const overlayHost = $("overlay-chart").querySelector(".plot");
  clear(overlayHost);
  charts.push(lineChart(overlayHost, {
    series: runIds.map((id, i) => ({ label: id, color: color(i) })),
    data: alignSeries(runIds.map((id) => body.runs[id])),
  }));
  $("overlay-chart").dataset.key = key;
  $("overlay-chart").dataset.series = String(runIds.length);
  // Seed groups: mean line, interval band between low and high.
  const groups = body.groups || [];
  const groupHost = $("group-chart").querySelector(".plot");
  clear(groupHost);
  $("group-chart").dataset.groups = String(groups.length);
  $("group-chart").querySelector("h3").textContent = `seed groups: ${body.band || "mean and interval"}`;
  if (groups.length) {
    const series = [];
    const columns = [];
    const bands = [];
    groups.forEach((g, i) => {
      const c = color(i);
      const base = series.length + 1;
      series.push({ label: `${g.label} (n=${g.n})`, color: c, width: 2 },
        { label: `${g.label} low`, color: translucent(c, 0.5), width: 0.5 },
        { label: `${g.label} high`, color: translucent(c, 0.5), width: 0.5 });
      columns.push({ step: g.step, value: g.mean }, { step: g.step, value: g.low }, { step: g.step, value: g.high });
      bands.push([base + 2, base + 1, translucent(c)]);
    });
    charts.push(lineChart(groupHost, { series, data: alignSeries(columns), bands }));
  } else {
    groupHost.append(nothing("No two of these runs differ only by their seed."));
  }
  const seeds = groups.filter((g) => g.n > 1).length;
  $("curve-note").textContent = `${runIds.length} runs, ${groups.length} config group${groups.length === 1 ? "" : "s"}` +
    (seeds ? `, ${seeds} with several seeds` : "");
}

function showCurveError(err) {
  $("curve-note").textContent = err.message;
}
