/**
 * `skein schedule`: build a pipeline schedule, validate it, dry-run it on the simulator and show the
 * timeline — as text (one row per stage, one cell per time unit, wrapped to --width), as one JSON
 * object (--json), and/or as an SVG image (--svg FILE, written atomically).
 */
import { existsSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { buildSchedule, peakStashedVersions, SCHEDULE_PATTERNS, SCHEDULE_SUMMARIES, SCHEDULES, type ActionKind, type Schedule } from "../algorithms/pipeline/schedule.ts";
import { durations, simulate, type Costs, type Simulation } from "../algorithms/pipeline/simulate.ts";
import { validateSchedule } from "../algorithms/pipeline/validate.ts";
import { formatHelp, formatSection, parseFlags, type FlagSpec } from "./flags.ts";
import { ganttChart } from "../report/svg.ts";

/** Costs are times in any unit; past this a makespan of 256 stages × 4096 microbatches could overflow, and no timeline needs it. */
const MAX_COST = 1e12;

export const SCHEDULE_FLAGS: FlagSpec[] = [
  { name: "name", type: "string", default: "1f1b", help: `the schedule: ${[...Object.keys(SCHEDULES), ...SCHEDULE_PATTERNS].join(", ")} (listed below)` },
  { name: "stages", type: "int", default: 4, min: 1, max: 256, help: "pipeline stages D" },
  { name: "microbatches", type: "int", default: 8, min: 1, max: 4096, help: "microbatches per batch M" },
  { name: "cost-f", type: "number", max: MAX_COST, default: 1, above: 0, help: "time of one forward on one stage (interleaved:V: of all V chunks of a worker; one chunk's takes 1/V of it, as do b, i, w)" },
  { name: "cost-b", type: "number", max: MAX_COST, default: 2, above: 0, help: "time of one full backward on one stage" },
  { name: "cost-i", type: "number", max: MAX_COST, min: 0, help: "zb-h1: time of an input-gradient backward I (default cost-b / 2)" },
  { name: "cost-w", type: "number", max: MAX_COST, min: 0, help: "zb-h1: time of a weight-gradient backward W (default cost-b / 2)" },
  { name: "cost-comm", type: "number", max: MAX_COST, default: 0, min: 0, help: "latency of each send of activations or gradients between neighbouring stages" },
  { name: "width", type: "int", default: 120, min: 0, max: 1_000_000, help: "wrap the text timeline at this many characters (0: one line per stage)" },
  { name: "json", type: "bool", help: "print one JSON object {name, stages, microbatches, actions, makespan, bubbleFraction, peakInFlight, ...} instead of the text" },
  { name: "svg", type: "string", valueName: "FILE", help: "also write the timeline as an SVG image" },
];

export const SCHEDULE_HELP = formatHelp(
  "skein schedule [flags]",
  "Build a pipeline-parallel schedule, check it, and simulate it: timeline, makespan, bubble fraction\n(idle time / (stages × makespan)) and live activations per stage.",
  SCHEDULE_FLAGS,
  `${formatSection("Schedules", Object.entries(SCHEDULE_SUMMARIES))}\n\nExamples: skein schedule --name zb-h1 --stages 4 --microbatches 8 --svg zb.svg\n          skein schedule --name interleaved:2 --stages 4 --microbatches 8`,
);

export async function scheduleCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("schedule", argv, SCHEDULE_FLAGS);
  if (flags.help) {
    process.stdout.write(SCHEDULE_HELP);
    return 0;
  }
  const v = flags.values;
  const name = String(v.name);
  let schedule: Schedule;
  try {
    schedule = buildSchedule(name, Number(v.stages), Number(v.microbatches));
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(`--name ${e.message.startsWith(name) ? "" : `${name}: `}${e.message}`);
    throw e;
  }
  const chunks = schedule.virtualStages ?? 1;
  const split = schedule.actions.some((list) => list.some((a) => a.kind === "I" || a.kind === "W"));
  for (const flag of ["cost-i", "cost-w"]) {
    if (flags.given.has(flag) && !split) throw new UserError(`--${flag} applies to schedules that split the backward (zb-h1), not ${name}`);
  }
  // Costs are per stage; an interleaved action runs one of the worker's V chunks: 1/V of it.
  const costs: Costs = { f: Number(v["cost-f"]) / chunks, b: Number(v["cost-b"]) / chunks, comm: Number(v["cost-comm"]) };
  if (v["cost-i"] !== undefined) costs.i = Number(v["cost-i"]) / chunks;
  if (v["cost-w"] !== undefined) costs.w = Number(v["cost-w"]) / chunks;

  const problems = validateSchedule(schedule);
  if (problems.length > 0) throw new Error(`generated schedule ${name} is invalid: ${problems[0]}`);
  const sim = simulate(schedule, costs);

  if (v.svg !== undefined) writeAtomically(String(v.svg), renderSvg(schedule, sim, costs));
  if (v.json) {
    const d = durations(costs);
    const summary = {
      name,
      stages: schedule.stages,
      microbatches: schedule.microbatches,
      ...(chunks > 1 ? { virtualStages: chunks } : {}),
      flush: schedule.flush,
      costs: { f: d.F, b: d.B, ...(split ? { i: d.I, w: d.W } : {}), comm: costs.comm ?? 0 },
      actions: schedule.actions,
      makespan: sim.makespan,
      bubbleFraction: sim.bubbleFraction,
      peakInFlight: sim.peakInFlight,
      maxInFlight: schedule.maxInFlight,
      ...(schedule.flush ? {} : { stashedVersions: peakStashedVersions(schedule) }),
    };
    process.stdout.write(JSON.stringify(summary) + "\n");
  } else process.stdout.write(formatSchedule(schedule, sim, costs, Number(v.width)));
  return 0;
}

