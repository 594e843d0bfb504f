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
import type { Claim } from "../report/claims.ts";
import { algorithmNamed } from "../algorithms/registry.ts";
import { scalingSuite } from "./scaling.ts";

export const SUITE_NAMES = ["async", "pipeline", "gossip", "bias", "all", "scaling"] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];
export type SuiteMode = "quick" | "full";

/** One run of a suite: what the progress line and results row call it, and its config minus the seed. */
export interface RunSpec {
  label: string;
  config: Omit<TrainConfig, "seed">;
  /** The chart panel it is drawn in when the suite has more methods than one chart tells apart. */
  group?: string;
}

export interface SuiteVariant {
  seeds: number[];
  runs: RunSpec[];
  /** The test accuracy "time to target" is measured at. */
  target: number;
  /** What the papers say, as comparisons between two of `runs` (by label), answered over the seeds. */
  claims: Claim[];
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
        group: `${g.label} ${name}`,
        config: base({
          algo,
          model: g.model,
          epochs,
          workers: g.stages,
          optimizer,
          // The fair form: strategies that would update per microbatch stream whole batches instead.
          pipeline: { stages: g.stages, microbatches: 4, ...(algorithmNamed(algo).flags.includes("pipeline-unit") ? { unit: "batch" as const } : {}) },
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

const decentlamLabel = (b: number, t: string) => `decentlam b=${b} ${t}${symmetricTopology(t) ? "" : " (forced)"}`;

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
    { label: `pmsgd b=${b} all-reduce`, group: `b=${b}`, config: at("pmsgd", b, "ring", false) },
    ...topologies.flatMap((t) => [
      { label: `dmsgd b=${b} ${t}`, group: `b=${b}`, config: at("dmsgd", b, t, false) },
      // On directed graphs DecentLaM with β = 0.9 is predicted to diverge: forced, and the divergence is a result.
      { label: decentlamLabel(b, t), group: `b=${b}`, config: at("decentlam", b, t, !symmetricTopology(t)) },
    ]),
  ]);
}

// ---- claims ------------------------------------------------------------------------------------------

const FOKAM = "Fokam et al. 2024, layer-wise asynchronous SGD with decoupled forward and backward (arXiv 2410.05985)";
const NIU = "Niu et al. 2011, Hogwild!";
const GUAN = "Guan et al. 2023, PipeOptim: weight prediction for asynchronous pipelines (arXiv 2312.00839)";
const PIPEDREAM = "Narayanan et al. 2019, PipeDream: no pipeline flush";
const YUAN = "Yuan et al. 2021, DecentLaM (ICCV)";
/** "At least as good", within half a percentage point of accuracy: seeds on this data move final accuracy by about that much. */
const HALF_POINT = 0.005;
const LIN = "Lin, Karimireddy, Stich, Jaggi 2021, quasi-global momentum (ICML)";
const ED_SOURCE = "Yuan, Ying, Zhao, Sayed 2019, exact diffusion (IEEE TSP)";
const GT_SOURCE = "Nedić, Olshevsky, Shi 2017, DIGing (SIAM J. Optim.)";
const SGP_SOURCE = "Assran, Loizou, Ballas, Rabbat 2019, stochastic gradient push (ICML)";

const ASYNC_CLAIMS: Claim[] = [
  { text: "layerwise reaches the target accuracy before hogwild", source: FOKAM, metric: "timeToTarget", a: "layerwise 1F:1B q2", b: "hogwild 2w", relation: "<" },
  { text: "layerwise ends as accurate as synchronous SGD", source: FOKAM, metric: "finalAccuracy", a: "layerwise 1F:1B q2", b: "sync 2w", relation: ">=", tolerance: HALF_POINT },
  { text: "the 1F:2B split (β ≈ 2) reaches the target before 1F:1B", source: FOKAM, metric: "timeToTarget", a: "layerwise 1F:2B q4", b: "layerwise 1F:1B q2", relation: "<" },
  { text: "hogwild processes more samples per second than synchronous SGD", source: NIU, metric: "samplesPerSec", a: "hogwild 2w", b: "sync 2w", relation: ">" },
];

