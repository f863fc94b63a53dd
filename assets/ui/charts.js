// Small SVG charts drawn by hand: a line with its area, and stacked bars, over time.
// Each takes points oldest first and returns an <svg> element sized by its viewBox.

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 170;
const PAD = { left: 46, right: 10, top: 10, bottom: 22 };

function svg(name, attrs = {}, ...children) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) {
    node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(child);
  }
  return node;
}

/** The smallest 1, 2 or 5 times a power of ten at or above `v` (1 for nothing). */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) {
    if (v <= m * step) return m * step;
  }
  return 10 * step;
}

/** 1234 as "1.2k", 2500000 as "2.5M"; small numbers with two significant digits. */
export function short(v) {
  const abs = Math.abs(v);
  if (abs >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (abs === 0 || abs >= 10) return `${Math.round(v)}`;
  return `${+v.toPrecision(2)}`;
}

/** A gridline's label: `v` with as many decimals as the step between lines needs. */
function tick(v, step) {
  if (step >= 1000) return short(v);
  let decimals = 0;
  while (decimals < 4 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-9) decimals++;
  return v.toFixed(decimals);
}

/** The top of a chart of whole numbers: a multiple of the 4 gridline steps. */
function wholeMax(v) {
  return Math.max(4, Math.ceil(niceMax(v) / 4) * 4);
}

function frame(label, max) {
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": label,
    preserveAspectRatio: "none",
  });
  const plotH = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    const text = svg("text", { x: PAD.left - 6, y: y + 4, class: "axis", "text-anchor": "end" });
    text.textContent = tick((max * i) / 4, max / 4);
    root.append(text);
  }
  return root;
}

function timeAxis(root, n) {
  const plotW = W - PAD.left - PAD.right;
  for (const ago of [60, 45, 30, 15, 0]) {
    if (ago >= n) continue;
    const x = PAD.left + (plotW * (n - 1 - ago + 0.5)) / n;
    const text = svg("text", { x, y: H - 6, class: "axis", "text-anchor": "middle" });
    text.textContent = ago === 0 ? "now" : `−${ago} min`;
    root.append(text);
  }
}

function hhmm(t) {
  return t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * A line with the area under it. `points`: [{t: Date, v: number}]; `unit` names the value
 * in the tooltips ("batches queued"); `whole`: the values are counts.
 */
export function lineChart(points, { label, unit, whole = false }) {
  const top = Math.max(0, ...points.map((p) => p.v));
  const max = whole ? wholeMax(top) : niceMax(top);
  const root = frame(label, max);
  const n = points.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (plotW * (i + 0.5)) / n;
  const y = (v) => PAD.top + plotH - (plotH * v) / max;
  if (n > 0) {
    const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    const base = (PAD.top + plotH).toFixed(1);
    root.append(
      svg("polygon", {
        points: `${x(0).toFixed(1)},${base} ${line} ${x(n - 1).toFixed(1)},${base}`,
        class: "area",
      }),
      svg("polyline", { points: line, class: "line" }),
    );
    points.forEach((p, i) => {
      // An invisible column per minute carries its tooltip.
      const hit = svg("rect", { x: PAD.left + (plotW * i) / n, y: PAD.top, width: plotW / n, height: plotH, class: "hit" });
      const title = svg("title");
      title.textContent = `${hhmm(p.t)}: ${p.v.toLocaleString()} ${unit}`;
      hit.append(title);
      root.append(hit);
    });
  }
  timeAxis(root, n);
  return root;
}

/**
 * Stacked bars. `points`: [{t: Date, values: [number, ...]}]; `series`: [{name, class}]
 * in the same order, bottom first.
 */
export function stackedBars(points, { label, series, unit }) {
  const max = niceMax(Math.max(0, ...points.map((p) => p.values.reduce((a, b) => a + b, 0))));
  const root = frame(label, max);
  const n = points.length;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = Math.max(1, (plotW / n) * 0.8);
  points.forEach((p, i) => {
    const group = svg("g");
    let bottom = PAD.top + plotH;
    p.values.forEach((v, k) => {
      const height = (plotH * v) / max;
      if (height > 0) {
        group.append(svg("rect", {
          x: (PAD.left + (plotW * i) / n + (plotW / n - barW) / 2).toFixed(1),
          y: (bottom - height).toFixed(1),
          width: barW.toFixed(1),
          height: height.toFixed(1),
          class: series[k].class,
        }));
      }
      bottom -= height;
    });
    group.append(svg("rect", { x: PAD.left + (plotW * i) / n, y: PAD.top, width: plotW / n, height: plotH, class: "hit" }));
    const title = svg("title");
    title.textContent = `${hhmm(p.t)}: ` + series.map((s, k) => `${short(p.values[k])} ${s.name}`).join(", ") + ` ${unit}`;
    group.append(title);
    root.append(group);
  });
  timeAxis(root, n);
  return root;
}