const KIND_WORDS: Record<ActionKind, string> = { F: "forward", B: "backward", I: "input-gradient backward", W: "weight-gradient backward" };

/** The text report: header, wrapped timeline, then makespan, bubble and per-stage figures. */
export function formatSchedule(s: Schedule, sim: Simulation, costs: Costs, width: number): string {
  const kinds = kindsIn(s);
  const d = durations(costs);
  const costText = [...kinds].map((k) => `${k.toLowerCase()}=${fmt(d[k])}`).join(" ") + (costs.comm ? ` comm=${fmt(costs.comm)}` : "");
  const lines = [`${s.name}: ${s.stages} stage${s.stages === 1 ? "" : "s"} × ${s.microbatches} microbatch${s.microbatches === 1 ? "" : "es"}, costs ${costText}${s.flush ? "" : ", no flush (asynchronous)"}`];
  const grid = timelineGrid(s, sim, costs, width);
  lines.push(...grid.lines, "");
  lines.push(`${[...kinds].map((k) => `${k} ${KIND_WORDS[k]}`).join(", ")} (the number is the microbatch${(s.virtualStages ?? 1) > 1 ? "; .c the worker's chunk c, virtual stage c·D + stage" : ""}); -- continues the action on its left; . idle; one cell = ${fmt(grid.unit)} time unit${grid.unit === 1 ? "" : "s"}`);
  lines.push(`makespan ${fmt(sim.makespan)}, bubble fraction ${sim.bubbleFraction.toFixed(4)} (idle / (${s.stages} stages × makespan))`);
  const versions = s.flush ? undefined : peakStashedVersions(s);
  const head = ["stage", "busy", "idle", "peak in-flight", "bound", ...(versions ? ["weight versions"] : [])];
  const rows = sim.perStage.map((st, k) => [String(k), fmt(st.busy), fmt(st.idle), String(st.peakInFlight), String(s.maxInFlight[k]), ...(versions ? [String(versions[k])] : [])]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const r of [head, ...rows]) lines.push(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd());
  return lines.join("\n") + "\n";
}

function kindsIn(s: Schedule): Set<ActionKind> {
  const present = new Set(s.actions.flatMap((list) => list.map((a) => a.kind)));
  return new Set((["F", "B", "I", "W"] as const).filter((k) => present.has(k)));
}

/**
 * One row per stage, one cell per time unit (the greatest common divisor of the costs, coarsened if
 * the timeline would pass 20 000 cells); an action's first cell shows kind and microbatch (`B3`),
 * its other cells `--`. Rows wrap into blocks of at most `width` characters, each under a time ruler.
 */
