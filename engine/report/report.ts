/**
 * The HTML report of one or more runs: a table of final figures and inline-SVG charts (accuracy vs
 * epoch and wall time, train loss, staleness histograms, consensus distance, pipeline inconsistency
 * and a simulated schedule). One self-contained document: inline CSS, no scripts, nothing fetched.
 *
 * Input folders are run folders (summary.json + metrics.jsonl) or experiment folders (results.json,
 * an array of rows each naming its runDir); an experiment contributes every run it lists.
 */
import { existsSync, openSync, readSync, closeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, isAbsolute, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { SCHEDULES } from "../algorithms/pipeline/schedule.ts";
import { DEFAULT_PIPELINE } from "../algorithms/pipeline/pipeline.ts";
import { simulate } from "../algorithms/pipeline/simulate.ts";
import { barChart, escapeXml, ganttChart, lineChart, PALETTE, type Series } from "./svg.ts";
import type { EpochMetrics, Summary } from "../train.ts";

export interface RunData {
  label: string;
  dir: string;
  summary: Summary;
  metrics: EpochMetrics[];
  /** The run's configuration from its checkpoint's metadata, when there is one. */
  config?: { pipeline?: { stages?: number; microbatches?: number } };
  color: string;
}

const GOSSIP = new Set(["pmsgd", "dsgd", "dmsgd", "decentlam"]);
/** Which schedule each pipeline algorithm runs (pipeline.ts: flush strategies batch by batch, the rest asynchronous 1F1B). */
const SCHEDULE_OF: Record<string, string> = { gpipe: "gpipe", "1f1b": "1f1b", pipedream: "async-1f1b", "2bw": "async-1f1b", spectrain: "async-1f1b", pipeoptim: "async-1f1b" };

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`${path}: not valid JSON`);
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

async function readSummary(dir: string): Promise<Summary> {
  const path = join(dir, "summary.json");
  const s = await readJson(path);
  if (!isObject(s) || typeof s.algo !== "string") throw new UserError(`${path}: not a run summary (no "algo")`);
  return s as unknown as Summary;
}

async function readMetrics(dir: string): Promise<EpochMetrics[]> {
  const path = join(dir, "metrics.jsonl");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const rows: EpochMetrics[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new UserError(`${path}:${i + 1}: not valid JSON`);
    }
    if (!isObject(row) || typeof row.epoch !== "number") throw new UserError(`${path}:${i + 1}: not an epoch's metrics (no "epoch")`);
    rows.push(row as unknown as EpochMetrics);
  });
  return rows;
}

