/**
 * Bubbles on real workers: 1F1B against ZB-H1 (its backwards split into I and W) and interleaved
 * 1F1B (two chunks per worker) at D = 2 on the threads executor, each against what the schedule
 * simulator predicts from the F, B, I and W costs measured in the same epochs.
 *
 *   npx bun bench/zero-bubble.bench.ts [--rounds N] [--microbatches M] [--batch B] [--model SPEC] [--schedules 1f1b,zb-h1,interleaved:2]
 *
 * Every stage records a span per action (the Chrome trace's). Per window (one batch: M microbatches
 * through both stages) the measured bubble is 1 − Σ action time / (D × the window's span, first
 * action start to last action end); an epoch's figure sums over its windows, leaving out the first
 * (warm-up). The prediction simulates the same schedule with each stage's mean F, B, I, W of that
 * epoch (per stage: the last stage's F also computes the loss; an interleaved stage's mean over its
 * chunks). Epochs of the schedules
 * alternate in one process; the figures are medians over rounds.
 */
import { buildSchedule, type Schedule } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate, type Costs } from "../engine/algorithms/pipeline/simulate.ts";
import type { SpanLog } from "../engine/runtime/trace.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { benchArgs, numberFlag } from "./args.ts";

const SCRIPT = "zero-bubble.bench";
const { values: flags } = benchArgs(SCRIPT, {
  options: { rounds: { type: "string" }, microbatches: { type: "string" }, batch: { type: "string" }, model: { type: "string" }, schedules: { type: "string" } },
});
const rounds = numberFlag(SCRIPT, "rounds", flags.rounds, 7, { min: 1, max: 100, integer: true });
const M = numberFlag(SCRIPT, "microbatches", flags.microbatches, 4, { min: 2, max: 64, integer: true });
const batch = numberFlag(SCRIPT, "batch", flags.batch, 512, { min: M, max: 4096, integer: true });
const model = flags.model ?? "mlp:784-1024-1024-1024-1024-10"; // two stages of about 1.8M and 2.1M weights
const D = 2;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const mean = (xs: number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

interface EpochFigures {
  measured: number;
  predicted: number;
  costs: Costs;
}

/** Measured and predicted bubble of one epoch, from each stage's spans. */
function analyse(traces: SpanLog[], schedule: Schedule): EpochFigures {
  const windows = new Map<number, { start: number; end: number; busy: number }>();
  const perStage = traces.map(() => ({ F: [] as number[], B: [] as number[], I: [] as number[], W: [] as number[] }));
  traces.forEach((log, k) => {
    for (let j = 0; j < log.spans.length; j += 3) {
      const name = log.names[log.spans[j]!]!;
      const kind = name[0] as "F" | "B" | "I" | "W";
      if (!/^[FBIW]\d+$/.test(name)) continue; // "update" and the like: not an action
      const unit = Number(name.slice(1));
      const w = Math.floor(unit / M);
      if (w === 0) continue; // warm-up
      const start = log.spans[j + 1]!;
      const took = log.spans[j + 2]!;
      const win = windows.get(w) ?? { start: Infinity, end: -Infinity, busy: 0 };
      win.start = Math.min(win.start, start);
      win.end = Math.max(win.end, start + took);
      win.busy += took;
      windows.set(w, win);
      perStage[k]![kind].push(took);
    }
  });
  let idle = 0;
  let total = 0;
  for (const w of windows.values()) {
    total += D * (w.end - w.start);
    idle += D * (w.end - w.start) - w.busy;
  }
  const split = schedule.actions.some((l) => l.some((a) => a.kind === "I"));
  const costs: Costs = {
    f: mean(perStage.map((s) => mean(s.F))),
    b: 1,
    perStage: perStage.map((s) => (split ? { f: mean(s.F), i: mean(s.I), w: mean(s.W), b: mean(s.I) + mean(s.W) } : { f: mean(s.F), b: mean(s.B) })),
  };
  return { measured: idle / total, predicted: simulate(schedule, costs).bubbleFraction, costs };
}

const base: TrainConfig = {
  algo: "1f1b",
  model,
  data: `synthetic:${batch * 12}`,
  epochs: 1_000_000,
  batch,
  workers: D,
  executor: "threads",
  seed: 1,
  optimizer: defaultOptimizer("momentum"),
  pipeline: { stages: D, microbatches: M },
};
const names = (flags.schedules ?? "1f1b,zb-h1,interleaved:2").split(",");
const schedules: Record<string, Schedule> = {};
for (const name of names) {
  try {
    schedules[name] = buildSchedule(name, D, M);
  } catch (e) {
    console.error(`${SCRIPT}: --schedules ${name}: ${(e as Error).message}`);
    process.exit(2);
  }
}
const sessions: Record<string, TrainingSession> = {};
for (const name of names) sessions[name] = await TrainingSession.open({ ...base, pipeline: { ...base.pipeline, schedule: schedules[name] } }, { trace: true });
const figures: Record<string, EpochFigures[]> = Object.fromEntries(names.map((n) => [n, []]));
const seconds: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r <= rounds; r++) {
  for (const name of names) {
    const e = await sessions[name].trainEpoch();
    if (r === 0) continue; // warm-up epoch (kernel compilation, page faults)
    figures[name].push(analyse(e.results.map((x) => x.trace!), schedules[name]));
    seconds[name].push(e.seconds);
  }
}
for (const s of Object.values(sessions)) s.close();

const ms = (us: number) => (us / 1000).toFixed(2);
console.log(`${model}, batch ${batch}, D = ${D}, M = ${M}, threads executor, ${rounds} epochs each (alternating), medians:`);
console.log("schedule        measured bubble  predicted (simulator, measured costs)  measured/predicted  epoch s  costs per stage (ms)");
for (const name of names) {
  const f = figures[name];
  const measured = median(f.map((x) => x.measured));
  const predicted = median(f.map((x) => x.predicted));
  const ratio = median(f.map((x) => x.measured / x.predicted));
  const costs = f[f.length >> 1]!.costs.perStage!.map((c, k) => `stage ${k}: ${Object.entries(c).map(([kind, v]) => `${kind} ${ms(v!)}`).join(" ")}`).join("; ");
  console.log(`${name.padEnd(14)}  ${(measured * 100).toFixed(1).padStart(14)}%  ${(predicted * 100).toFixed(1).padStart(36)}%  ${ratio.toFixed(2).padStart(18)}×  ${median(seconds[name]).toFixed(2).padStart(7)}  ${costs}`);
}
for (const name of names.slice(1)) {
  const ratio = median(seconds[name]!.map((s, i) => s / seconds[names[0]!]![i]!));
  console.log(`${name} / ${names[0]} epoch time, paired: ${ratio.toFixed(3)}×`);
}
console.log("(target: measured bubble within 20% of the prediction for each schedule)");
