/**
 * Inline-SVG charts as strings, no dependencies: a line chart (several series, optional log-scale y),
 * a bar chart (histograms) and a Gantt timeline (pipeline schedules). Every chart has a title, axes
 * drawn as <path>s, and escapes all the text it is given, so any label is safe inside HTML.
 */

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

/** Colours of pipeline actions: forward, full backward, input gradient, weight gradient. */
export const ACTION_COLORS: Record<string, string> = { F: "#4e79a7", B: "#59a14f", I: "#f28e2b", W: "#b07aa1" };

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
}

export interface ChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

export interface LineChartOptions extends ChartOptions {
  /** Log-scale y (consensus distance spans decades); points with y ≤ 0 are left out. */
  logY?: boolean;
  /** Fixed y range, e.g. [0, 1] for accuracies (linear scale only). */
  yDomain?: [number, number];
  /** x counts things (epochs): ticks only at whole numbers. */
  integerX?: boolean;
}

/** Room on the right of a line chart for its legend (outside the plot, so it never hides a line). */
const LEGEND_WIDTH = 120;

const MARGIN = { left: 64, right: 16, top: 34, bottom: 46 };

/** 3 significant digits, no exponent noise for ordinary numbers. */
export function formatTick(x: number): string {
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(1).replace("e+", "e");
  return String(Number(x.toPrecision(3)));
}

/** About `count` round ticks (1, 2, 5 × 10^k steps) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Round the domain out to whole tick steps; a single value becomes a small range around it. */
function linearDomain(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const ticks = niceTicks(lo, hi);
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : hi - lo;
  return [Math.min(lo, Math.floor(lo / step + 1e-9) * step), Math.max(hi, Math.ceil(hi / step - 1e-9) * step)];
}

function frame(o: ChartOptions, body: string): string {
  const w = o.width ?? 560;
  const h = o.height ?? 320;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeXml(o.title)}">` +
    `<title>${escapeXml(o.title)}</title>` +
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#fff"/>` +
    `<text x="${w / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(o.title)}</text>` +
    body +
    `</svg>`
  );
}

const num = (x: number) => String(Math.round(x * 100) / 100);

interface Axes {
  svg: string;
  plot: { x0: number; x1: number; y0: number; y1: number };
}

/** Axis lines, ticks, grid and labels; `xTicks`/`yTicks` are [value, pixel, label]. */
function axes(o: ChartOptions, xTicks: [number, string][], yTicks: [number, string][]): Axes {
  const w = o.width ?? 560;
  const h = o.height ?? 320;
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right, y0: h - MARGIN.bottom, y1: MARGIN.top };
  let svg = "";
  const grid = yTicks.map(([py]) => `M${num(plot.x0)} ${num(py)}H${num(plot.x1)}`).join("");
  if (grid) svg += `<path d="${grid}" stroke="#e5e5e5" fill="none"/>`;
  const tickMarks = [...xTicks.map(([px]) => `M${num(px)} ${num(plot.y0)}v5`), ...yTicks.map(([py]) => `M${num(plot.x0)} ${num(py)}h-5`)].join("");
  svg += `<path class="axis" d="M${num(plot.x0)} ${num(plot.y1)}V${num(plot.y0)}H${num(plot.x1)}${tickMarks}" stroke="#333" fill="none"/>`;
  for (const [px, label] of xTicks) svg += `<text x="${num(px)}" y="${num(plot.y0 + 18)}" text-anchor="middle" font-size="11">${escapeXml(label)}</text>`;
  for (const [py, label] of yTicks) svg += `<text x="${num(plot.x0 - 8)}" y="${num(py + 4)}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`;
  if (o.xLabel) svg += `<text x="${num((plot.x0 + plot.x1) / 2)}" y="${num(h - 8)}" text-anchor="middle" font-size="12">${escapeXml(o.xLabel)}</text>`;
  if (o.yLabel) {
    const cy = (plot.y0 + plot.y1) / 2;
    svg += `<text x="14" y="${num(cy)}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${num(cy)})">${escapeXml(o.yLabel)}</text>`;
  }
  return { svg, plot };
}