/** The config JSON in the checkpoint's safetensors header (8-byte length, then JSON); optional, so any problem means none. */
function readCheckpointConfig(dir: string): RunData["config"] {
  const path = join(dir, "checkpoint.safetensors");
  if (!existsSync(path)) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return undefined;
    const n = Number(head.readBigUInt64LE(0));
    if (n <= 0 || n > 1 << 24) return undefined;
    const json = Buffer.alloc(n);
    if (readSync(fd, json, 0, n, 8) !== n) return undefined;
    const header = JSON.parse(json.toString("utf8"));
    const config = header?.__metadata__?.config;
    return typeof config === "string" ? JSON.parse(config) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function loadRun(dir: string, label: string): Promise<Omit<RunData, "color">> {
  const [summary, metrics] = await Promise.all([readSummary(dir), readMetrics(dir)]);
  return { label, dir, summary, metrics, config: readCheckpointConfig(dir) };
}

/** An experiment's run that diverged: its folder has no summary, the report lists it with the reason. */
export interface SkippedRun {
  label: string;
  reason: string;
}

/** Run folders and experiment folders → runs, in the order given. */
export async function loadRuns(dirs: string[], skipped: SkippedRun[] = []): Promise<RunData[]> {
  const runs: Omit<RunData, "color">[] = [];
  for (const dir of dirs) {
    if (existsSync(join(dir, "summary.json"))) {
      runs.push(await loadRun(dir, basename(resolve(dir))));
    } else if (existsSync(join(dir, "results.json"))) {
      const path = join(dir, "results.json");
      const rows = await readJson(path);
      if (!Array.isArray(rows)) throw new UserError(`${path}: expected an array of runs`);
      for (const [i, row] of rows.entries()) {
        if (!isObject(row) || typeof row.runDir !== "string") throw new UserError(`${path}: run ${i + 1} has no "runDir"`);
        const runDir = isAbsolute(row.runDir) ? row.runDir : existsSync(join(dir, row.runDir)) ? join(dir, row.runDir) : resolve(row.runDir);
        const label = [row.suite, row.label].filter((x) => typeof x === "string" && x !== "").join("/") || basename(runDir);
        if (typeof row.diverged === "string") {
          skipped.push({ label, reason: row.diverged });
          continue;
        }
        if (!existsSync(join(runDir, "summary.json"))) throw new UserError(`${path}: run ${i + 1}: ${join(runDir, "summary.json")} does not exist`);
        runs.push(await loadRun(runDir, label));
      }
    } else {
      throw new UserError(`${dir}: neither a run folder (summary.json) nor an experiment folder (results.json)`);
    }
  }
  // Same folder names from different places: number them so legends stay unambiguous.
  const seen = new Map<string, number>();
  return runs.map((r, i) => {
    const n = (seen.get(r.label) ?? 0) + 1;
    seen.set(r.label, n);
    return { ...r, label: n > 1 ? `${r.label} (${n})` : r.label, color: PALETTE[i % PALETTE.length]! };
  });
}

const fmt = (x: unknown, digits = 3): string => (typeof x === "number" && Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : "–");
const pct = (x: unknown): string => (typeof x === "number" && Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : "–");

/** Over layers: mean weighted by applied updates, and the largest. */
function stalenessOf(s: Summary): { mean: number; max: number } | undefined {
  const layers = s.staleness;
  if (!layers?.length) return undefined;
  const applied = layers.reduce((a, l) => a + l.applied, 0);
  const mean = applied > 0 ? layers.reduce((a, l) => a + l.mean * l.applied, 0) / applied : 0;
  return { mean, max: Math.max(...layers.map((l) => l.max)) };
}

function table(runs: RunData[]): string {
  const head = ["run", "algo", "model", "data", "workers", "epochs", "test accuracy", "samples/s", "seconds", "staleness mean / max", "consensus", "β"];
  const rows = runs.map((r) => {
    const s = r.summary;
    const st = stalenessOf(s);
    const cells = [
      `<span class="swatch" style="background:${r.color}"></span>${escapeXml(r.label)}`,
      escapeXml(String(s.algo)),
      escapeXml(String(s.model ?? "–")),
      escapeXml(String(s.data ?? "–")),
      fmt(s.workers),
      fmt(s.epochs),
      pct(s.testAccuracy),
      fmt(s.samplesPerSec, 4),
      s.simulated ? `${fmt(s.seconds)} (simulated)` : fmt(s.seconds),
      st ? `${fmt(st.mean)} / ${st.max}` : "–",
      fmt(s.consensusDistance),
      fmt(s.beta),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  });
  return `<table><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

const seriesOf = (runs: RunData[], x: (m: EpochMetrics) => number | undefined, y: (m: EpochMetrics) => number | undefined): Series[] =>
  runs.map((r) => ({
    name: r.label,
    color: r.color,
    points: r.metrics.flatMap((m): [number, number][] => {
      const [a, b] = [x(m), y(m)];
      return typeof a === "number" && typeof b === "number" ? [[a, b]] : [];
    }),
  }));

function figure(svg: string, caption?: string): string {
  return `<figure>${svg}${caption ? `<figcaption>${escapeXml(caption)}</figcaption>` : ""}</figure>`;
}

/** Σ over layers of the last epoch's staleness histogram (the summary's whole-run one if no epoch has it). */
function stalenessHistogram(r: RunData): number[] | undefined {
  const last = [...r.metrics].reverse().find((m) => m.staleness?.length)?.staleness ?? r.summary.staleness;
  if (!last?.length) return undefined;
  const bins = Math.max(...last.map((l) => l.histogram.length));
  const sum = new Array<number>(bins).fill(0);
  for (const l of last) l.histogram.forEach((c, i) => (sum[i]! += c));
  return sum;
}

function stalenessSection(runs: RunData[]): string {
  const charts = runs.flatMap((r) => {
    const h = stalenessHistogram(r);
    if (!h) return [];
    // Show bins up to the largest staleness seen (at least 8), the last bin being "31 or more".
    const used = Math.max(8, h.findLastIndex((c) => c > 0) + 1);
    const bars = h.slice(0, used).map((value, i) => ({ label: i === h.length - 1 ? `${i}+` : String(i), value }));
    return [figure(barChart(bars, { title: `${r.label}: staleness (last epoch, all layers)`, xLabel: "staleness (updates between read and apply)", yLabel: "gradients", color: r.color }))];
  });
  return charts.length ? section("Staleness", charts.join("")) : "";
}

function consensusSection(runs: RunData[]): string {
  const gossip = runs.filter((r) => GOSSIP.has(r.summary.algo) || r.metrics.some((m) => m.consensusDistance !== undefined));
  if (!gossip.length) return "";
  const chart = lineChart(seriesOf(gossip, (m) => m.epoch, (m) => m.consensusDistance), {
    title: "Consensus distance (1/n)Σ‖xᵢ − x̄‖²",
    xLabel: "epoch",
    integerX: true,
    yLabel: "consensus distance (log)",
    logY: true,
  });
  return section("Gossip", figure(chart));
}

function pipelineSection(runs: RunData[]): string {
  const parts: string[] = [];
  for (const r of runs) {
    const name = SCHEDULE_OF[r.summary.algo];
    if (!name) continue;
    const stageCount = Math.max(...r.metrics.map((m) => m.inconsistency?.length ?? 0), r.summary.inconsistency?.length ?? 0);
    if (stageCount > 0) {
      const series = Array.from({ length: stageCount }, (_, k): Series => ({
        name: `stage ${k}`,
        points: r.metrics.flatMap((m): [number, number][] => (m.inconsistency?.[k] !== undefined ? [[m.epoch, m.inconsistency[k]!]] : [])),
      }));
      parts.push(figure(lineChart(series, { title: `${r.label}: weight inconsistency per stage`, xLabel: "epoch", integerX: true, yLabel: "mean ‖w at F − w at B‖²" })));
    }
    const D = Array.isArray(r.summary.stages) ? r.summary.stages.length : (r.config?.pipeline?.stages ?? stageCount);
    // The checkpoint's config holds what the user set; the run used the default for the rest.
    const M = r.config ? (r.config.pipeline?.microbatches ?? DEFAULT_PIPELINE.microbatches) : DEFAULT_PIPELINE.microbatches;
    if (D >= 1) {
      const sim = simulate(SCHEDULES[name]!(D, M), { f: 1, b: 2 });
      parts.push(
        figure(
          ganttChart(sim.timeline, { title: `${r.label}: ${name} schedule, ${D} stages × ${M} microbatches (simulated)`, xLabel: "time (F = 1, B = 2)" }),
          `makespan ${fmt(sim.makespan)}, bubble ${(sim.bubbleFraction * 100).toFixed(1)}%${r.config ? "" : ` (no checkpoint config: ${M} microbatches assumed)`}`,
        ),
      );
    }
    if (Array.isArray(r.summary.stages)) parts.push(stageMemoryTable(r.label, r.summary.stages));
  }
  return parts.length ? section("Pipelines", parts.join("")) : "";
}

function stageMemoryTable(label: string, stages: unknown[]): string {
  const kib = (x: unknown) => (typeof x === "number" ? `${(x / 1024).toFixed(1)} KiB` : "–");
  const rows = stages.filter(isObject).map((s) => {
    const layers = Array.isArray(s.layers) ? s.layers.join("–") : "–";
    return `<tr><td>${fmt(s.stage)}</td><td>${escapeXml(layers)}</td><td>${kib(s.weightBytes)}</td><td>${fmt(s.extraWeightVersions)}</td><td>${kib(s.activationBytes)}</td></tr>`;
  });
  return `<table class="small"><caption>${escapeXml(label)}: memory per stage</caption><thead><tr><th>stage</th><th>layers</th><th>weights</th><th>extra weight versions</th><th>activations</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

const section = (title: string, body: string) => `<section><h2>${escapeXml(title)}</h2><div class="charts">${body}</div></section>`;

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin:0 0 16px}.diverged{color:#a33}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f5f5f5}
td:nth-child(-n+4),th:nth-child(-n+4){text-align:left}
table.small{font-size:12px}caption{text-align:left;font-weight:600;padding:4px 0}
td:first-child{white-space:nowrap}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.charts{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;border:1px solid #eee;border-radius:4px;padding:4px}figcaption{font-size:12px;color:#555;padding:2px 6px}
svg.chart{display:block;font-family:system-ui,sans-serif}
`;

/** Simulated runs are in virtual seconds: say so on the time chart (and say when real and virtual mix). */
function timeAxis(runs: RunData[]) {
  const simulated = runs.filter((r) => r.summary.simulated).length;
  const what = simulated === 0 ? "wall time" : simulated === runs.length ? "simulated time" : "time (wall, or simulated where the run says so)";
  return { title: `Test accuracy vs ${what}`, xLabel: simulated === runs.length ? "virtual seconds since start" : "seconds since start", yLabel: "test accuracy" };
}

export async function buildReport(dirs: string[]): Promise<string> {
  if (dirs.length === 0) throw new UserError("no run or experiment folder given");
  const skipped: SkippedRun[] = [];
  const runs = await loadRuns(dirs, skipped);
  if (runs.length === 0) throw new UserError(`${dirs.join(", ")}: no run finished (${skipped.length} diverged)`);
  const accuracy = { yLabel: "test accuracy" };
  const overview = [
    figure(lineChart(seriesOf(runs, (m) => m.epoch, (m) => m.testAccuracy), { title: "Test accuracy vs epoch", xLabel: "epoch", integerX: true, ...accuracy })),
    figure(lineChart(seriesOf(runs, (m) => m.elapsedSeconds, (m) => m.testAccuracy), timeAxis(runs))),
    figure(lineChart(seriesOf(runs, (m) => m.epoch, (m) => m.trainLoss), { title: "Train loss vs epoch", xLabel: "epoch", integerX: true, yLabel: "train loss" })),
  ].join("");
  const title = runs.length === 1 ? `skein report: ${runs[0]!.label}` : `skein report: ${runs.length} runs`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
<p class="meta">${escapeXml(runs.map((r) => r.dir).join(" · "))}</p>
${table(runs)}
${skipped.length ? `<p class="diverged">Not shown: ${skipped.map((k) => `${escapeXml(k.label)} (${escapeXml(k.reason)})`).join("; ")}</p>` : ""}
${section("Training", overview)}
${stalenessSection(runs)}
${consensusSection(runs)}
${pipelineSection(runs)}
</body>
</html>
`;
}