/** Same epochs and batch for every strategy: equal updates. */
function pipelineClaims(grids: { label: string }[]): Claim[] {
  return grids.flatMap(({ label }) =>
    Object.keys(PIPELINE_OPTIMIZERS).flatMap((name) => {
      const g = `${label} ${name}`;
      return [
        { text: `pipeoptim ≥ pipedream in final accuracy at equal updates (${g})`, source: GUAN, metric: "finalAccuracy", a: `${g} pipeoptim`, b: `${g} pipedream`, relation: ">=", tolerance: HALF_POINT },
        { text: `pipeoptim ≥ 2bw in final accuracy at equal updates (${g})`, source: GUAN, metric: "finalAccuracy", a: `${g} pipeoptim`, b: `${g} 2bw`, relation: ">=", tolerance: HALF_POINT },
        { text: `pipeoptim ≥ spectrain in final accuracy at equal updates (${g})`, source: GUAN, metric: "finalAccuracy", a: `${g} pipeoptim`, b: `${g} spectrain`, relation: ">=", tolerance: HALF_POINT },
        // How far from the synchronous pipeline: within half a point of GPipe.
        { text: `pipeoptim ends within half a point of gpipe (${g})`, source: GUAN, metric: "finalAccuracy", a: `${g} pipeoptim`, b: `${g} gpipe`, relation: ">=", tolerance: HALF_POINT },
      ] satisfies Claim[];
    }),
  );
}

/** DecentLaM's claim is about large per-node batches: at b ≥ 64 its consensus distance (and so its bias) is below DmSGD's. */
function gossipClaims(batches: number[], topologies: string[]): Claim[] {
  return batches
    .filter((b) => b >= 64)
    .flatMap((b) =>
      topologies.filter(symmetricTopology).flatMap((t) => [
        { text: `decentlam's consensus distance < dmsgd's at per-node batch ${b} (${t})`, source: YUAN, metric: "consensusDistance", a: decentlamLabel(b, t), b: `dmsgd b=${b} ${t}`, relation: "<" },
        { text: `decentlam ≥ dmsgd in final accuracy at per-node batch ${b} (${t})`, source: YUAN, metric: "finalAccuracy", a: decentlamLabel(b, t), b: `dmsgd b=${b} ${t}`, relation: ">=", tolerance: HALF_POINT },
      ] satisfies Claim[]),
    );
}

const ALL_CLAIMS: Claim[] = [
  { text: "hogwild processes more samples per second than synchronous SGD", source: NIU, metric: "samplesPerSec", a: "hogwild 2w", b: "sync 2w", relation: ">" },
  { text: "layerwise reaches the target accuracy before synchronous SGD", source: FOKAM, metric: "timeToTarget", a: "layerwise 1F:1B q2", b: "sync 2w", relation: "<" },
  // Gossip at sync's batch and learning rate on iid data: what inexact consensus costs (1 pt allowed).
  { text: "decentlam on a ring ends within 1 pt of synchronous SGD", source: YUAN, metric: "finalAccuracy", a: "decentlam 8n ring", b: "sync 2w", relation: ">=", tolerance: 0.01 },
];

// ---- bias: the bias-corrected and newer gossip baselines against DmSGD and DecentLaM -------------

/**
 * The regime DecentLaM is about: 16 nodes, per-node batch 256 (4096 samples a round), sorted
 * (non-iid) shards, a ring. Momentum methods at the gossip suite's γ = 0.16, β = 0.9; plain-step
 * methods (gradient tracking and exact diffusion take plain steps) against D-SGD and exact-average
 * SGD at their own γ: 0.1 (0.05 for gradient tracking, which is unstable at 0.1 on this ring: its step
 * must shrink with (1 − ρ)², measured). On the directed exponential graph at β = 0.9: push-sum against
 * DecentLaM forced to run there.
 */
const BIAS_NODES = 16;
function biasRuns(epochs: number): RunSpec[] {
  const at = (algo: string, topology: string, optimizer: TrainConfig["optimizer"], force = false) =>
    base({ algo, model: "mlp:784-256-128-10", epochs, batch: 256, optimizer, gossip: { nodes: BIAS_NODES, topology, partition: "sorted", force } });
  const heavy = momentum(0.16, 0.9);
  const plain = (lr: number) => ({ ...defaultOptimizer("sgd"), lr });
  return [
    { label: "pmsgd", group: "momentum, ring", config: at("pmsgd", "ring", heavy) },
    { label: "dmsgd", group: "momentum, ring", config: at("dmsgd", "ring", heavy) },
    { label: "decentlam", group: "momentum, ring", config: at("decentlam", "ring", heavy) },
    { label: "qgm", group: "momentum, ring", config: at("qgm", "ring", heavy) },
    { label: "pmsgd plain", group: "plain steps, ring", config: at("pmsgd", "ring", plain(0.1)) },
    { label: "dsgd", group: "plain steps, ring", config: at("dsgd", "ring", plain(0.1)) },
    { label: "ed", group: "plain steps, ring", config: at("ed", "ring", plain(0.1)) },
    { label: "gt", group: "plain steps, ring", config: at("gt", "ring", plain(0.05)) },
    { label: "sgp exponential", group: "momentum, directed exponential", config: at("sgp", "exponential", heavy) },
    { label: "decentlam exponential (forced)", group: "momentum, directed exponential", config: at("decentlam", "exponential", heavy, true) },
  ];
}

