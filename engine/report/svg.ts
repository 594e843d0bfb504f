/**
 * Inline-SVG charts as strings, no dependencies: a line chart (several series, optional log-scale y),
 * a bar chart (histograms) and a Gantt timeline (pipeline schedules). Every chart has a title, axes
 * drawn as <path>s, and escapes all the text it is given, so any label is safe inside HTML.
 */
import { maxOf, minOf } from "./stats.ts";

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
  /** A shaded band around the line: [x, low, high] (e.g. the range over seeds). */
  band?: [number, number, number][];
}

export interface ChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

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
  let lo = minOf(values);
  let hi = maxOf(values);
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

/** The title, whole: smaller type where it is long, two lines where even that does not fit. */
function titleText(title: string, w: number): string {
  const room = w - 16;
  const size = Math.max(10, Math.min(14, Math.floor(room / (title.length * 0.62))));
  const lines = textWidth(title, size) <= room ? [title] : wrapText(title, room, 10);
  const top = lines.length === 1 ? 20 : 12;
  const spans = lines.map((l, i) => `<tspan x="${w / 2}" dy="${i === 0 ? 0 : 11}">${escapeXml(l)}</tspan>`).join("");
  return `<text class="chart-title" x="${w / 2}" y="${top}" text-anchor="middle" font-size="${lines.length === 1 ? size : 10}" font-weight="600">${spans}</text>`;
}

function frame(o: ChartOptions, body: string): string {
  const w = o.width ?? 560;
  const h = o.height ?? 320;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" font-family="system-ui, sans-serif" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeXml(o.title)}">` +
    `<title>${escapeXml(o.title)}</title>` +
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#fff"/>` +
    titleText(o.title, w) +
    body +
    `</svg>`
  );
}

const num = (x: number) => String(Math.round(x * 100) / 100);

interface Plot {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

/** Axis lines, ticks, grid and labels; ticks are [pixel, label]; the x label sits at `xLabelY`. */
function axes(plot: Plot, o: ChartOptions, xTicks: [number, string][], yTicks: [number, string][], xLabelY: number): string {
  let svg = "";
  const grid = yTicks.map(([py]) => `M${num(plot.x0)} ${num(py)}H${num(plot.x1)}`).join("");
  if (grid) svg += `<path d="${grid}" stroke="#e5e5e5" fill="none"/>`;
  const tickMarks = [...xTicks.map(([px]) => `M${num(px)} ${num(plot.y0)}v5`), ...yTicks.map(([py]) => `M${num(plot.x0)} ${num(py)}h-5`)].join("");
  svg += `<path class="axis" d="M${num(plot.x0)} ${num(plot.y1)}V${num(plot.y0)}H${num(plot.x1)}${tickMarks}" stroke="#333" fill="none"/>`;
  for (const [px, label] of xTicks) svg += `<text x="${num(px)}" y="${num(plot.y0 + 18)}" text-anchor="middle" font-size="11">${escapeXml(label)}</text>`;
  for (const [py, label] of yTicks) svg += `<text x="${num(plot.x0 - 8)}" y="${num(py + 4)}" text-anchor="end" font-size="11">${escapeXml(label)}</text>`;
  if (o.xLabel) svg += `<text x="${num((plot.x0 + plot.x1) / 2)}" y="${num(xLabelY)}" text-anchor="middle" font-size="12">${escapeXml(o.xLabel)}</text>`;
  if (o.yLabel) {
    const cy = (plot.y0 + plot.y1) / 2;
    svg += `<text x="14" y="${num(cy)}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${num(cy)})">${escapeXml(o.yLabel)}</text>`;
  }
  return svg;
}

/**
 * Text width at `size` px in the sans-serif the charts use: 0.62 em per character is wider than the
 * average glyph of common UI fonts, so a layout made with it never overlaps in a real browser.
 */
export const textWidth = (text: string, size = 11) => text.length * size * 0.62;

/** Words of `text` packed into lines no wider than `width` px (a word longer than a line is split). */
export function wrapText(text: string, width: number, size = 11): string[] {
  const perLine = Math.max(4, Math.floor(width / (size * 0.62)));
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > perLine) {
      if (line) lines.push(line);
      lines.push(word.slice(0, perLine));
      word = word.slice(perLine);
      line = "";
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= perLine) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  return lines.length ? lines : [""];
}

