/**
 * The HTML report of one or more runs. First screen: each claim of the suite with its verdict, then
 * one row per method (runs that differ only in seed, aggregated: mean ± standard deviation, range,
 * n). Below: charts (mean curve and min–max band per method; a single run draws as a plain line;
 * small multiples when there are too many methods for one chart), staleness histograms, consensus
 * distance, pipeline inconsistency and simulated schedules, and the per-run table folded away.
 * One self-contained document: inline CSS, no scripts, nothing fetched.
 *
 * Input folders are run folders (summary.json + metrics.jsonl) or experiment folders (results.json,
 * an array of rows each naming its runDir; experiment.json with the suite's target and claims).
 */
import { CSS } from "./style.ts";
import { UserError } from "../errors.ts";
import { SCHEDULES } from "../algorithms/pipeline/schedule.ts";
import { DEFAULT_PIPELINE } from "../algorithms/pipeline/pipeline.ts";
import { simulate } from "../algorithms/pipeline/simulate.ts";
import { barChart, escapeXml, ganttChart, lineChart, PALETTE, type Series } from "./svg.ts";
import { aggregate, formatDifference, formatRange, formatSpread, METRICS, type CurveAggregate, type MethodAggregate, type Metric } from "./aggregate.ts";
import { claimFormula, evaluateClaim, verdictText, type ClaimResult } from "./claims.ts";
import { isObject, loadFolders, stalenessOf, type Experiment, type RunData } from "./load.ts";
import { maxOf, minOf, type Spread } from "./stats.ts";

export { loadFolders, type RunData } from "./load.ts";

const GOSSIP = new Set(["pmsgd", "dsgd", "dmsgd", "decentlam"]);
/** Which schedule each pipeline algorithm runs (flush strategies batch by batch, the rest asynchronous 1F1B). */
const SCHEDULE_OF: Record<string, string> = { gpipe: "gpipe", "1f1b": "1f1b", pipedream: "async-1f1b", "2bw": "async-1f1b", spectrain: "async-1f1b", pipeoptim: "async-1f1b" };

/** One chart tells at most this many series apart; past it, small multiples. */
export const MAX_SERIES_PER_CHART = 10;
/** The simulated schedule is drawn only for grids the `skein schedule` command accepts, and not past this many actions. */
const MAX_STAGES = 256;
const MAX_MICROBATCHES = 4096;
const MAX_SCHEDULE_CELLS = 16_384;
/** Rows of the per-stage memory table and lines of the per-stage inconsistency chart. */
const MAX_STAGE_ROWS = 64;

const fmt = (x: unknown, digits = 3): string => (typeof x === "number" && Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : "–");
const pct = (x: unknown): string => (typeof x === "number" && Number.isFinite(x) ? `${(x * 100).toFixed(2)}%` : "–");

/** Everything the page is drawn from. */
export interface ReportModel {
  runs: RunData[];
  methods: MethodAggregate[];
  /** Method → colour and panel. */
  colors: Map<string, string>;
  panels: { name: string; methods: string[] }[];
  claims: { experiment: Experiment; results: ClaimResult[] }[];
  experiments: Experiment[];
  target?: number;
  skipped: string[];
}

/**
 * Panels of at most MAX_SERIES_PER_CHART methods: one for all when they fit; else the suite's groups
 * (e.g. one per pipeline depth), cut into chunks where a group is still too big. Colours repeat
 * between panels, in the same order within each, so the same algorithm keeps its colour.
 */
export function panelsOf(methods: MethodAggregate[]): { name: string; methods: string[] }[] {
  if (methods.length <= MAX_SERIES_PER_CHART) return [{ name: "", methods: methods.map((m) => m.method) }];
  const groups = new Map<string, string[]>();
  methods.forEach((m, i) => {
    const g = m.group ?? `methods ${Math.floor(i / 8) * 8 + 1}–${Math.min(methods.length, Math.floor(i / 8) * 8 + 8)}`;
    groups.set(g, [...(groups.get(g) ?? []), m.method]);
  });
  return [...groups].flatMap(([name, list]) => {
    const chunks = Math.ceil(list.length / MAX_SERIES_PER_CHART);
    return Array.from({ length: chunks }, (_, c) => ({
      name: chunks > 1 ? `${name} (${c + 1}/${chunks})` : name,
      methods: list.slice(c * MAX_SERIES_PER_CHART, (c + 1) * MAX_SERIES_PER_CHART),
    }));
  });
}

