/**
 * The experiment suites as data: each one a list of labelled TrainConfigs (the seed left to the
 * runner), in a quick form (a smoke test, well under a minute here) and a full form (the comparison
 * itself, under ten minutes on the 2-core dev machine). The grids follow the benchmark scripts in
 * bench/ (async.bench.ts, pipeline.bench.ts, gossip-experiment.ts); see their headers for why.
 */
import { PIPELINE_ALGORITHMS } from "../algorithms/pipeline/pipeline.ts";
import { buildTopology } from "../algorithms/gossip/topology.ts";
import { defaultOptimizer } from "../optim/optimizer.ts";
import type { TrainConfig } from "../train.ts";
import { scalingSuite } from "./scaling.ts";

export const SUITE_NAMES = ["async", "pipeline", "gossip", "all", "scaling"] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];
export type SuiteMode = "quick" | "full";

/** One run of a suite: what the progress line and results row call it, and its config minus the seed. */
export interface RunSpec {
  label: string;
  config: Omit<TrainConfig, "seed">;
}

export interface SuiteVariant {
  seeds: number[];
  runs: RunSpec[];
}

export interface Suite {
  about: string;
  quick: SuiteVariant;
  full: SuiteVariant;
}

/** A model every family accepts: the pipelines need at least D layers with parameters (4 here). */
const SHARED_MODEL = "mlp:784-256-256-128-10";
const momentum = (lr = 0.02, beta = 0.9) => ({ ...defaultOptimizer("momentum"), lr, momentum: beta });

const base = (over: Partial<Omit<TrainConfig, "seed">>): Omit<TrainConfig, "seed"> => ({
  algo: "sync",
  model: SHARED_MODEL,
  data: "digits",
  epochs: 1,
  batch: 64,
  workers: 2,
  executor: "threads",
  optimizer: momentum(),
  ...over,
});

// ---- async: the asynchronous family at 2 threads (bench/async.bench.ts) ---------------------------

function asyncRuns(epochs: number, data: string): RunSpec[] {
  const at = (over: Partial<TrainConfig>) => base({ model: "mlp:784-256-128-10", data, epochs, ...over });
  return [
    { label: "sync 2w", config: at({ algo: "sync" }) },
    { label: "hogwild 2w", config: at({ algo: "hogwild" }) },
    { label: "lap 2x1 avg8", config: at({ algo: "lap", async: { replicas: 2, avgEvery: 8 } }) },
    { label: "lpp 1x2", config: at({ algo: "lpp", async: { replicas: 1, lppWarmup: 1 } }) },
    { label: "layerwise 1F:1B q2", config: at({ algo: "layerwise", workers: 2, async: { fwdThreads: 1, bwdThreads: 1, queue: 2 } }) },
    // The paper's 1:2 split for β ≈ 2: three threads on two cores.
    { label: "layerwise 1F:2B q4", config: at({ algo: "layerwise", workers: 3, async: { fwdThreads: 1, bwdThreads: 2, queue: 4 } }) },
  ];
}

// ---- pipeline: the fair comparison (bench/pipeline.bench.ts) ---------------------------------------
// Every strategy makes one update per batch of 64 samples: gpipe, 1f1b and 2bw accumulate the batch's
// 4 microbatches; pipedream, spectrain and pipeoptim stream whole batches (--pipeline-unit batch), as
// the PipeDream-based runtimes of SpecTrain and PipeOptim do. Otherwise the asynchronous ones would
// take 4× the steps at the same learning rate, which confounds staleness with step count. Momentum SGD
// and Adam, since PipeOptim claims its prediction works for any optimizer.

const PIPELINE_OPTIMIZERS = { momentum: momentum(), adam: defaultOptimizer("adam") };

function pipelineRuns(epochs: number, grids: { label: string; model: string; stages: number }[]): RunSpec[] {
  return grids.flatMap((g) =>
    Object.entries(PIPELINE_OPTIMIZERS).flatMap(([name, optimizer]) =>
      PIPELINE_ALGORITHMS.map((algo) => ({
        label: `${g.label} ${name} ${algo}`,
        config: base({
          algo,
          model: g.model,
          epochs,
          workers: g.stages,
          optimizer,
          pipeline: { stages: g.stages, microbatches: 4, ...(algo === "pipedream" || algo === "spectrain" || algo === "pipeoptim" ? { unit: "batch" as const } : {}) },
        }),
      })),
    ),
  );
}