const LEGEND_ROW = 16;

interface LegendLayout {
  items: { name: string; color: string; x: number; y: number; lines: string[] }[];
  height: number;
}

/**
 * Legend entries (swatch + full name) flowed left to right in rows under the plot; a name too long
 * for a row wraps onto several lines. Names are never cut.
 */
function layoutLegend(items: { name: string; color: string }[], x0: number, width: number): LegendLayout {
  const placed: LegendLayout["items"] = [];
  let x = x0;
  let row = 0;
  let rowLines = 1;
  for (const it of items) {
    const lines = wrapText(it.name, width - 16);
    const w = 16 + maxOf(lines.map((l) => textWidth(l))) + 14;
    if (x > x0 && x + w > x0 + width) {
      row += rowLines;
      rowLines = 1;
      x = x0;
    }
    placed.push({ ...it, x, y: row * LEGEND_ROW, lines });
    rowLines = Math.max(rowLines, lines.length);
    x += w;
  }
  return { items: placed, height: items.length ? (row + rowLines) * LEGEND_ROW : 0 };
}

function drawLegend(layout: LegendLayout, top: number): string {
  return layout.items
    .map((it) => {
      const y = top + it.y + 11;
      const text = it.lines.map((l, i) => `<tspan x="${num(it.x + 16)}" dy="${i === 0 ? 0 : LEGEND_ROW}">${escapeXml(l)}</tspan>`).join("");
      return `<g class="legend-entry" data-name="${escapeXml(it.name)}"><rect x="${num(it.x)}" y="${num(y - 9)}" width="12" height="10" fill="${it.color}"/><text x="${num(it.x + 16)}" y="${num(y)}" font-size="11">${text}</text></g>`;
    })
    .join("");
}

export interface LineChartOptions extends ChartOptions {
  /** Log-scale y (consensus distance spans decades); points with y ≤ 0 are left out. */
  logY?: boolean;
  /** Fixed ranges (small multiples share them); otherwise chosen from the data. */
  yDomain?: [number, number];
  xDomain?: [number, number];
  /** x counts things (epochs): ticks only at whole numbers. */
  integerX?: boolean;
  /** Horizontal reference lines, e.g. the target accuracy. */
  hLines?: { y: number; label: string }[];
  /** A line of small print under the title, e.g. what the bands are. */
  note?: string;
}