function timelineGrid(s: Schedule, sim: Simulation, costs: Costs, width: number): { lines: string[]; unit: number } {
  const d = durations(costs);
  const used = [...kindsIn(s)].map((k) => d[k]).concat(costs.comm ? [costs.comm] : []);
  let unit = commonUnit(used.filter((x) => x > 0));
  const MAX_CELLS = 20_000;
  if (sim.makespan / unit > MAX_CELLS) unit = sim.makespan / MAX_CELLS;
  const cells = Math.max(1, Math.ceil(sim.makespan / unit - 1e-9));
  const digits = String(s.microbatches - 1).length;
  const chunks = s.virtualStages ?? 1;
  const cw = digits + 2 + (chunks > 1 ? 1 + String(chunks - 1).length : 0); // kind letter, microbatch, .chunk, a space
  const grid = s.actions.map(() => new Array<string>(cells).fill(".".padEnd(cw - 1)));
  for (const e of sim.timeline) {
    const c0 = Math.min(cells - 1, Math.round(e.start / unit));
    const c1 = Math.min(cells, Math.max(c0 + 1, Math.round(e.end / unit)));
    const row = grid[e.stage]!;
    const chunk = chunks > 1 ? `.${Math.floor(s.actions[e.stage]![e.index]!.stage / s.stages)}` : "";
    row[c0] = `${e.kind}${e.microbatch}${chunk}`.padEnd(cw - 1);
    for (let c = c0 + 1; c < c1; c++) row[c] = "-".repeat(cw - 1);
  }
  const labelWidth = `stage ${s.stages - 1}`.length + 2;
  const perBlock = width > 0 ? Math.max(1, Math.floor((width - labelWidth) / cw)) : cells;
  // Ruler ticks every 1, 2, 5, 10, 20, 50, … cells, far enough apart for the widest time label.
  let widest = 0;
  for (let c = 0; c <= cells; c++) widest = Math.max(widest, fmt(c * unit).length + 1);
  const tick = [1, 2, 5].flatMap((b) => [1, 10, 100, 1000, 10_000].map((p) => b * p)).sort((a, b) => a - b).find((t) => t * cw >= widest) ?? cells;
  const lines: string[] = [];
  for (let from = 0; from < cells; from += perBlock) {
    const to = Math.min(cells, from + perBlock);
    if (from > 0) lines.push("");
    let ruler = "time".padEnd(labelWidth);
    for (let c = from; c < to; c++) {
      if (c % tick !== 0) continue;
      const at = labelWidth + (c - from) * cw;
      if (c === from || ruler.length < at) ruler = ruler.padEnd(at) + fmt(c * unit);
    }
    lines.push(ruler.trimEnd());
    grid.forEach((row, k) => lines.push((`stage ${k}`.padEnd(labelWidth) + row.slice(from, to).join(" ")).trimEnd()));
  }
  return { lines, unit };
}

/** The largest u with every value a whole multiple of it (to a millionth); the smallest value if none is. */
function commonUnit(values: number[]): number {
  if (values.length === 0) return 1;
  for (const scale of [1, 10, 100, 1000, 10_000, 100_000, 1_000_000]) {
    const ints = values.map((x) => x * scale);
    if (ints.every((x) => Math.abs(x - Math.round(x)) < 1e-9 * scale)) {
      const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
      return ints.map(Math.round).reduce(gcd) / scale;
    }
  }
  return Math.min(...values);
}

const fmt = (x: number) => String(Math.round(x * 1e6) / 1e6);

/** The timeline as an SVG image: the report's Gantt chart, at 2–40 px per time unit (about 1600 px wide). */
export function renderSvg(s: Schedule, sim: Simulation, costs: Costs): string {
  const span = Math.max(sim.makespan, 1e-9);
  const d = durations(costs);
  const kinds = [...kindsIn(s)];
  const costText = `${kinds.map((k) => `${k.toLowerCase()}=${fmt(d[k])}`).join(" ")}${costs.comm ? ` comm=${fmt(costs.comm)}` : ""}`;
  return (
    ganttChart(sim.timeline, {
      title: `${s.name}: ${s.stages} stages × ${s.microbatches} microbatches`,
      note: `costs ${costText}; makespan ${fmt(sim.makespan)}, bubble ${sim.bubbleFraction.toFixed(4)}`,
      xLabel: "time",
      stages: s.stages,
      kindNames: KIND_WORDS,
      scale: Math.min(40, Math.max(2, 1600 / span)),
    }) + "\n"
  );
}

/** Write via a temporary file in the same folder and a rename: the file is whole or not there. */
function writeAtomically(file: string, text: string): void {
  const path = resolve(file);
  const dir = dirname(path);
  if (!existsSync(dir)) throw new UserError(`--svg ${file}: folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new UserError(`--svg ${file}: ${dir} is not a folder`);
  if (existsSync(path) && statSync(path).isDirectory()) throw new UserError(`--svg ${file}: is a folder`);
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(temp, text);
    renameSync(temp, path);
  } catch (e) {
    try {
      unlinkSync(temp);
    } catch {
      // nothing was written
    }
    const err = e as NodeJS.ErrnoException;
    throw new UserError(`--svg ${file}: cannot write (${err.code ?? err.message})`);
  }
}
