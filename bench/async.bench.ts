/**
 * The asynchronous family side by side on this machine's cores, in one run:
 *
 *   npx bun bench/async.bench.ts [--target 0.93] [--seeds 3]
 *
 * 1. Time to a target test accuracy for the runs of `skein experiment async` (the full grid in
 *    engine/experiments/suites.ts: mlp:784-256-128-10 on the embedded digits, batch 64, momentum,
 *    ≤ 10 epochs; sync, hogwild, lap, lpp and layerwise at 2 threads, layerwise also in the paper's
 *    1 forward : 2 backward form, 3 threads on 2 cores). Accuracy is checked after every epoch; the
 *    time is training time only, summed until the first epoch at or above the target. Median over
 *    seeds; ratios layerwise/hogwild and layerwise/sync.
 * 2. hogwild's minibatch updates/s on 2 workers vs 1, paired (alternating epochs, median of ratios:
 *    this shared host drifts by ±30% over seconds).
 * 3. Control overhead at batch 64: share of the programs' busy time spent outside kernels.
 * 4. β = backward / forward time per batch, measured on layerwise's threads.
 */
import { SUITES } from "../engine/experiments/suites.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { benchArgs, numberFlag } from "./args.ts";

const SCRIPT = "async.bench";
const { values: flags } = benchArgs(SCRIPT, { options: { target: { type: "string" }, seeds: { type: "string" } } });
const TARGET = numberFlag(SCRIPT, "target", flags.target, 0.93, { min: 0, max: 1 });
const SEEDS = numberFlag(SCRIPT, "seeds", flags.seeds, 3, { min: 1, integer: true });

/** The contenders: the async experiment suite's full grid, so the bench and `skein experiment async` run the same configs. */
const contenders = SUITES.async.full.runs.map((r) => ({ name: r.label, config: r.config }));
/** A run of the suite by its label (the suite renaming one fails here, not as an undefined later). */
const byLabel = (label: string) => {
  if (!contenders.some((c) => c.name === label)) throw new Error(`${SCRIPT}: the async suite has no run labelled "${label}"`);
  return label;
};
const SYNC = byLabel("sync 2w");
const HOGWILD = byLabel("hogwild 2w");
const LAYERWISE_1_1 = byLabel("layerwise 1F:1B q2");
const LAYERWISE_1_2 = byLabel("layerwise 1F:2B q4");
const MAX_EPOCHS = Math.max(...contenders.map((c) => c.config.epochs));
/** The base of the sections below: the suite's sync run. */
const base: TrainConfig = { ...contenders.find((c) => c.name === SYNC)!.config, seed: 1 };

interface Outcome {
  seconds: number; // training time to target (Infinity if never reached)
  epochs: number;
  finalAccuracy: number;
  samplesPerSec: number;
  beta?: number;
}

/** Train until the target accuracy (checked per epoch) or MAX_EPOCHS. */
async function timeToTarget(config: TrainConfig): Promise<Outcome> {
  let seconds = 0;
  let reachedAt = 0;
  let reachedSeconds = Infinity;
  const summary = await train(config, {
    onEpoch: (m) => {
      seconds += m.trainSeconds;
      if (reachedAt === 0 && m.testAccuracy >= TARGET) {
        reachedAt = m.epoch;
        reachedSeconds = seconds;
      }
    },
  });
  return { seconds: reachedSeconds, epochs: reachedAt, finalAccuracy: summary.testAccuracy, samplesPerSec: summary.samplesPerSec, beta: summary.beta };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

console.log(`time to ${(TARGET * 100).toFixed(0)}% test accuracy, ${base.model}, ${base.data}, batch ${base.batch}, ${SEEDS} seeds (median), ≤ ${MAX_EPOCHS} epochs`);
const results = new Map<string, Outcome[]>();
for (let seed = 1; seed <= SEEDS; seed++) {
  // Seeds outer, contenders inner: every contender sees every stretch of machine speed.
  for (const c of contenders) {
    const outcome = await timeToTarget({ ...c.config, seed });
    results.set(c.name, [...(results.get(c.name) ?? []), outcome]);
  }
}
const secondsOf = (name: string) => median(results.get(name)!.map((o) => o.seconds));
console.log(`${"algorithm".padEnd(32)} ${"s to target".padStart(11)} ${"epochs".padStart(7)} ${"final acc".padStart(9)} ${"samples/s".padStart(10)}`);
for (const c of contenders) {
  const os = results.get(c.name)!;
  const s = secondsOf(c.name);
  console.log(
    `${c.name.padEnd(32)} ${(Number.isFinite(s) ? s.toFixed(2) : "never").padStart(11)} ${String(median(os.map((o) => o.epochs || Infinity))).padStart(7)} ${(median(os.map((o) => o.finalAccuracy)) * 100).toFixed(2).padStart(8)}% ${median(os.map((o) => o.samplesPerSec)).toFixed(0).padStart(10)}`,
  );
}
const lw = secondsOf(LAYERWISE_1_1);
const lw3 = secondsOf(LAYERWISE_1_2);
console.log(`\nlayerwise 1F:1B time-to-target: ${(secondsOf(HOGWILD) / lw).toFixed(2)}× hogwild's speed, ${(secondsOf(SYNC) / lw).toFixed(2)}× sync's (> 1: layerwise faster)`);
console.log(`layerwise 1F:2B (3 threads) time-to-target: ${(secondsOf(HOGWILD) / lw3).toFixed(2)}× hogwild's speed, ${(secondsOf(SYNC) / lw3).toFixed(2)}× sync's`);
const betas = results.get(LAYERWISE_1_1)!.map((o) => o.beta ?? NaN);
console.log(`β (backward / forward time per batch, layerwise 1F:1B threads): ${median(betas).toFixed(2)}`);

// hogwild scaling, paired epochs
const open = (workers: number) => TrainingSession.open({ ...base, algo: "hogwild", workers, data: "synthetic:4096", epochs: 1_000_000, optimizer: defaultOptimizer("sgd") });
const one = await open(1);
const two = await open(2);
const ratios: number[] = [];
for (let i = 0; i < 30; i++) {
  const a = await one.trainEpoch();
  const b = await two.trainEpoch();
  ratios.push(b.updates / b.seconds / (a.updates / a.seconds));
}
one.close();
two.close();
console.log(`\nhogwild updates/s, 2 workers / 1 worker, paired (median of 30): ${median(ratios).toFixed(2)}×   (target ≥ 1.7×)`);

// control overhead at batch 64
for (const algo of ["sync", "hogwild", "layerwise"] as const) {
  const config: TrainConfig = { ...base, algo, epochs: 2, ...(algo === "layerwise" ? { async: { fwdThreads: 1, bwdThreads: 1, queue: 2 } } : {}) };
  const s = await train(config, { profileKernels: true });
  console.log(`control overhead at batch 64, ${algo}: ${(s.controlOverhead! * 100).toFixed(1)}% of busy time outside kernels   (target ≤ 10%)`);
}