const BIAS_CLAIMS: Claim[] = [
  { text: "decentlam ≥ dmsgd in final accuracy at per-node batch 256 (ring)", source: YUAN, metric: "finalAccuracy", a: "decentlam", b: "dmsgd", relation: ">=", tolerance: HALF_POINT },
  { text: "qgm ≥ dmsgd in final accuracy (quasi-global momentum corrects heterogeneity)", source: LIN, metric: "finalAccuracy", a: "qgm", b: "dmsgd", relation: ">=", tolerance: HALF_POINT },
  { text: "exact diffusion ≥ D-SGD in final accuracy at equal γ", source: ED_SOURCE, metric: "finalAccuracy", a: "ed", b: "dsgd", relation: ">=", tolerance: HALF_POINT },
  { text: "gradient tracking ≥ D-SGD in final accuracy (at half D-SGD's γ)", source: GT_SOURCE, metric: "finalAccuracy", a: "gt", b: "dsgd", relation: ">=", tolerance: HALF_POINT },
  { text: "decentlam's consensus distance < dmsgd's (ring)", source: YUAN, metric: "consensusDistance", a: "decentlam", b: "dmsgd", relation: "<" },
  { text: "push-sum trains on the directed exponential graph where decentlam with β = 0.9 does not", source: SGP_SOURCE, metric: "finalAccuracy", a: "sgp exponential", b: "decentlam exponential (forced)", relation: ">" },
];

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
    // 3 seeds even in the quick form: fewer give the paired tests nothing to work with.
    quick: { seeds: [1, 2, 3], runs: asyncRuns(1, "digits"), target: 0.9, claims: ASYNC_CLAIMS },
    // 5 seeds: a run takes 2–4 s here and this shared host's speed drifts by ±30% between seconds.
    full: { seeds: [1, 2, 3, 4, 5], runs: asyncRuns(10, "digits"), target: 0.93, claims: ASYNC_CLAIMS },
  },
  pipeline: {
    about: "gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim at one update per 64 samples each, momentum and adam, D = 2 and 4",
    quick: { seeds: [1, 2, 3], runs: pipelineRuns(1, [MLP_D2]), target: 0.85, claims: pipelineClaims([MLP_D2]) },
    full: { seeds: [1, 2, 3], runs: pipelineRuns(3, [MLP_D2, MLP_D4]), target: 0.93, claims: pipelineClaims([MLP_D2, MLP_D4]) },
  },
  gossip: {
    about: "pmsgd vs dmsgd vs decentlam, 8 nodes on 2 workers, sorted (non-iid) data, per-node batch × topology",
    quick: { seeds: [1], runs: gossipRuns(1, "digits", [16, 128], ["ring"]), target: 0.8, claims: gossipClaims([16, 128], ["ring"]) },
    full: {
      seeds: [1, 2],
      runs: gossipRuns(10, "digits", [16, 64, 256], ["ring", "symmetric-exponential", "exponential", "one-peer-exponential"]),
      target: 0.9,
      claims: gossipClaims([16, 64, 256], ["ring", "symmetric-exponential", "exponential", "one-peer-exponential"]),
    },
  },
  bias: {
    about: "gradient tracking, exact diffusion, QG-DSGDm, push-sum vs DmSGD and DecentLaM: 16 nodes, per-node batch 256, sorted data",
    quick: { seeds: [1, 2, 3], runs: biasRuns(2), target: 0.5, claims: BIAS_CLAIMS },
    full: { seeds: [1, 2, 3], runs: biasRuns(30), target: 0.85, claims: BIAS_CLAIMS },
  },
  all: {
    about: `sync, hogwild, layerwise, pipeoptim and decentlam on ${SHARED_MODEL}, digits, 2 cores`,
    quick: { seeds: [1], runs: allRuns(1), target: 0.9, claims: ALL_CLAIMS },
    full: { seeds: [1, 2, 3], runs: allRuns(10), target: 0.93, claims: ALL_CLAIMS },
  },
  scaling: scalingSuite,
};