const MLP_D2 = { label: "mlp D=2", model: SHARED_MODEL, stages: 2 };
const MLP_D4 = { label: "mlp D=4", model: SHARED_MODEL, stages: 4 };

// ---- gossip: PmSGD vs DmSGD vs DecentLaM on non-iid data (bench/gossip-experiment.ts) ------------

export const GOSSIP_NODES = 8;
/** Linear scaling γ = 0.01 · b/16, capped at 0.16 where DmSGD and DecentLaM stop training on the ring. */
export const gossipLr = (batch: number) => Math.min((0.01 * batch) / 16, 0.16);

const symmetricTopology = (name: string) => buildTopology(name, GOSSIP_NODES, { seed: 1 }).symmetric;

export function gossipRuns(epochs: number, data: string, batches: number[], topologies: string[]): RunSpec[] {
  const at = (algo: TrainConfig["algo"], batch: number, topology: string, force: boolean) =>
    base({
      algo,
      model: "mlp:784-256-128-10",
      data,
      epochs,
      batch,
      optimizer: momentum(gossipLr(batch), 0.9),
      gossip: { nodes: GOSSIP_NODES, topology, partition: "sorted", force },
    });
  return batches.flatMap((b) => [
    // PmSGD is an exact all-reduce: the topology means nothing to it, so it runs once per batch.
    { label: `pmsgd b=${b} all-reduce`, config: at("pmsgd", b, "ring", false) },
    ...topologies.flatMap((t) => [
      { label: `dmsgd b=${b} ${t}`, config: at("dmsgd", b, t, false) },
      // On directed graphs DecentLaM with β = 0.9 is predicted to diverge: forced, and the divergence is a result.
      { label: `decentlam b=${b} ${t}${symmetricTopology(t) ? "" : " (forced)"}`, config: at("decentlam", b, t, !symmetricTopology(t)) },
    ]),
  ]);
}

// ---- all: the best of each family against sync, same model, data and cores -----------------------

function allRuns(epochs: number): RunSpec[] {
  const at = (over: Partial<TrainConfig>) => base({ epochs, ...over });
  return [
    { label: "sync 2w", config: at({ algo: "sync" }) },
    { label: "hogwild 2w", config: at({ algo: "hogwild" }) },
    { label: "layerwise 1F:1B q2", config: at({ algo: "layerwise", async: { fwdThreads: 1, bwdThreads: 1, queue: 2 } }) },
    { label: "pipeoptim D=2", config: at({ algo: "pipeoptim", pipeline: { stages: 2, microbatches: 4 } }) },
    // 8 nodes × 8 samples = the 64 samples of one sync step per round, at sync's learning rate, iid
    // data: with exact consensus this is sync; the gap is what gossip costs.
    {
      label: "decentlam 8n ring",
      config: at({ algo: "decentlam", batch: 8, gossip: { nodes: GOSSIP_NODES, topology: "ring", partition: "iid", force: false } }),
    },
  ];
}

export const SUITES: Record<SuiteName, Suite> = {
  async: {
    about: "sync vs hogwild vs lap vs lpp vs layerwise at 2 threads, mlp on digits, momentum",
    quick: { seeds: [1], runs: asyncRuns(1, "digits") },
    // 5 seeds: a run takes 2–4 s here and this shared host's speed drifts by ±30% between seconds.
    full: { seeds: [1, 2, 3, 4, 5], runs: asyncRuns(10, "digits") },
  },
  pipeline: {
    about: "gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim at one update per 64 samples each, momentum and adam, D = 2 and 4",
    quick: { seeds: [1], runs: pipelineRuns(1, [MLP_D2]) },
    full: { seeds: [1, 2, 3], runs: pipelineRuns(3, [MLP_D2, MLP_D4]) },
  },
  gossip: {
    about: "pmsgd vs dmsgd vs decentlam, 8 nodes on 2 workers, sorted (non-iid) data, per-node batch × topology",
    quick: { seeds: [1], runs: gossipRuns(1, "digits", [16, 128], ["ring"]) },
    full: { seeds: [1, 2], runs: gossipRuns(10, "digits", [16, 64, 256], ["ring", "symmetric-exponential", "exponential", "one-peer-exponential"]) },
  },
  all: {
    about: `sync, hogwild, layerwise, pipeoptim and decentlam on ${SHARED_MODEL}, digits, 2 cores`,
    quick: { seeds: [1], runs: allRuns(1) },
    full: { seeds: [1, 2, 3], runs: allRuns(10) },
  },
  scaling: scalingSuite,
};
