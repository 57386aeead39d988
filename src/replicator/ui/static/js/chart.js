// Line charts with the vendored uPlot (loaded as a classic script: window.uPlot).
// A chart follows its container's width; series may have gaps (runs log different steps).

const PALETTE = [
  "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
  "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c",
];

// Steps are whole numbers: no tick at step 0.2.
const STEP_INCREMENTS = [];
for (let p = 0; p < 13; p++) for (const m of [1, 2, 5]) STEP_INCREMENTS.push(m * 10 ** p);

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

export function translucent(hex, alpha = 0.18) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// series: [{label, color, width?, dash?}]; data: [xs, ys1, ys2, ...] (uPlot's aligned columns);
// bands: [[upperIndex, lowerIndex, fill]] with 1-based series indexes as uPlot counts them.
export function lineChart(container, { series, data, xLabel = "step", height = 260, bands = [] }) {
  const width = Math.max(container.clientWidth || 0, 320);
  const opts = {
    width,
    height,
    scales: { x: { time: false } },
    axes: [{ label: xLabel, incrs: STEP_INCREMENTS }, {}],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    series: [
      { label: xLabel },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: s.width ?? 1.5,
        dash: s.dash,
        fill: s.fill,
        spanGaps: true,
        points: { show: false },
      })),
    ],
    bands: bands.map(([upper, lower, fill]) => ({ series: [upper, lower], fill })),
  };
  const plot = new window.uPlot(opts, data, container);
  const observer = new ResizeObserver(() => {
    const w = Math.max(container.clientWidth, 320);
    if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height });
  });
  observer.observe(container);
  return plot;
}

// Several (step, value) series on one x axis: uPlot wants one sorted x column shared by all.
export function alignSeries(list) {
  const steps = new Set();
  for (const s of list) for (const x of s.step) steps.add(x);
  const xs = Float64Array.from(steps).sort();
  const index = new Map();
  xs.forEach((x, i) => index.set(x, i));
  const columns = list.map((s) => {
    const ys = new Array(xs.length).fill(null);
    s.step.forEach((x, i) => {
      ys[index.get(x)] = s.value[i];
    });
    return ys;
  });
  return [Array.from(xs), ...columns];
}