export async function buildModel(dirs: string[]): Promise<ReportModel> {
  if (dirs.length === 0) throw new UserError("no run or experiment folder given");
  const { runs, records, experiments } = await loadFolders(dirs);
  const skipped = records.filter((r) => r.diverged !== undefined).map((r) => `${r.label} (${r.diverged})`);
  if (runs.length === 0) throw new UserError(`${dirs.join(", ")}: no run finished (${skipped.length} diverged)`);
  // One target for the page: the experiments' (they share one when they come from one suite).
  const targets = [...new Set(experiments.flatMap((e) => (e.meta?.target !== undefined ? [e.meta.target] : [])))];
  const target = targets.length === 1 ? targets[0] : undefined;
  const methods = aggregate(records, target);
  const panels = panelsOf(methods);
  const colors = new Map<string, string>();
  for (const p of panels) p.methods.forEach((m, i) => colors.set(m, PALETTE[i % PALETTE.length]!));
  const claims = experiments.flatMap((experiment) => {
    const list = experiment.meta?.claims ?? [];
    if (!list.length) return [];
    const own = records.filter((r) => experiment.methods.includes(r.method));
    return [{ experiment, results: list.map((c) => evaluateClaim(c, own, experiment.meta?.target, experiment.methodOf)) }];
  });
  return { runs, methods, colors, panels, claims, experiments, ...(target !== undefined ? { target } : {}), skipped };
}

// ---- first screen: claims and the per-method table -------------------------------------------------

const VERDICT_CLASS = { holds: "holds", "does not hold": "fails", inconclusive: "open" } as const;