/** Legend entries fit LEGEND_WIDTH; the full name is the entry's tooltip. */
const short = (name: string) => (name.length > 17 ? `${name.slice(0, 16)}…` : name);

function legend(items: { name: string; color: string }[], x: number, y: number): string {
  return items
    .map((it, i) => {
      const ly = y + i * 16;
      return `<rect x="${num(x)}" y="${num(ly - 9)}" width="12" height="10" fill="${it.color}"/><text x="${num(x + 16)}" y="${num(ly)}" font-size="11">${escapeXml(short(it.name))}<title>${escapeXml(it.name)}</title></text>`;
    })
    .join("");
}

export function lineChart(series: Series[], o: LineChartOptions): string {
  const logY = o.logY ?? false;
  const visible = series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length]!,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)),
  }));
  const xs = visible.flatMap((s) => s.points.map(([x]) => x));
  const ys = visible.flatMap((s) => s.points.map(([, y]) => y));
  const [xlo, xhi] = xs.length ? linearDomain(xs) : [0, 1];
  let ylo: number;
  let yhi: number;
  let yTickValues: number[];
  if (logY) {
    const lo = ys.length ? Math.floor(Math.log10(Math.min(...ys))) : 0;
    const hi = ys.length ? Math.ceil(Math.log10(Math.max(...ys))) : 1;
    ylo = lo;
    yhi = hi > lo ? hi : lo + 1;
    const stride = Math.max(1, Math.ceil((yhi - ylo) / 6));
    yTickValues = [];
    for (let e = ylo; e <= yhi; e += stride) yTickValues.push(e);
  } else {
    [ylo, yhi] = o.yDomain ?? (ys.length ? linearDomain(ys) : [0, 1]);
    yTickValues = niceTicks(ylo, yhi);
  }
  const w = o.width ?? 600;
  const h = o.height ?? 320;
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right - LEGEND_WIDTH, y0: h - MARGIN.bottom, y1: MARGIN.top };
  const px = (x: number) => plot.x0 + ((x - xlo) / (xhi - xlo)) * (plot.x1 - plot.x0);
  const py = (y: number) => {
    const v = logY ? Math.log10(y) : y;
    return plot.y0 - ((v - ylo) / (yhi - ylo)) * (plot.y0 - plot.y1);
  };
  const xTicks = niceTicks(xlo, xhi)
    .filter((t) => !o.integerX || Number.isInteger(t))
    .map((t): [number, string] => [px(t), formatTick(t)]);
  const yTicks = yTickValues.map((t): [number, string] => (logY ? [py(10 ** t), `1e${t}`] : [py(t), formatTick(t)]));
  const a = axes({ ...o, width: w - LEGEND_WIDTH }, xTicks, yTicks);
  let body = a.svg;
  for (const s of visible) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${num(px(x))} ${num(py(y))}`).join("");
    body += `<path class="series" d="${d}" stroke="${s.color}" stroke-width="2" fill="none"><title>${escapeXml(s.name)}</title></path>`;
    body += s.points.map(([x, y]) => `<circle cx="${num(px(x))}" cy="${num(py(y))}" r="2.5" fill="${s.color}"/>`).join("");
  }
  if (ys.length === 0) body += `<text x="${num((plot.x0 + plot.x1) / 2)}" y="${num((plot.y0 + plot.y1) / 2)}" text-anchor="middle" font-size="12" fill="#888">no data</text>`;
  body += legend(visible, plot.x1 + 12, plot.y1 + 12);
  return frame(o, body);
}

export interface Bar {
  label: string;
  value: number;
}

export function barChart(bars: Bar[], o: ChartOptions & { color?: string }): string {
  const values = bars.map((b) => (Number.isFinite(b.value) ? b.value : 0));
  const yhi = linearDomain([0, ...values])[1];
  const w = o.width ?? 560;
  const h = o.height ?? 320;
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right, y0: h - MARGIN.bottom, y1: MARGIN.top };
  const slot = (plot.x1 - plot.x0) / Math.max(bars.length, 1);
  const py = (y: number) => plot.y0 - (y / yhi) * (plot.y0 - plot.y1);
  // Label at most ~16 bars so the labels never overlap.
  const every = Math.max(1, Math.ceil(bars.length / 16));
  const xTicks = bars.flatMap((b, i): [number, string][] => (i % every === 0 || i === bars.length - 1 ? [[plot.x0 + slot * (i + 0.5), b.label]] : []));
  const yTicks = niceTicks(0, yhi).map((t): [number, string] => [py(t), formatTick(t)]);
  let body = axes(o, xTicks, yTicks).svg;
  bars.forEach((b, i) => {
    const v = values[i]!;
    const x = plot.x0 + slot * i + slot * 0.1;
    // A zero bar is a hairline, so every bin has its rect and the chart never lacks one.
    const top = Math.min(py(v), plot.y0 - 0.5);
    body += `<rect x="${num(x)}" y="${num(top)}" width="${num(slot * 0.8)}" height="${num(plot.y0 - top)}" fill="${o.color ?? PALETTE[0]}"><title>${escapeXml(`${b.label}: ${formatTick(v)}`)}</title></rect>`;
  });
  return frame(o, body);
}

/** One action on the timeline (what simulate(...).timeline holds). */
export interface TimelineBar {
  stage: number;
  kind: string;
  microbatch: number;
  start: number;
  end: number;
}

/** Rows = stages (stage 0 on top), one rect per action, labelled with its microbatch when it fits. */
export function ganttChart(entries: TimelineBar[], o: ChartOptions): string {
  const stages = entries.length ? Math.max(...entries.map((e) => e.stage)) + 1 : 1;
  const w = o.width ?? 720;
  const rowH = 26;
  const h = o.height ?? MARGIN.top + stages * rowH + MARGIN.bottom + 18;
  const opts = { ...o, width: w, height: h };
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right, y0: h - MARGIN.bottom, y1: MARGIN.top };
  const end = entries.length ? Math.max(...entries.map((e) => e.end)) : 1;
  const px = (t: number) => plot.x0 + (t / (end || 1)) * (plot.x1 - plot.x0);
  const rowTop = (k: number) => plot.y1 + k * ((plot.y0 - plot.y1) / stages);
  const band = (plot.y0 - plot.y1) / stages;
  const xTicks = niceTicks(0, end).map((t): [number, string] => [px(t), formatTick(t)]);
  const yTicks = Array.from({ length: stages }, (_, k): [number, string] => [rowTop(k) + band / 2, `stage ${k}`]);
  let body = axes(opts, xTicks, []).svg;
  for (const [y, label] of yTicks) body += `<text x="${num(plot.x0 - 8)}" y="${num(y + 4)}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`;
  for (const e of entries) {
    const x = px(e.start);
    const width = Math.max(px(e.end) - x, 0.5);
    const y = rowTop(e.stage) + 3;
    const color = ACTION_COLORS[e.kind] ?? PALETTE[7];
    body += `<rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(band - 6)}" fill="${color}" stroke="#fff"><title>${escapeXml(`stage ${e.stage} ${e.kind}${e.microbatch} [${formatTick(e.start)}, ${formatTick(e.end)})`)}</title></rect>`;
    if (width >= 16) body += `<text x="${num(x + width / 2)}" y="${num(y + band / 2)}" text-anchor="middle" font-size="10" fill="#fff">${escapeXml(`${e.kind}${e.microbatch}`)}</text>`;
  }
  const kinds = [...new Set(entries.map((e) => e.kind))];
  body += kinds
    .map((k, i) => {
      const x = plot.x1 - (kinds.length - i) * 40;
      return `<rect x="${num(x)}" y="${num(h - 14)}" width="12" height="10" fill="${ACTION_COLORS[k] ?? PALETTE[7]}"/><text x="${num(x + 16)}" y="${num(h - 5)}" font-size="11">${escapeXml(k)}</text>`;
    })
    .join("");
  return frame(opts, body);
}
