/**
 * `skein experiment scaling`: every family at 1 to 64 programs on the simulated executor, in virtual
 * time on an ideal machine (one core per program, the papers' many-device setting), with the default
 * cost table (or the one calibrated here, see `skein calibrate`). Same model, data and epochs per part:
 *
 *  - async: sync, hogwild and lap (two Hogwild! groups averaged every 8 batches) at P = 1…32, and
 *    layerwise with the paper's 1 forward : 2 backward threads per replica (3, 6, 12, 24 programs)
 *    and with 1 : 1 (β ≈ 1 once the backward is split across layers' turns) at 2…32;
 *  - pipelines: gpipe, 1f1b, pipedream and pipeoptim at D = 2, 4, 8 stages of a model with 8 layers
 *    with parameters, 8 microbatches per batch (the bubble is (D−1)/(M+D−1) for the flushed ones);
 *  - gossip: pmsgd (ring all-reduce) vs dmsgd and decentlam on ring and symmetric exponential graphs
 *    (DecentLaM with momentum is unstable on the directed one), n = 8…64
 *    nodes, one node per program, messages over 10 GbE and 100 GbE.
 *
 * Seconds and samples/s in the results are virtual.
 */
import type { Claim } from "../report/claims.ts";
import { defaultOptimizer } from "../optim/optimizer.ts";
import type { TrainConfig } from "../train.ts";
import type { RunSpec, Suite } from "./suites.ts";

const ASYNC_MODEL = "mlp:784-256-128-10";
/** Eight layers with parameters: a stage each at D = 8. */
const PIPELINE_MODEL = "mlp:784-128-128-128-128-128-128-128-10";

const run = (over: Partial<Omit<TrainConfig, "seed">>, network = "shm"): Omit<TrainConfig, "seed"> => ({
  algo: "sync",
  model: ASYNC_MODEL,
  data: "digits",
  epochs: 1,
  batch: 64,
  workers: 1,
  executor: "simulated",
  optimizer: { ...defaultOptimizer("momentum"), lr: 0.02, momentum: 0.9 },
  simulation: { machine: "ideal", network },
  ...over,
});

function asyncRuns(epochs: number, ps: number[]): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const P of ps) {
    runs.push({ label: `sync P=${P}`, config: run({ algo: "sync", workers: P, epochs }) });
    runs.push({ label: `hogwild P=${P}`, config: run({ algo: "hogwild", workers: P, epochs }) });
    if (P >= 2 && P % 2 === 0) runs.push({ label: `lap 2 groups P=${P}`, config: run({ algo: "lap", workers: P, epochs, async: { replicas: 2, avgEvery: 8 } }) });
    if (P >= 2 && P % 2 === 0) {
      runs.push({ label: `layerwise 1F:1B ×${P / 2} P=${P}`, config: run({ algo: "layerwise", workers: P, epochs, async: { fwdThreads: 1, bwdThreads: 1, queue: 2, replicas: P / 2, avgEvery: 8 } }) });
    }
    const r = Math.max(1, Math.round((P * 3) / 4 / 3)); // 1F:2B replicas for about 3/4 P programs: 3, 6, 12, 24
    if (P >= 4) runs.push({ label: `layerwise 1F:2B ×${r} P=${3 * r}`, config: run({ algo: "layerwise", workers: 3 * r, epochs, async: { fwdThreads: 1, bwdThreads: 2, queue: 4, replicas: r, avgEvery: 8 } }) });
  }
  return runs;
}

function pipelineRuns(epochs: number, depths: number[]): RunSpec[] {
  return depths.flatMap((D) =>
    ["gpipe", "1f1b", "pipedream", "pipeoptim"].map((algo) => ({
      label: `${algo} D=${D}`,
      config: run({ algo, model: PIPELINE_MODEL, workers: D, epochs, pipeline: { stages: D, microbatches: 8 } }),
    })),
  );
}

function gossipRuns(epochs: number, nodes: number[], networks: string[], topologies: string[]): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const network of networks) {
    for (const n of nodes) {
      runs.push({ label: `pmsgd n=${n} ${network}`, config: run({ algo: "pmsgd", workers: n, epochs, batch: 16, gossip: { nodes: n, topology: "ring" } }, network) });
      for (const topology of topologies) {
        for (const algo of ["dmsgd", "decentlam"]) {
          runs.push({ label: `${algo} ${topology} n=${n} ${network}`, config: run({ algo, workers: n, epochs, batch: 16, gossip: { nodes: n, topology } }, network) });
        }
      }
    }
  }
  return runs;
}

/** The three questions as claims, at the largest sizes a form runs. */
function scalingClaims(P: number, D: number, n: number): Claim[] {
  return [
    { text: `layerwise (1F:1B) reaches the target before hogwild at P = ${P}`, source: "Fokam et al., arXiv 2410.05985", metric: "timeToTarget", a: `layerwise 1F:1B ×${P / 2} P=${P}`, b: `hogwild P=${P}`, relation: "<" },
    { text: `1F1B processes more samples per second than GPipe at D = ${D}`, source: "Narayanan et al. 2021; Fan et al., DAPPLE", metric: "samplesPerSec", a: `1f1b D=${D}`, b: `gpipe D=${D}`, relation: ">" },
    { text: `ring gossip (DmSGD) trains more samples per second than all-reduce at n = ${n} over 10 GbE`, source: "Yuan et al. 2021, DecentLaM (ICCV)", metric: "samplesPerSec", a: `dmsgd ring n=${n} 10gbe`, b: `pmsgd n=${n} 10gbe`, relation: ">" },
  ];
}

export const scalingSuite: Suite = {
  about: "every family at 1 to 64 simulated programs (ideal machine, virtual time): async P = 1…32, pipelines D = 2, 4, 8, gossip n = 8…64 over 10 and 100 GbE",
  quick: {
    seeds: [1],
    target: 0.9,
    claims: scalingClaims(16, 8, 32),
    runs: [...asyncRuns(1, [1, 4, 16]), ...pipelineRuns(1, [2, 8]).filter((r) => /gpipe|1f1b/.test(r.label)), ...gossipRuns(1, [8, 32], ["10gbe"], ["ring"])],
  },
  full: {
    seeds: [1],
    target: 0.9,
    claims: scalingClaims(16, 8, 64),
    runs: [...asyncRuns(3, [1, 2, 4, 8, 16, 32]), ...pipelineRuns(1, [2, 4, 8]), ...gossipRuns(1, [8, 16, 32, 64], ["10gbe", "100gbe"], ["ring", "symmetric-exponential"])],
  },
};