function claimsSection(model: ReportModel): string {
  if (!model.claims.length) return "";
  const parts = model.claims.map(({ experiment, results }) => {
    const target = experiment.meta?.target;
    const rows = results.map((r) => {
      const info = METRICS[r.claim.metric];
      const t = r.tInterval;
      const side = (s: Spread | undefined) => formatSpread(s, info.kind);
      const cells = [
        `<td class="claim"><b>${escapeXml(r.claim.text)}</b><br><span class="formula">${escapeXml(claimFormula(r.claim))}</span>${r.claim.source ? ` <span class="source" title="${escapeXml(r.claim.source)}">(${escapeXml(r.claim.source.split(",")[0]!)})</span>` : ""}</td>`,
        `<td>${escapeXml(side(r.a))}<br>${escapeXml(side(r.b))}</td>`,
        `<td>${escapeXml(formatDifference(r.difference?.mean, info.kind))}${r.difference && r.difference.n > 1 ? `<br><span class="formula">sd ${escapeXml(formatDifference(r.difference.std, info.kind).replace(/^\+/, ""))}</span>` : ""}${r.difference && r.difference.n < r.pairs ? `<br><span class="formula">${r.pairs - r.difference.n} of ${r.pairs} pairs infinite</span>` : ""}</td>`,
        `<td>${t ? `[${escapeXml(formatDifference(t.lo, info.kind))}, ${escapeXml(formatDifference(t.hi, info.kind))}]` : "–"}</td>`,
        `<td>${r.pairs ? `${r.sign.plus}+ ${r.sign.minus}− ${r.sign.ties}=, p = ${r.sign.p.toPrecision(2)}` : "–"}</td>`,
        `<td class="verdict ${VERDICT_CLASS[r.verdict]}" title="${escapeXml(r.reason)}">${escapeXml(verdictText(r))}<br><span class="formula">${escapeXml(r.reason)}</span></td>`,
      ];
      return `<tr>${cells.join("")}</tr>`;
    });
    const head = ["claim", "A, B (mean ± sd)", "A − B (mean, sd)", "95% paired t-interval", "sign test", "verdict"];
    const caption = `${experiment.meta?.suite ?? experiment.dir}${experiment.meta?.mode ? ` (${experiment.meta.mode})` : ""}: claims${target !== undefined ? `; target accuracy ${pct(target)}` : ""}`;
    return `<table class="claims"><caption>${escapeXml(caption)}</caption><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
  });
  const note = `<p class="note">A and B: the claim's two methods, mean ± sd over seeds. Sign test: seeds on the claimed side (+), against (−), tied (=), exact two-sided p. Runs are paired by seed. The verdict comes from the paired t-interval on the per-seed differences when every pair is finite, and from the exact two-sided sign test (α = 0.05) when a run diverged or never reached the target; "inconclusive at n" means neither test separates the two at this many seeds.</p>`;
  return `<section id="claims"><h2>Claims</h2>${parts.join("")}${note}</section>`;
}

function methodsTable(model: ReportModel): string {
  const ms = model.methods;
  const has = (m: Metric) => ms.some((a) => a.metrics[m]);
  const cols: { head: string; cell: (a: MethodAggregate) => string }[] = [
    { head: "method", cell: (a) => `<span class="swatch" style="background:${model.colors.get(a.method)}"></span>${escapeXml(a.method)}` },
    { head: "n", cell: (a) => `${a.runs}${a.diverged ? ` <span class="diverged">(${a.diverged} diverged)</span>` : ""}` },
    { head: "final accuracy (mean ± sd)", cell: (a) => escapeXml(formatSpread(a.metrics.finalAccuracy, "fraction")) },
    { head: "min–max", cell: (a) => escapeXml(formatRange(a.metrics.finalAccuracy, "fraction")) },
  ];
  if (model.target !== undefined) {
    cols.push({
      head: `time to ${pct(model.target)}`,
      cell: (a) => `${escapeXml(formatSpread(a.metrics.timeToTarget, "seconds"))}${a.reached !== a.runs ? ` <span class="note">(${a.reached}/${a.runs} reached)</span>` : ""}`,
    });
  }
  if (has("samplesPerSec")) cols.push({ head: "samples/s", cell: (a) => escapeXml(formatSpread(a.metrics.samplesPerSec, "rate")) });
  if (has("stalenessMean")) cols.push({ head: "staleness (mean)", cell: (a) => escapeXml(formatSpread(a.metrics.stalenessMean, "small")) });
  if (has("consensusDistance")) cols.push({ head: "consensus distance", cell: (a) => escapeXml(formatSpread(a.metrics.consensusDistance, "small")) });
  if (has("inconsistency")) cols.push({ head: "inconsistency (stage mean)", cell: (a) => escapeXml(formatSpread(a.metrics.inconsistency, "small")) });
  const rows = ms.map((a) => `<tr>${cols.map((c) => `<td>${c.cell(a)}</td>`).join("")}</tr>`);
  const seeds = maxOf(ms.map((m) => m.runs));
  const caption = seeds > 1 ? "One row per method: runs that differ only in seed, mean ± sample standard deviation over seeds (diverged runs counted in n, not in the means)" : "One row per run";
  return `<table class="methods"><caption>${escapeXml(caption)}</caption><thead><tr>${cols.map((c) => `<th>${escapeXml(c.head)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function runsTable(runs: RunData[], colors: Map<string, string>): string {
  const head = ["run", "algo", "model", "data", "workers", "epochs", "test accuracy", "samples/s", "seconds", "staleness mean / max", "consensus", "β"];
  const rows = runs.map((r) => {
    const s = r.summary;
    const st = stalenessOf(s);
    const cells = [
      `<span class="swatch" style="background:${colors.get(r.method)}"></span>${escapeXml(r.label)}`,
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
  return `<table class="runs"><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

// ---- charts ------------------------------------------------------------------------------------------

type CurveField = "testAccuracy" | "trainLoss" | "consensusDistance";

/** A method's curve: the mean per epoch (x: epoch, or mean elapsed seconds), min–max band when it has several runs. */
function seriesOfMethod(m: MethodAggregate, color: string, y: CurveField, x: "epoch" | "elapsedSeconds"): Series {
  const xOf = (c: CurveAggregate) => (x === "epoch" ? c.epoch : c.elapsedSeconds?.mean);
  const points: [number, number][] = [];
  const band: [number, number, number][] = [];
  for (const c of m.curve) {
    const xv = xOf(c);
    const s = c[y];
    if (xv === undefined || !s) continue;
    points.push([xv, s.mean]);
    if (m.runs > 1) band.push([xv, s.min, s.max]);
  }
  return { name: m.method, color, points, ...(band.length ? { band } : {}) };
}

function figure(svg: string, caption?: string): string {
  return `<figure>${svg}${caption ? `<figcaption>${escapeXml(caption)}</figcaption>` : ""}</figure>`;
}

/** Shared domain of all series (small multiples compare by position only if their axes agree). */
function domainOf(series: Series[], extra: number[] = [], log = false): { x: [number, number]; y: [number, number] } | undefined {
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = [...series.flatMap((s) => [...s.points.map(([, y]) => y), ...(s.band ?? []).flatMap(([, lo, hi]) => [lo, hi])]), ...extra].filter((y) => Number.isFinite(y) && (!log || y > 0));
  if (!xs.length || !ys.length) return undefined;
  const pad = (lo: number, hi: number): [number, number] => (hi > lo ? [lo, hi] : [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05]);
  return { x: pad(minOf(xs), maxOf(xs)), y: pad(minOf(ys), maxOf(ys)) };
}

function chartsOf(model: ReportModel, o: { title: string; y: CurveField; x: "epoch" | "elapsedSeconds"; xLabel: string; yLabel: string; logY?: boolean; target?: boolean; methods?: MethodAggregate[] }): string[] {
  const methods = o.methods ?? model.methods;
  const wanted = new Set(methods.map((m) => m.method));
  const byName = new Map(methods.map((m) => [m.method, m]));
  const all = methods.map((m) => seriesOfMethod(m, model.colors.get(m.method)!, o.y, o.x));
  const hLines = o.target && model.target !== undefined ? [{ y: model.target, label: `target ${pct(model.target)}` }] : [];
  const domain = domainOf(all, hLines.map((l) => l.y), o.logY);
  const banded = methods.some((m) => m.runs > 1);
  const note = banded ? "line: mean over seeds · band: min–max over seeds" : undefined;
  const panels = model.panels.map((p) => ({ name: p.name, methods: p.methods.filter((m) => wanted.has(m)) })).filter((p) => p.methods.length);
  return panels.map((p) => {
    const series = p.methods.map((m) => seriesOfMethod(byName.get(m)!, model.colors.get(m)!, o.y, o.x));
    return figure(
      lineChart(series, {
        title: p.name ? `${o.title} — ${p.name}` : o.title,
        xLabel: o.xLabel,
        yLabel: o.yLabel,
        integerX: o.x === "epoch",
        ...(o.logY ? { logY: true } : {}),
        ...(panels.length > 1 && domain ? { xDomain: domain.x, yDomain: domain.y } : {}),
        ...(hLines.length ? { hLines } : {}),
        ...(note ? { note } : {}),
      }),
    );
  });
}

/** Σ over layers (and over a method's runs) of the last epoch's staleness histogram. */
function stalenessHistogram(runs: RunData[]): number[] | undefined {
  let sum: number[] | undefined;
  for (const r of runs) {
    const last = [...r.metrics].reverse().find((m) => m.staleness?.length)?.staleness ?? r.summary.staleness;
    if (!last?.length) continue;
    const bins = maxOf(last.map((l) => (Array.isArray(l.histogram) ? l.histogram.length : 0)));
    sum ??= [];
    while (sum.length < bins) sum.push(0);
    for (const l of last) if (Array.isArray(l.histogram)) l.histogram.forEach((c, i) => (sum![i]! += typeof c === "number" ? c : 0));
  }
  return sum;
}

const runsOf = (model: ReportModel, method: string) => model.runs.filter((r) => r.method === method);

function stalenessSection(model: ReportModel): string {
  const charts = model.methods.flatMap((m) => {
    const runs = runsOf(model, m.method);
    const h = stalenessHistogram(runs);
    if (!h?.length) return [];
    // Show bins up to the largest staleness seen (at least 8), the last bin being "31 or more".
    const used = Math.min(h.length, Math.max(8, h.findLastIndex((c) => c > 0) + 1));
    const bars = h.slice(0, used).map((value, i) => ({ label: i === h.length - 1 ? `${i}+` : String(i), value }));
    const over = runs.length > 1 ? `, ${runs.length} seeds summed` : "";
    return [figure(barChart(bars, { title: `${m.method}: staleness`, xLabel: "staleness (updates between read and apply)", yLabel: "gradients", color: model.colors.get(m.method)! }), `last epoch, all layers${over}`)];
  });
  return charts.length ? section("Staleness", charts.join("")) : "";
}

function consensusSection(model: ReportModel): string {
  const methods = model.methods.filter((m) => runsOf(model, m.method).some((r) => GOSSIP.has(r.summary.algo)) || m.curve.some((c) => c.consensusDistance));
  if (!methods.length) return "";
  return section(
    "Gossip",
    chartsOf(model, { methods, title: "Consensus distance (1/n)Σ‖xᵢ − x̄‖²", y: "consensusDistance", x: "epoch", xLabel: "epoch", yLabel: "consensus distance (log)", logY: true }).join(""),
  );
}

function pipelineSection(model: ReportModel): string {
  const parts: string[] = [];
  for (const m of model.methods) {
    const runs = runsOf(model, m.method);
    const r = runs[0];
    if (!r) continue;
    const name = SCHEDULE_OF[r.summary.algo];
    if (!name) continue;
    const stageCount = maxOf([...r.metrics.map((e) => (Array.isArray(e.inconsistency) ? e.inconsistency.length : 0)), Array.isArray(r.summary.inconsistency) ? r.summary.inconsistency.length : 0]);
    if (stageCount > 0 && stageCount <= MAX_STAGE_ROWS) {
      // Per stage and epoch, the mean over the method's runs.
      // Σ and count per (stage, epoch) in one pass over the runs' epochs.
      const sums = Array.from({ length: stageCount }, () => new Map<number, [number, number]>());
      for (const x of runs) {
        for (const e of x.metrics) {
          if (!Array.isArray(e.inconsistency)) continue;
          e.inconsistency.slice(0, stageCount).forEach((v, k) => {
            if (typeof v !== "number") return;
            const [sum, n] = sums[k]!.get(e.epoch) ?? [0, 0];
            sums[k]!.set(e.epoch, [sum + v, n + 1]);
          });
        }
      }
      const series = sums.map((m, k): Series => ({
        name: `stage ${k}`,
        points: [...m].sort((a, b) => a[0] - b[0]).map(([epoch, [sum, n]]): [number, number] => [epoch, sum / n]),
      }));
      const over = runs.length > 1 ? ` (mean of ${runs.length} seeds)` : "";
      parts.push(figure(lineChart(series, { title: `${m.method}: weight inconsistency per stage${over}`, xLabel: "epoch", integerX: true, yLabel: "mean ‖w at F − w at B‖²" })));
    }
    const D = Array.isArray(r.summary.stages) ? r.summary.stages.length : (r.config?.pipeline?.stages ?? stageCount);
    // The checkpoint's config holds what the user set; the run used the default for the rest.
    const M = r.config ? (r.config.pipeline?.microbatches ?? DEFAULT_PIPELINE.microbatches) : DEFAULT_PIPELINE.microbatches;
    const drawable = Number.isSafeInteger(D) && Number.isSafeInteger(M) && D >= 1 && M >= 1 && D <= MAX_STAGES && M <= MAX_MICROBATCHES && D * M <= MAX_SCHEDULE_CELLS;
    if (drawable) {
      const sim = simulate(SCHEDULES[name]!(D, M), { f: 1, b: 2 });
      parts.push(
        figure(
          ganttChart(sim.timeline, { title: `${m.method}: ${name} schedule, ${D} stages × ${M} microbatches (simulated)`, xLabel: "time (F = 1, B = 2)" }),
          `makespan ${fmt(sim.makespan)}, bubble ${(sim.bubbleFraction * 100).toFixed(1)}%${r.config ? "" : ` (no checkpoint config: ${M} microbatches assumed)`}`,
        ),
      );
    } else if (D >= 1 || M >= 1) {
      parts.push(`<p class="note">${escapeXml(`${m.method}: ${D} stages × ${M} microbatches, too large to simulate and draw here (at most ${MAX_STAGES} × ${MAX_MICROBATCHES}, ${MAX_SCHEDULE_CELLS} stage-microbatch pairs)`)}</p>`);
    }
    if (Array.isArray(r.summary.stages)) parts.push(stageMemoryTable(m.method, r.summary.stages));
  }
  return parts.length ? section("Pipelines", parts.join("")) : "";
}

function stageMemoryTable(label: string, stages: unknown[]): string {
  const kib = (x: unknown) => (typeof x === "number" ? `${(x / 1024).toFixed(1)} KiB` : "–");
  const rows = stages
    .slice(0, MAX_STAGE_ROWS)
    .filter(isObject)
    .map((s) => {
      const layers = Array.isArray(s.layers) ? s.layers.join("–") : "–";
      return `<tr><td>${fmt(s.stage)}</td><td>${escapeXml(layers)}</td><td>${kib(s.weightBytes)}</td><td>${fmt(s.extraWeightVersions)}</td><td>${kib(s.activationBytes)}</td></tr>`;
    });
  const more = stages.length > MAX_STAGE_ROWS ? ` (first ${MAX_STAGE_ROWS} of ${stages.length} stages)` : "";
  return `<table class="small"><caption>${escapeXml(`${label}: memory per stage${more}`)}</caption><thead><tr><th>stage</th><th>layers</th><th>weights</th><th>extra weight versions</th><th>activations</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

const section = (title: string, body: string) => `<section><h2>${escapeXml(title)}</h2><div class="charts">${body}</div></section>`;


/** Simulated runs are in virtual seconds: say so on the time chart (and say when real and virtual mix). */
function timeAxis(runs: RunData[]) {
  const simulated = runs.filter((r) => r.summary.simulated).length;
  const what = simulated === 0 ? "wall time" : simulated === runs.length ? "simulated time" : "time (wall, or simulated where the run says so)";
  const seconds = simulated === runs.length ? "virtual seconds since start" : "seconds since start";
  return { title: `Test accuracy vs ${what}`, xLabel: `${seconds} (mean over seeds)`, yLabel: "test accuracy" };
}

export async function buildReport(dirs: string[]): Promise<string> {
  const model = await buildModel(dirs);
  const { runs, methods } = model;
  const seeds = maxOf(methods.map((m) => m.runs));
  const suites = [...new Set(model.experiments.flatMap((e) => (e.meta ? [`${e.meta.suite}${e.meta.mode ? ` (${e.meta.mode})` : ""}`] : [])))];
  const title =
    runs.length === 1 && model.skipped.length === 0
      ? `skein report: ${runs[0]!.label}`
      : seeds > 1
        ? `skein report${suites.length ? `: ${suites.join(", ")}` : ""} — ${methods.length} methods × up to ${seeds} seeds (${runs.length + model.skipped.length} runs)`
        : `skein report: ${runs.length + model.skipped.length} runs`;
  const training = [
    ...chartsOf(model, { title: "Test accuracy vs epoch", y: "testAccuracy", x: "epoch", xLabel: "epoch", yLabel: "test accuracy", target: true }),
    ...chartsOf(model, { ...timeAxis(runs), y: "testAccuracy", x: "elapsedSeconds", target: true }),
    ...chartsOf(model, { title: "Train loss vs epoch", y: "trainLoss", x: "epoch", xLabel: "epoch", yLabel: "train loss" }),
  ].join("");
  // Experiment folders by name, run folders given on their own by theirs.
  const dirsText = [...model.experiments.map((e) => e.dir), ...runs.filter((r) => !model.experiments.some((e) => e.methods.includes(r.method))).map((r) => r.dir)].join(" · ");
  const perRun = `<details><summary>Every run (${runs.length})</summary>${runsTable(runs, model.colors)}</details>`;
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
<p class="meta">${escapeXml(dirsText)}</p>
${claimsSection(model)}
<section id="methods"><h2>${seeds > 1 ? "Methods" : "Summary"}</h2>${methodsTable(model)}
${model.skipped.length ? `<p class="diverged">Diverged (counted in n, not charted past where they stopped): ${model.skipped.map(escapeXml).join("; ")}</p>` : ""}</section>
${section("Training", training)}
${stalenessSection(model)}
${consensusSection(model)}
${pipelineSection(model)}
${runs.length + model.skipped.length > 1 ? `<section><h2>Runs</h2>${perRun}</section>` : ""}
</body>
</html>
`;
}
