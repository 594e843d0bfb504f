/**
 * The pipeline family side by side, in one run:
 *
 *   npx bun bench/pipeline.bench.ts [--epochs 5] [--quick]
 *
 * 1. Throughput of asynchronous 1F1B against GPipe at M = D, in the simulator (f = 1, b = 2, over
 *    32 batches: GPipe flushes every batch, async 1F1B runs one window) and on real workers (D = 2 on
 *    this machine's 2 cores: pipedream vs gpipe epochs alternating, median of per-pair ratios).
 * 2. The experiment: the runs of `skein experiment pipeline` (engine/experiments/suites.ts: gpipe,
 *    1f1b, pipedream, 2bw, spectrain, pipeoptim on the embedded digits at D = 2 and 4 with
 *    mlp:784-256-256-128-10, and lenet at D = 2; --quick: the suite's quick grid), equal epochs: final
 *    test accuracy, samples/s, per-stage inconsistency (‖W_F − W_B‖², mean over microbatches of the
 *    last epoch) and what each stage keeps in memory.
 */
import { asyncOneFOneB, gpipe } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { SUITES } from "../engine/experiments/suites.ts";
import { train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { benchArgs, numberFlag } from "./args.ts";

const SCRIPT = "pipeline.bench";
const { values: flags } = benchArgs(SCRIPT, { options: { quick: { type: "boolean", default: false }, epochs: { type: "string" } } });
const quick = flags.quick ?? false;
const suite = quick ? SUITES.pipeline.quick : SUITES.pipeline.full;
const EPOCHS = numberFlag(SCRIPT, "epochs", flags.epochs, suite.runs[0]!.config.epochs, { min: 1, integer: true });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

// 1a. simulator
console.log("async 1F1B / GPipe throughput at M = D (simulated, f = 1, b = 2, 32 batches):");
for (const D of [2, 4, 8]) {
  const batches = 32;
  const g = simulate(gpipe(D, D), { f: 1, b: 2 }).makespan * batches;
  const a = simulate(asyncOneFOneB(D, D * batches), { f: 1, b: 2 }).makespan;
  console.log(`  D = ${D}: ${(g / a).toFixed(2)}×   (target ≥ 1×)`);
}

// 1b. real workers: a model whose two stages cost about the same (784·256 ≈ 256·512 + 512·256 MACs)
const base: TrainConfig = {
  algo: "gpipe",
  model: "mlp:784-256-256-128-10",
  data: "digits",
  epochs: 1_000_000,
  batch: 64,
  workers: 2,
  executor: "threads",
  seed: 1,
  optimizer: defaultOptimizer("momentum"),
  pipeline: { stages: 2, microbatches: 2 },
};
{
  const balanced = { ...base, model: "mlp:784-256-512-256-10", data: "synthetic:4096", batch: 128 };
  const g = await TrainingSession.open({ ...balanced, algo: "gpipe" });
  const a = await TrainingSession.open({ ...balanced, algo: "pipedream" });
  const ratios: number[] = [];
  for (let i = 0; i < (quick ? 5 : 20); i++) {
    const eg = await g.trainEpoch();
    const ea = await a.trainEpoch();
    ratios.push(ea.samples / ea.seconds / (eg.samples / eg.seconds));
  }
  g.close();
  a.close();
  console.log(`async 1F1B (pipedream) / gpipe samples/s on 2 workers, D = M = 2, mlp:784-256-512-256-10, batch 128, paired (median): ${median(ratios).toFixed(2)}×   (target ≥ 1×)\n`);
}

// 2. experiment: the pipeline suite's runs, at EPOCHS epochs and seed 1
const first = suite.runs[0]!.config;
console.log(`${EPOCHS} epochs, batch ${first.batch}, ${first.pipeline!.microbatches} microbatches, ${first.optimizer.kind} lr ${first.optimizer.lr}, ${first.data}:`);
console.log(`${"run".padEnd(20)} ${"test acc".padStart(8)} ${"samples/s".padStart(9)}  ${"inconsistency per stage".padEnd(28)} weight versions / activation KiB per stage`);
for (const run of suite.runs) {
  const s = await train({ ...run.config, epochs: EPOCHS, seed: 1 });
  const stages = s.stages as { extraWeightVersions: number; activationBytes: number }[];
  const incons = s.inconsistency ? s.inconsistency.map((x) => x.toExponential(1)).join(" ") : "-";
  const memory = stages.map((st) => `${st.extraWeightVersions}/${(st.activationBytes / 1024).toFixed(0)}`).join(" ");
  console.log(`${run.label.padEnd(20)} ${(s.testAccuracy * 100).toFixed(2).padStart(7)}% ${s.samplesPerSec.toFixed(0).padStart(9)}  ${incons.padEnd(28)} ${memory}`);
}
