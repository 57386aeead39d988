// Two small hand-written SVG plots for the experiment page: a scatter of one summary metric
// against one config key, and parallel coordinates over every varying config key and the metric.
// Axes are numeric (log when the values span more than two decades and are all positive) or
// categorical (strings, booleans: one evenly spaced position per value).

import { svg, fmtNumber, fmtValue } from "./util.js";

// A few stops of viridis: colour-blind safe and readable on white.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

export function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const mix = (k) => Math.round(VIRIDIS[i][k] + f * (VIRIDIS[i + 1][k] - VIRIDIS[i][k]));
  return `rgb(${mix(0)}, ${mix(1)}, ${mix(2)})`;
}

// A scale maps a value to [0, 1] and gives the ticks to draw.
export function makeScale(values, { allowLog = true } = {}) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length && present.every((v) => typeof v === "number" && Number.isFinite(v))) {
    let lo = Math.min(...present);
    let hi = Math.max(...present);
    const log = allowLog && lo > 0 && hi / lo > 30;
    if (log) {
      const [a, b] = [Math.log10(lo), Math.log10(hi)];
      const ticks = [];
      for (let p = Math.floor(a); p <= Math.ceil(b); p++) ticks.push(10 ** p);
      return {
        kind: "log", ticks: ticks.filter((t) => t >= lo / 1.0001 && t <= hi * 1.0001),
        at: (v) => (Math.log10(v) - a) / (b - a || 1), label: fmtNumber,
      };
    }
    if (lo === hi) {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
    const pad = (hi - lo) * 0.04; // points on the edge stay off the axis line
    lo -= pad;
    hi += pad;
    const ticks = niceTicks(lo, hi, 5);
    return { kind: "linear", ticks, at: (v) => (v - lo) / (hi - lo), label: fmtNumber };
  }
  const categories = [...new Set(present.map(fmtValue))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const n = categories.length;
  return {
    kind: "category", ticks: categories,
    at: (v) => (n === 1 ? 0.5 : categories.indexOf(fmtValue(v)) / (n - 1)), label: String,
  };
}

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

// points: [{id, x, y, title}]; x and y are raw values. onPick(id) is called on a click.
export function scatterPlot({ points, xLabel, yLabel, onPick }) {
  const W = 880, H = 420, L = 70, R = 20, T = 16, B = 56;
  const xs = makeScale(points.map((p) => p.x));
  const ys = makeScale(points.map((p) => p.y), { allowLog: false });
  const px = (v) => L + xs.at(v) * (W - L - R);
  const py = (v) => H - B - ys.at(v) * (H - T - B);
  const root = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${yLabel} against ${xLabel}` });
  for (const t of ys.ticks) {
    root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: py(t), y2: py(t) }),
      svg("text", { x: L - 6, y: py(t) + 4, "text-anchor": "end", text: ys.label(t) }));
  }
  for (const t of xs.ticks) {
    root.append(svg("line", { class: "grid", x1: px(t), x2: px(t), y1: T, y2: H - B }),
      svg("text", { x: px(t), y: H - B + 16, "text-anchor": "middle", text: xs.label(t) }));
  }
  root.append(
    svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    svg("text", { class: "axis-title", x: (L + W - R) / 2, y: H - 12, "text-anchor": "middle", text: xLabel + (xs.kind === "log" ? " (log)" : "") }),
    svg("text", { class: "axis-title", x: 14, y: (T + H - B) / 2, "text-anchor": "middle", transform: `rotate(-90 14 ${(T + H - B) / 2})`, text: yLabel }),
  );
  // The mean at each x value: with several seeds per setting, the trend is the line.
  const byX = new Map();
  for (const p of points) {
    const key = fmtValue(p.x);
    if (!byX.has(key)) byX.set(key, { x: p.x, ys: [] });
    byX.get(key).ys.push(p.y);
  }
  const means = [...byX.values()].map((g) => ({ x: g.x, y: g.ys.reduce((a, b) => a + b, 0) / g.ys.length }))
    .sort((a, b) => xs.at(a.x) - xs.at(b.x));
  if (means.length > 1 && points.length > means.length) {
    root.append(svg("path", {
      class: "mean-line", d: means.map((m, i) => `${i ? "L" : "M"}${px(m.x).toFixed(1)},${py(m.y).toFixed(1)}`).join(""),
      fill: "none", stroke: "#9ca3af", "stroke-width": 1.5, "stroke-dasharray": "4 3",
    }));
  }
  // Points at the same categorical x spread a little so that seeds do not hide each other.
  const jitter = xs.kind === "category" ? (W - L - R) / Math.max(xs.ticks.length, 2) / 6 : 0;
  points.forEach((p, i) => {
    const dx = jitter ? (((i * 2654435761) % 1000) / 1000 - 0.5) * jitter : 0;
    root.append(svg("circle", {
      class: "point", cx: (px(p.x) + dx).toFixed(1), cy: py(p.y).toFixed(1), r: 4.5, fill: "#2563eb",
      "data-run-id": p.id, onclick: () => onPick && onPick(p.id),
    }, svg("title", { text: p.title })));
  });
  return root;
}

// rows: [{id, values: {axisKey: value}, color: 0..1, title}]; axes: [{key, label, metric?}].
export function parallelCoordinates({ rows, axes, onPick }) {
  const W = Math.max(720, axes.length * 150), H = 380, L = 60, R = 60, T = 30, B = 30;
  const step = axes.length > 1 ? (W - L - R) / (axes.length - 1) : 0;
  const scales = axes.map((a) => makeScale(rows.map((r) => r.values[a.key]), { allowLog: !a.metric }));
  const ax = (i) => L + i * step;
  const ay = (i, v) => H - B - scales[i].at(v) * (H - T - B);
  const root = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": "parallel coordinates" });
  for (const row of rows) {
    const parts = [];
    axes.forEach((a, i) => {
      const v = row.values[a.key];
      if (v === null || v === undefined) return;
      parts.push(`${parts.length ? "L" : "M"}${ax(i).toFixed(1)},${ay(i, v).toFixed(1)}`);
    });
    root.append(svg("path", {
      class: "line", d: parts.join(""), stroke: viridis(row.color), "data-run-id": row.id,
      onclick: () => onPick && onPick(row.id),
    }, svg("title", { text: row.title })));
  }
  axes.forEach((a, i) => {
    const x = ax(i);
    root.append(svg("line", { class: "axis", x1: x, x2: x, y1: T, y2: H - B }),
      svg("text", { class: "axis-title", x, y: T - 12, "text-anchor": "middle", text: a.label }));
    const ticks = scales[i].ticks.length > 12 ? scales[i].ticks.filter((_, k) => k % Math.ceil(scales[i].ticks.length / 12) === 0) : scales[i].ticks;
    for (const t of ticks) {
      root.append(svg("text", { x: x + 5, y: ay(i, t) + 4, text: scales[i].label(t) }));
    }
  });
  return root;
}
