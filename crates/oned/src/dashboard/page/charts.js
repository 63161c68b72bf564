// Small SVG charts: lines over time and labelled bars. Labels are set as text nodes only.

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2a7ab8", "#d9822b", "#3a9c5a", "#b83a3a", "#7a4ab8", "#888"];

function svg(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function frame(target, width, height) {
  target.replaceChildren();
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  target.append(root);
  return root;
}

function label(root, x, y, s, attrs = {}) {
  const t = svg("text", { x, y, ...attrs });
  t.textContent = s;
  root.append(t);
}

/** series: [{name, points: [[t, v], ...]}]; draws each as a line on shared axes. */
export function lines(target, title, series) {
  const [W, H, L, B] = [420, 170, 46, 20];
  const root = frame(target, W, H);
  label(root, 4, 12, title, { class: "title" });
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) {
    label(root, L, H / 2, "collecting…");
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const v0 = Math.min(0, ...all.map((p) => p[1]));
  const v1 = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - 8);
  const y = (v) => H - B - ((v - v0) / Math.max(1e-9, v1 - v0)) * (H - B - 22);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, class: "axis" }));
  label(root, 2, y(v1) + 4, v1.toFixed(v1 < 10 ? 1 : 0), { class: "tick" });
  label(root, 2, y(v0), v0.toFixed(0), { class: "tick" });
  series.forEach((s, i) => {
    if (s.points.length < 2) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 }));
    label(root, L + 6 + i * 90, H - 4, s.name, { fill: COLORS[i % COLORS.length], class: "legend" });
  });
}

/** bars: [{name, value, max?}]; a bar per item, as a share of max when given. */
export function bars(target, title, items, { percent = false } = {}) {
  const row = 18;
  const [W, L] = [420, 120];
  const H = 24 + Math.max(1, items.length) * row;
  const root = frame(target, W, H);
  label(root, 4, 12, title, { class: "title" });
  if (!items.length) {
    label(root, L, 34, "nothing yet");
    return;
  }
  const top = Math.max(1, ...items.map((b) => (percent ? 100 : b.value)));
  items.forEach((b, i) => {
    const y0 = 20 + i * row;
    const v = percent ? (100 * b.value) / Math.max(1, b.max || 1) : b.value;
    const w = ((W - L - 50) * Math.max(0, v)) / top;
    label(root, 4, y0 + 12, b.name, { class: "tick" });
    root.append(svg("rect", { x: L, y: y0 + 2, width: w.toFixed(1), height: row - 6, fill: COLORS[i % COLORS.length] }));
    label(root, L + w + 4, y0 + 12, percent ? `${v.toFixed(0)}%` : String(b.value), { class: "tick" });
  });
}