export function lineChart(series: Series[], o: LineChartOptions): string {
  const logY = o.logY ?? false;
  const ok = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0);
  const visible = series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length]!,
    points: s.points.filter(([x, y]) => ok(x, y)),
    band: (s.band ?? []).filter(([x, lo, hi]) => ok(x, lo) && ok(x, hi)),
  }));
  const hLines = (o.hLines ?? []).filter((l) => ok(0, l.y));
  const xs = visible.flatMap((s) => s.points.map(([x]) => x));
  const ys = visible.flatMap((s) => [...s.points.map(([, y]) => y), ...s.band.flatMap(([, lo, hi]) => [lo, hi])]);
  if (ys.length) ys.push(...hLines.map((l) => l.y));
  const [xlo, xhi] = o.xDomain ?? (xs.length ? linearDomain(xs) : [0, 1]);
  let ylo: number;
  let yhi: number;
  let yTickValues: number[];
  if (logY) {
    const [a, b] = o.yDomain ? [Math.log10(o.yDomain[0]), Math.log10(o.yDomain[1])] : ys.length ? [Math.log10(minOf(ys)), Math.log10(maxOf(ys))] : [0, 1];
    ylo = Math.floor(a);
    yhi = Math.ceil(b) > ylo ? Math.ceil(b) : ylo + 1;
    const stride = Math.max(1, Math.ceil((yhi - ylo) / 6));
    yTickValues = [];
    for (let e = ylo; e <= yhi; e += stride) yTickValues.push(e);
  } else {
    [ylo, yhi] = o.yDomain ?? (ys.length ? linearDomain(ys) : [0, 1]);
    yTickValues = niceTicks(ylo, yhi);
  }
  const w = o.width ?? 600;
  // A series with nothing to draw here (a run that diverged before its first epoch) has no entry.
  const legend = layoutLegend(visible.filter((s) => s.points.length || s.band.length), MARGIN.left, w - MARGIN.left - MARGIN.right);
  const plotH = (o.height ?? 320) - MARGIN.top - MARGIN.bottom;
  const top = MARGIN.top + (o.note ? 14 : 0);
  const h = top + plotH + MARGIN.bottom + legend.height + (legend.height ? 6 : 0);
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right, y0: top + plotH, y1: top };
  const px = (x: number) => plot.x0 + ((x - xlo) / (xhi - xlo || 1)) * (plot.x1 - plot.x0);
  const py = (y: number) => {
    const v = logY ? Math.log10(y) : y;
    return plot.y0 - ((v - ylo) / (yhi - ylo || 1)) * (plot.y0 - plot.y1);
  };
  const xTicks = niceTicks(xlo, xhi)
    .filter((t) => !o.integerX || Number.isInteger(t))
    .map((t): [number, string] => [px(t), formatTick(t)]);
  const yTicks = yTickValues.map((t): [number, string] => (logY ? [py(10 ** t), `1e${t}`] : [py(t), formatTick(t)]));
  let body = axes(plot, o, xTicks, yTicks, plot.y0 + MARGIN.bottom - 8);
  if (o.note) body += `<text x="${w / 2}" y="${top - 8}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(o.note)}</text>`;
  // Clip to the plot: a fixed (shared) domain may leave a series partly outside it.
  const clip = `clip${++clipCount}`;
  body += `<clipPath id="${clip}"><rect x="${num(plot.x0)}" y="${num(plot.y1)}" width="${num(plot.x1 - plot.x0)}" height="${num(plot.y0 - plot.y1)}"/></clipPath><g clip-path="url(#${clip})">`;
  for (const s of visible) {
    if (s.band.length < 1) continue;
    if (s.band.length === 1) {
      // One epoch: the band is a bar from low to high at that x.
      const [x, lo, hi] = s.band[0]!;
      body += `<rect class="band" x="${num(px(x) - 4)}" y="${num(py(hi))}" width="8" height="${num(Math.max(1, py(lo) - py(hi)))}" fill="${s.color}" fill-opacity="0.25"><title>${escapeXml(s.name)}</title></rect>`;
      continue;
    }
    const upper = s.band.map(([x, , hi], i) => `${i === 0 ? "M" : "L"}${num(px(x))} ${num(py(hi))}`).join("");
    const lower = [...s.band].reverse().map(([x, lo]) => `L${num(px(x))} ${num(py(lo))}`).join("");
    body += `<path class="band" d="${upper}${lower}Z" fill="${s.color}" fill-opacity="0.18" stroke="none"><title>${escapeXml(s.name)}</title></path>`;
  }
  for (const l of hLines) {
    body += `<path class="target" d="M${num(plot.x0)} ${num(py(l.y))}H${num(plot.x1)}" stroke="#555" stroke-dasharray="5 4" fill="none"/>`;
  }
  for (const s of visible) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? "M" : "L"}${num(px(x))} ${num(py(y))}`).join("");
    body += `<path class="series" d="${d}" stroke="${s.color}" stroke-width="2" fill="none"><title>${escapeXml(s.name)}</title></path>`;
    body += s.points.map(([x, y]) => `<circle cx="${num(px(x))}" cy="${num(py(y))}" r="2.5" fill="${s.color}"/>`).join("");
  }
  body += `</g>`;
  for (const l of hLines) body += `<text x="${num(plot.x1 - 4)}" y="${num(py(l.y) - 4)}" text-anchor="end" font-size="11" fill="#555">${escapeXml(l.label)}</text>`;
  if (ys.length === 0) body += `<text x="${num((plot.x0 + plot.x1) / 2)}" y="${num((plot.y0 + plot.y1) / 2)}" text-anchor="middle" font-size="12" fill="#888">no data</text>`;
  body += drawLegend(legend, plot.y0 + MARGIN.bottom);
  return frame({ ...o, width: w, height: h }, body);
}

/** Clip-path ids must be unique within the page that inlines several charts. */
let clipCount = 0;

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
  let body = axes(plot, o, xTicks, yTicks, h - 8);
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

export interface GanttOptions extends ChartOptions {
  /** Rows to draw (default: up to the highest stage with an action). */
  stages?: number;
  /** Legend wording per action kind, e.g. F → "forward" (default: the kind letter alone). */
  kindNames?: Record<string, string>;
  /** Small print under the title (costs, makespan, bubble). */
  note?: string;
  /** Pixels per time unit; the width follows from it (default: fit the span into `width`). */
  scale?: number;
}

const ROW_HEIGHT = 26;

/**
 * Rows = stages (stage 0 on top), one rect per action coloured by kind (hover: stage, action, times),
 * labelled with kind and microbatch where that fits, or the microbatch alone, or nothing.
 */
export function ganttChart(entries: TimelineBar[], o: GanttOptions): string {
  const stages = o.stages ?? (entries.length ? maxOf(entries.map((e) => e.stage)) + 1 : 1);
  const end = entries.length ? maxOf(entries.map((e) => e.end)) : 1;
  const span = end > 0 ? end : 1;
  const w = o.scale !== undefined ? Math.ceil(MARGIN.left + span * o.scale + MARGIN.right) : (o.width ?? 720);
  const top = 52 + (o.note ? 14 : 0);
  const h = o.height ?? top + stages * ROW_HEIGHT + MARGIN.bottom;
  const opts = { ...o, width: w, height: h };
  const plot = { x0: MARGIN.left, x1: w - MARGIN.right, y0: h - MARGIN.bottom, y1: top };
  const px = (t: number) => plot.x0 + (t / span) * (plot.x1 - plot.x0);
  const band = (plot.y0 - plot.y1) / stages;
  const rowTop = (k: number) => plot.y1 + k * band;
  // About one tick per 80 px of time axis.
  const xTicks = niceTicks(0, span, Math.max(2, Math.min(10, Math.floor((plot.x1 - plot.x0) / 80)))).map((t): [number, string] => [px(t), formatTick(t)]);
  let body = axes(plot, opts, xTicks, [], h - 8);
  if (o.note) body += `<text x="${w / 2}" y="${top - 24}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(o.note)}</text>`;
  for (let k = 0; k < stages; k++) {
    body += `<rect x="${num(plot.x0)}" y="${num(rowTop(k) + 2)}" width="${num(plot.x1 - plot.x0)}" height="${num(band - 4)}" fill="#f2f2f2"/>`;
    body += `<text x="${num(plot.x0 - 8)}" y="${num(rowTop(k) + band / 2 + 4)}" text-anchor="end" font-size="11">stage ${k}</text>`;
  }
  for (const e of entries) {
    const x = px(e.start);
    const width = Math.max(px(e.end) - x, 0.5);
    const y = rowTop(e.stage) + 3;
    const color = ACTION_COLORS[e.kind] ?? PALETTE[7];
    body += `<rect x="${num(x)}" y="${num(y)}" width="${num(width)}" height="${num(band - 6)}" fill="${color}" stroke="#fff" stroke-width="0.5"><title>${escapeXml(`stage ${e.stage} ${e.kind}${e.microbatch} [${formatTick(e.start)}, ${formatTick(e.end)})`)}</title></rect>`;
    const label = [`${e.kind}${e.microbatch}`, String(e.microbatch)].find((t) => textWidth(t, 10) + 4 <= width);
    if (label) body += `<text x="${num(x + width / 2)}" y="${num(y + band / 2)}" text-anchor="middle" font-size="10" fill="#fff">${escapeXml(label)}</text>`;
  }
  const kinds = [...new Set(entries.map((e) => e.kind))];
  let lx = plot.x0;
  for (const k of kinds) {
    const text = o.kindNames?.[k] ? `${k} ${o.kindNames[k]}` : k;
    body += `<rect x="${num(lx)}" y="${num(top - 16)}" width="12" height="10" fill="${ACTION_COLORS[k] ?? PALETTE[7]}"/><text x="${num(lx + 16)}" y="${num(top - 7)}" font-size="11">${escapeXml(text)}</text>`;
    lx += 16 + textWidth(text) + 18;
  }
  return frame(opts, body);
}
