/**
 * End-to-end training throughput, side by side in one run: skein on 1 and 2 workers against
 * TensorFlow.js with its wasm backend (single-threaded under Bun), all training the same
 * mlp:784-256-128-10 with SGD at batch 128 on the same number of samples per iteration.
 *
 *   npx bun bench/train.bench.ts
 *
 * One iteration = one epoch of SAMPLES samples (skein: a warm worker pool runs the epoch; tfjs:
 * the same number of 128-sample steps). Printed: median samples/s and the ratios that matter.
 *
 * This machine's speed drifts by ±30% over seconds (shared host). mitata runs each benchmark's samples
 * back to back, so its 1-vs-2-worker ratio compares different moments; the scaling ratio is therefore
 * also measured paired: 1-worker and 2-worker epochs alternate, and the median of per-pair ratios is
 * reported, which cancels drift slower than one pair.
 */
import { bench, do_not_optimize, run, summary } from "mitata";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { createTfjsMlp } from "./peers/tfjs-mlp.ts";
import { benchArgs } from "./args.ts";

benchArgs("train.bench", { options: {} }); // takes no flags: refuse any rather than ignore it

const BATCH = 128;
const STEPS = 16;
const SAMPLES = BATCH * STEPS;
const MODEL = "mlp:784-256-128-10";

const config = (workers: number): TrainConfig => ({
  algo: "sync",
  model: MODEL,
  data: `synthetic:${SAMPLES}`,
  epochs: 1_000_000,
  batch: BATCH,
  workers,
  executor: "threads",
  seed: 1,
  optimizer: { ...defaultOptimizer("sgd"), lr: 0.01 },
});

const skein1 = await TrainingSession.open(config(1));
const skein2 = await TrainingSession.open(config(2));
const tfjs = await createTfjsMlp({ widths: [784, 256, 128, 10], batch: BATCH, lr: 0.01 });

summary(() => {
  bench(`tfjs-wasm  1 thread  (${tfjs.backend})`, async () => {
    for (let s = 0; s < STEPS; s++) do_not_optimize(await tfjs.step());
  }).baseline(true);
  bench(`skein      1 worker  (${skein1.kernels})`, async () => do_not_optimize(await skein1.trainEpoch()));
  bench(`skein      2 workers (${skein2.kernels})`, async () => do_not_optimize(await skein2.trainEpoch()));
});

const { benchmarks } = await run();

const PAIRS = 40;
const pairRatios: number[] = [];
for (let i = 0; i < PAIRS; i++) {
  let t = performance.now();
  await skein1.trainEpoch();
  const one = performance.now() - t;
  t = performance.now();
  await skein2.trainEpoch();
  pairRatios.push(one / (performance.now() - t));
}
pairRatios.sort((a, b) => a - b);
const pairedScaling = pairRatios[PAIRS >> 1]!;
skein1.close();
skein2.close();
tfjs.dispose();

const median = (i: number) => benchmarks[i]!.runs[0]!.stats!.p50 / 1e9; // ns → s
const rate = (i: number) => SAMPLES / median(i);
const [tf, one, two] = [rate(0), rate(1), rate(2)];
console.log(`\n${MODEL}, batch ${BATCH}, median samples/s:`);
console.log(`  tfjs-wasm     ${tf.toFixed(0)}`);
console.log(`  skein 1 worker ${one.toFixed(0)}   ${(one / tf).toFixed(2)}× tfjs-wasm   (target ≥ 10×)`);
console.log(`  skein 2 workers ${two.toFixed(0)}   ${(two / one).toFixed(2)}× 1 worker`);
console.log(`  2 workers / 1 worker, paired (median of ${PAIRS} alternating epoch pairs): ${pairedScaling.toFixed(2)}×   (target ≥ 1.8×)`);
