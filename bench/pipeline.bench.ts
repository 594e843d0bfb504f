/**
 * The pipeline family side by side, in one run:
 *
 *   npx bun bench/pipeline.bench.ts [--quick] [--from DIR] [--no-experiment]
 *
 * 1. Throughput of asynchronous 1F1B against GPipe at M = D, in the simulator (f = 1, b = 2, over
 *    32 batches: GPipe flushes every batch, async 1F1B runs one window) and on real workers (D = 2 on
 *    this machine's 2 cores: pipedream vs gpipe epochs alternating, median of per-pair ratios).
 * 2. What weight prediction costs: pipeoptim and spectrain against pipedream at D = 2, epochs
 *    alternating in one process, median of per-pair ratios (target ≥ 0.95×), per unit (microbatch:
 *    a prediction per microbatch; batch: one per batch).
 * 3. The fair experiment (the `pipeline` suite of `skein experiment`, engine/experiments/suites.ts):
 *    every strategy one update per 64 samples, momentum and Adam, D = 2 and 4, seeds 1..3 (--quick:
 *    one seed, D = 2, one epoch). Per (optimizer, D): each strategy's test accuracy as mean ± sd over
 *    seeds, then PipeOptim against PipeDream, 2BW, SpecTrain and GPipe as paired differences per
 *    seed (mean ± sd, and in how many seeds PipeOptim ≥ the other). --from DIR summarises the
 *    results.json of an earlier `skein experiment pipeline` instead of running it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { asyncOneFOneB, gpipe } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { runExperiment, type ResultRow } from "../engine/experiments/run.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { benchArgs } from "./args.ts";

const { values: flags } = benchArgs("pipeline.bench", {
  options: { quick: { type: "boolean", default: false }, from: { type: "string" }, "no-experiment": { type: "boolean", default: false } },
});
const quick = flags.quick ?? false;
const from = flags.from;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

if (!from) {
  // 1a. simulator
  console.log("async 1F1B / GPipe throughput at M = D (simulated, f = 1, b = 2, 32 batches):");
  for (const D of [2, 4, 8]) {
    const batches = 32;
    const g = simulate(gpipe(D, D), { f: 1, b: 2 }).makespan * batches;
    const a = simulate(asyncOneFOneB(D, D * batches), { f: 1, b: 2 }).makespan;
    console.log(`  D = ${D}: ${(g / a).toFixed(2)}×   (target ≥ 1×)`);
  }

  // Real workers: a model whose two stages cost about the same (784·256 ≈ 256·512 + 512·256 MACs).
  const balanced: TrainConfig = {
    algo: "gpipe",
    model: "mlp:784-256-512-256-10",
    data: "synthetic:4096",
    epochs: 1_000_000,
    batch: 128,
    workers: 2,
    executor: "threads",
    seed: 1,
    optimizer: defaultOptimizer("momentum"),
    pipeline: { stages: 2, microbatches: 2 },
  };
  /** Epochs of each config alternating, in one process; per round the samples/s ratio to the first. */
  async function paired(configs: TrainConfig[], rounds: number): Promise<number[][]> {
    const sessions = [];
    for (const c of configs) sessions.push(await TrainingSession.open(c));
    const ratios: number[][] = configs.map(() => []);
    for (let i = 0; i < rounds; i++) {
      const rates: number[] = [];
      for (const s of sessions) {
        const e = await s.trainEpoch();
        rates.push(e.samples / e.seconds);
      }
      rates.forEach((r, j) => ratios[j]!.push(r / rates[0]!));
    }
    for (const s of sessions) s.close();
    return ratios;
  }

  // 1b.
  {
    const [, a] = await paired([{ ...balanced, algo: "gpipe" }, { ...balanced, algo: "pipedream" }], quick ? 5 : 20);
    console.log(`async 1F1B (pipedream) / gpipe samples/s on 2 workers, D = M = 2, mlp:784-256-512-256-10, batch 128, paired (median): ${median(a!).toFixed(2)}×   (target ≥ 1×)\n`);
  }

  // 2.
  for (const unit of ["microbatch", "batch"] as const) {
    for (const optimizer of ["momentum", "adam"] as const) {
      const at = (algo: TrainConfig["algo"]): TrainConfig => ({ ...balanced, algo, optimizer: defaultOptimizer(optimizer), pipeline: { stages: 2, microbatches: 4, unit } });
      const [, spectrain, pipeoptim] = await paired([at("pipedream"), at("spectrain"), at("pipeoptim")], quick ? 5 : 15);
      console.log(
        `D = 2, unit ${unit.padEnd(10)} ${optimizer.padEnd(8)}: spectrain / pipedream ${median(spectrain!).toFixed(3)}×, pipeoptim / pipedream ${median(pipeoptim!).toFixed(3)}×  (paired epochs, median; target ≥ 0.95×)`,
      );
    }
  }
  console.log("");
}

// 3. The fair experiment.
if (!flags["no-experiment"]) {
  let rows: ResultRow[];
  if (from) rows = JSON.parse(readFileSync(join(from, "results.json"), "utf8")) as ResultRow[];
  else {
    const result = await runExperiment("pipeline", { quick, onRun: (line) => console.error(line) });
    console.log(`experiment folder: ${result.out}`);
    rows = result.rows;
  }
  summarise(rows);
}

function summarise(rows: ResultRow[]): void {
  const meanSd = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
    return { mean, sd };
  };
  const pct = (x: number) => (x * 100).toFixed(2);
  // Labels are "<grid> <optimizer> <algo>": group by everything before the algo.
  const groups = new Map<string, Map<string, Map<number, number>>>();
  for (const r of rows) {
    const cut = r.label.lastIndexOf(" ");
    const group = r.label.slice(0, cut);
    const algo = r.label.slice(cut + 1);
    if (!groups.has(group)) groups.set(group, new Map());
    const g = groups.get(group)!;
    if (!g.has(algo)) g.set(algo, new Map());
    g.get(algo)!.set(r.seed, r.diverged !== undefined ? NaN : r.testAccuracy!);
  }
  for (const [group, algos] of groups) {
    console.log(`\n${group}: test accuracy, mean ± sd over seeds`);
    for (const [algo, bySeed] of algos) {
      const { mean, sd } = meanSd([...bySeed.values()]);
      console.log(`  ${algo.padEnd(10)} ${pct(mean)}% ± ${pct(sd)}  (${bySeed.size} seeds)`);
    }
    const po = algos.get("pipeoptim");
    if (!po) continue;
    for (const other of ["pipedream", "2bw", "spectrain", "gpipe"]) {
      const o = algos.get(other);
      if (!o) continue;
      const seeds = [...po.keys()].filter((s) => o.has(s));
      const diffs = seeds.map((s) => po.get(s)! - o.get(s)!);
      const { mean, sd } = meanSd(diffs);
      const wins = diffs.filter((d) => d >= 0).length;
      console.log(`  pipeoptim − ${other.padEnd(9)} ${mean >= 0 ? "+" : ""}${pct(mean)} ± ${pct(sd)} points; pipeoptim ≥ ${other} in ${wins}/${diffs.length} seeds`);
    }
  }
}
