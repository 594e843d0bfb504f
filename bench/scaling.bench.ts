/**
 * Worker scaling in one process, side by side: for sync at batch 128 and 256 and hogwild at batch 64
 * (mlp:784-256-128-10), one epoch on 1 worker, on 2 workers, and on two independent 1-worker sessions
 * running at the same time (the capacity: what the machine gives two jobs that never synchronise).
 *
 *   npx bun bench/scaling.bench.ts [--pairs 15] [--samples 4096]
 *
 * mitata times each configuration (its samples run back to back); the ratios come from the paired
 * loop, where the three measurements of a configuration alternate epoch by epoch (rotating which goes
 * first), so drift slower than a few epochs cancels. Printed: median ratio and its interquartile
 * range over the rounds. The machine is shared: read ratios, never one absolute rate.
 */
import { bench, do_not_optimize, group, run } from "mitata";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { benchArgs, numberFlag } from "./args.ts";
import { epochsAtOnce, pairedScaling } from "./in-process-scaling.ts";
import { withIqr } from "./stats.ts";

const SCRIPT = "scaling.bench";
const { values: v } = benchArgs(SCRIPT, { options: { pairs: { type: "string" }, samples: { type: "string" } } });
const PAIRS = numberFlag(SCRIPT, "pairs", v.pairs, 15, { min: 1, max: 1000, integer: true });
const SAMPLES = numberFlag(SCRIPT, "samples", v.samples, 4096, { min: 256, max: 1 << 20, integer: true });

const CASES = [
  { name: "sync b128", algo: "sync", batch: 128 },
  { name: "sync b256", algo: "sync", batch: 256 },
  { name: "hogwild b64", algo: "hogwild", batch: 64 },
] as const;

const config = (algo: string, batch: number, workers: number): TrainConfig => ({
  algo,
  model: "mlp:784-256-128-10",
  data: `synthetic:${SAMPLES}`,
  epochs: 1_000_000,
  batch,
  workers,
  executor: "threads",
  seed: 1,
  optimizer: { ...defaultOptimizer("sgd"), lr: 0.01 },
});

interface Case {
  name: string;
  one: TrainingSession;
  two: TrainingSession;
  pair: [TrainingSession, TrainingSession];
}
const cases: Case[] = [];
for (const c of CASES) {
  cases.push({
    name: c.name,
    one: await TrainingSession.open(config(c.algo, c.batch, 1)),
    two: await TrainingSession.open(config(c.algo, c.batch, 2)),
    pair: [await TrainingSession.open(config(c.algo, c.batch, 1)), await TrainingSession.open(config(c.algo, c.batch, 1))],
  });
}

// Times per epoch; the capacity row trains twice the samples (one epoch in each session).
for (const c of cases) {
  group(c.name, () => {
    bench(`${c.name}  1 worker`, async () => do_not_optimize(await c.one.trainEpoch()));
    bench(`${c.name}  2 workers`, async () => do_not_optimize(await c.two.trainEpoch()));
    bench(`${c.name}  2 × 1-worker sessions at once`, async () => do_not_optimize(await epochsAtOnce(c.pair)));
  });
}
await run();

console.log(`\nmlp:784-256-128-10, ${SAMPLES} samples per epoch, ${PAIRS} alternating rounds; ratio median [p25–p75]`);
console.log(`  ${"config".padEnd(12)} ${"2w/1w".padEnd(18)} ${"capacity/1w".padEnd(18)} 2w/capacity`);
for (const c of cases) {
  const ratios = await pairedScaling(c, PAIRS);
  console.log(`  ${c.name.padEnd(12)} ${withIqr(ratios.two).padEnd(18)} ${withIqr(ratios.capacity).padEnd(18)} ${withIqr(ratios.twoOfCapacity)}`);
}
for (const c of cases) for (const s of [c.one, c.two, ...c.pair]) s.close();
