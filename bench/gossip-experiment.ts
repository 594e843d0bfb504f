/**
 * PmSGD vs DmSGD vs DecentLaM on non-iid data, across per-node batch sizes and topologies:
 *
 *   npx bun bench/gossip-experiment.ts [--quick] [--seeds 1,2] [--out FILE.json]
 *                                      [--epochs N] [--batches 16,64,256] [--topologies ring,...] [--partition SPEC]
 *                                      [--model SPEC] [--data SPEC]
 *
 * The claim under test (Yuan et al., ICCV 2021; docs/ALGORITHMS.md §6.2): with heterogeneous data and a large
 * batch (so a large γ and little gradient noise), DmSGD's fixed point is D-SGD's with step γ/(1−β),
 * an inconsistency bias ∝ γ²b²/((1−β)²(1−ρ)²), while DecentLaM's is D-SGD's with step γ (bias
 * ∝ γ²b²/(1−ρ)²). So at the largest batch DecentLaM should reach at least DmSGD's accuracy with a lower
 * consensus distance (1/n)Σ‖x_i − x̄‖².
 *
 * The runs are the gossip experiment suite's (gossipRuns and gossipLr in engine/experiments/suites.ts,
 * what `skein experiment gossip` runs); the flags below change the grid, the defaults are the suite's.
 *
 * Choices (and why):
 *  - 8 nodes on 2 worker threads, momentum β = 0.9, mlp:784-256-128-10 on the embedded digits
 *    (8,000 train / 2,000 test). The default model fits the time budget: a run takes 1–9 s here, the
 *    default grid (2 seeds, 54 runs) about 4 minutes.
 *  - Partition `sorted` (McMahan et al.'s pathological split): every node holds 1,000 samples of one
 *    or two classes. Equal shard sizes, so a batch means the same thing on every node (dirichlet:0.1
 *    gives shards of 138 to 2,305 samples for seeds 1–3, and a 256-batch on a 138-sample shard is
 *    its samples repeated; pass --partition dirichlet:0.1 to run it anyway), and maximal heterogeneity, the regime the claim is about. The split
 *    is the same for every seed; seeds change the initial weights and the sample order.
 *  - Per-node batches 16, 64, 256 with linear learning-rate scaling γ = 0.01 · b/16, capped at 0.16:
 *    0.01, 0.04, 0.16. Measured before choosing: at b = 256, γ = 0.32 (the 0.02 · b/16 rule) makes both
 *    DmSGD and DecentLaM diverge on the ring (NaN in epoch 5) while PmSGD survives; γ = 0.16 trains all
 *    three on symmetric graphs, so the base is the one that lands exactly there.
 *  - Equal samples, not equal rounds: every cell trains 10 epochs (80,000 samples). A round is one
 *    batch per node, so b = 16 runs 63 rounds/epoch (630 in all) and b = 256 only 4 (40 in all). That is the
 *    large-batch question as practice asks it: the same data budget, fewer and larger steps. After 40
 *    rounds the consensus distance is still falling steeply, so the last epoch's value at b = 256 is
 *    a transient, not the stationary bias of the theory: each cell also keeps its curve and the mean
 *    over the epochs' ends (consensusMeanOverEpochs); --epochs 40 --batches 256 runs it longer.
 *  - Topologies: ring and symmetric-exponential (the symmetric stand-in for "exponential", which
 *    DecentLaM needs) for both algorithms; the directed `exponential` and the dynamic
 *    `one-peer-exponential` too, DecentLaM with force: true there, to see the predicted divergence at
 *    β = 0.9. PmSGD is an exact all-reduce: it ignores the topology, so it runs once per (batch, seed)
 *    and its cell is repeated under every topology (marked †).
 *  - A run that stops with RunError "training diverged" is recorded as diverged (with the epoch); one
 *    that ends with a train loss above ln(classes) (worse than guessing uniformly) is flagged unstable (!).
 *
 * --quick: the suite's quick grid (1 seed, batches 16 and 128, ring only, 1 epoch) — a smoke test.
 */
import { train, type TrainConfig, type EpochMetrics } from "../engine/train.ts";
import { RunError } from "../engine/errors.ts";
import { loadDataset } from "../engine/data/index.ts";
import { roundsPerEpoch } from "../engine/algorithms/gossip/round.ts";
import { buildTopology } from "../engine/algorithms/gossip/topology.ts";
import { GOSSIP_NODES, gossipLr, gossipRuns, SUITES, type RunSpec } from "../engine/experiments/suites.ts";
import type { GossipConfig } from "../engine/algorithms/gossip/setup.ts";
import { benchArgs, intListFlag } from "./args.ts";

const SCRIPT = "gossip-experiment";
const { values: flags } = benchArgs(SCRIPT, {
  options: {
    quick: { type: "boolean", default: false },
    seeds: { type: "string" },
    out: { type: "string" },
    epochs: { type: "string" },
    batches: { type: "string" },
    topologies: { type: "string" },
    partition: { type: "string" },
    model: { type: "string" },
    data: { type: "string" },
  },
});

const QUICK = flags.quick ?? false;
/** The suite's grid: the defaults of every flag below. */
const suite = QUICK ? SUITES.gossip.quick : SUITES.gossip.full;
const unique = <T,>(xs: T[]) => [...new Set(xs)];
/** A suite run's gossip settings: the suite fills every field. */
const gossipOf = (config: RunSpec["config"]) => config.gossip as GossipConfig;
const suiteConfig = suite.runs[0]!.config;
const SEEDS = flags.seeds ? intListFlag(SCRIPT, "seeds", flags.seeds) : suite.seeds;
const BATCHES = flags.batches ? intListFlag(SCRIPT, "batches", flags.batches) : unique(suite.runs.map((r) => r.config.batch));
const EPOCHS = flags.epochs ? intListFlag(SCRIPT, "epochs", flags.epochs)[0]! : suiteConfig.epochs;
const PARTITION = flags.partition ?? gossipOf(suiteConfig).partition;
const MODEL = flags.model ?? suiteConfig.model;
const DATA = flags.data ?? suiteConfig.data;
const CLASSES = 10;
const TOPOLOGIES = flags.topologies
  ? flags.topologies.split(",").map((t) => t.trim())
  : unique(suite.runs.filter((r) => r.config.algo !== "pmsgd").map((r) => gossipOf(r.config).topology));
const NODES = GOSSIP_NODES;
const WORKERS = suiteConfig.workers;
const BETA = suiteConfig.optimizer.momentum;
/** Topologies whose every mixing round is symmetric (as the engine builds them): DecentLaM runs there unforced. */
const SYMMETRIC = new Set(
  TOPOLOGIES.filter((t) => {
    try {
      return buildTopology(t, NODES, { seed: 1 }).symmetric;
    } catch (e) {
      console.error(`gossip-experiment: --topologies ${t}: ${(e as Error).message}`);
      process.exit(2);
    }
  }),
);
const GOSSIPERS = ["dmsgd", "decentlam"] as const;
type Algo = "pmsgd" | (typeof GOSSIPERS)[number];

const TRAIN_COUNT = (await loadDataset(DATA)).train.count;

/** Linear scaling from γ = 0.01 at b = 16, capped where DmSGD and DecentLaM stop training (see the header). */
const lrFor = gossipLr;

interface Cell {
  algo: Algo;
  topology: string; // pmsgd: "all-reduce"
  batch: number;
  lr: number;
  seed: number;
  epochs: number;
  roundsPerEpoch: number;
  status: "ok" | "diverged" | "error";
  /** The epoch (1-based) in which the run stopped, for diverged and error. */
  stoppedInEpoch?: number;
  error?: string;
  /** Train loss above ln(classes): the run did not blow up to NaN, but it is not training. */
  unstable: boolean;
  testAccuracy: number | null; // the averaged model x̄
  nodeTestAccuracy: number | null; // mean of the nodes' own models
  consensusDistance: number | null; // (1/n) Σ ‖x_i − x̄‖², last epoch
  /** The consensus distance averaged over the epochs' ends: at large batch the last one is still a transient. */
  consensusMeanOverEpochs: number | null;
  trainLoss: number | null;
  bytesPerNodeStep: number | null;
  seconds: number;
  /** Per completed epoch: averaged-model accuracy, consensus distance, train loss. */
  curve: { epoch: number; testAccuracy: number; nodeTestAccuracy: number | null; consensusDistance: number | null; trainLoss: number }[];
}

async function runCell(spec: RunSpec, seed: number): Promise<Cell> {
  const config: TrainConfig = { ...spec.config, model: MODEL, gossip: { ...gossipOf(spec.config), partition: PARTITION }, seed };
  const { algo, batch } = config as { algo: Algo; batch: number };
  const lr = config.optimizer.lr;
  // pmsgd ignores the graph (the suite gives it the ring only to make the config complete).
  const topology = algo === "pmsgd" ? "all-reduce" : gossipOf(spec.config).topology;
  const curve: Cell["curve"] = [];
  const onEpoch = (m: EpochMetrics) =>
    curve.push({ epoch: m.epoch, testAccuracy: m.testAccuracy, nodeTestAccuracy: m.nodeTestAccuracy ?? null, consensusDistance: m.consensusDistance ?? null, trainLoss: m.trainLoss });
  const started = performance.now();
  const base = { algo, topology, batch, lr, seed, epochs: EPOCHS, roundsPerEpoch: roundsPerEpoch(TRAIN_COUNT, NODES, batch), curve };
  try {
    const s = await train(config, { onEpoch });
    return {
      ...base,
      status: "ok",
      unstable: !(s.trainLoss <= Math.log(CLASSES)),
      testAccuracy: s.testAccuracy,
      nodeTestAccuracy: s.nodeTestAccuracy ?? null,
      consensusDistance: s.consensusDistance ?? null,
      consensusMeanOverEpochs: curve.length && curve.every((c) => c.consensusDistance !== null) ? mean(curve.map((c) => c.consensusDistance!)) : null,
      trainLoss: s.trainLoss,
      bytesPerNodeStep: s.bytesPerNodeStep ?? null,
      seconds: s.seconds,
    };
  } catch (e) {
    if (!(e instanceof RunError)) throw e; // bad config: a bug in this script, stop here
    const diverged = /training diverged/.test(e.message);
    const last = curve[curve.length - 1];
    return {
      ...base,
      status: diverged ? "diverged" : "error",
      stoppedInEpoch: curve.length + 1,
      error: e.message,
      unstable: true,
      testAccuracy: null,
      nodeTestAccuracy: null,
      consensusDistance: null,
      consensusMeanOverEpochs: null,
      trainLoss: last?.trainLoss ?? null,
      bytesPerNodeStep: null,
      seconds: (performance.now() - started) / 1000,
    };
  }
}

// ---- formatting -----------------------------------------------------------------------------------

const pct = (x: number | null) => (x === null ? "–" : `${(100 * x).toFixed(1)}%`);
const sci = (x: number | null) => (x === null ? "–" : x === 0 ? "0" : x.toExponential(1));
const pad = (s: string, w: number) => s + " ".repeat(Math.max(0, w - s.length));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function cellText(cells: Cell[]): string {
  if (cells.length === 0) return "";
  const bad = cells.filter((c) => c.status !== "ok");
  if (bad.length === cells.length) {
    const c = bad[0]!;
    const at = [...new Set(bad.map((b) => b.stoppedInEpoch))].join(",");
    return `${c.status === "diverged" ? "diverged" : "error"} @e${at}`;
  }
  const ok = cells.filter((c) => c.status === "ok");
  const acc = mean(ok.map((c) => c.testAccuracy!));
  const cd = mean(ok.map((c) => c.consensusDistance ?? 0));
  const flags = (ok.some((c) => c.unstable) ? "!" : "") + (bad.length ? ` (${bad.length} diverged)` : "") + (cells[0]!.algo === "pmsgd" ? " †" : "");
  return `${pct(acc)} / ${sci(cd)}${flags}`;
}

function printTable(title: string, all: Cell[]): void {
  const rowLabel = (a: Algo, b: number) => `${a} b=${b} γ=${lrFor(b)}`;
  const labelWidth = Math.max(...(["pmsgd", ...GOSSIPERS] as Algo[]).flatMap((a) => BATCHES.map((b) => rowLabel(a, b).length)), 10);
  const lookup = (a: Algo, b: number, t: string) => all.filter((c) => c.algo === a && c.batch === b && (a === "pmsgd" || c.topology === t));
  const texts = new Map<string, string>();
  for (const a of ["pmsgd", ...GOSSIPERS] as Algo[]) for (const b of BATCHES) for (const t of TOPOLOGIES) texts.set(`${a}|${b}|${t}`, cellText(lookup(a, b, t)));
  const widths = TOPOLOGIES.map((t) => Math.max(t.length, ...[...texts].filter(([k]) => k.endsWith(`|${t}`)).map(([, v]) => v.length)));
  console.log(`\n${title}`);
  console.log(`${pad("", labelWidth)}  ${TOPOLOGIES.map((t, i) => pad(t, widths[i]!)).join("  ")}`);
  for (const b of BATCHES) {
    for (const a of ["pmsgd", ...GOSSIPERS] as Algo[]) {
      console.log(`${pad(rowLabel(a, b), labelWidth)}  ${TOPOLOGIES.map((t, i) => pad(texts.get(`${a}|${b}|${t}`)!, widths[i]!)).join("  ")}`);
    }
  }
}

/** Relative difference in consensus distance below which two runs count as tied. */
const CONSENSUS_TIE = 1e-3;

interface Side {
  testAccuracy: number | null;
  nodeTestAccuracy: number | null;
  consensusDistance: number | null;
  consensusMeanOverEpochs: number | null;
  status: string;
}

interface Verdict {
  batch: number;
  topology: string;
  seed: number;
  decentlam: Side;
  dmsgd: Side;
  /** decentlam − dmsgd, averaged-model accuracy (percentage points); null when either did not finish. */
  accuracyGainPts: number | null;
  accuracyAtLeast: boolean;
  consensusLower: boolean;
  claimHolds: boolean;
}

function verdictOf(dl: Cell, dm: Cell): Verdict {
  const pick = (c: Cell): Side => ({ testAccuracy: c.testAccuracy, nodeTestAccuracy: c.nodeTestAccuracy, consensusDistance: c.consensusDistance, consensusMeanOverEpochs: c.consensusMeanOverEpochs, status: c.status + (c.unstable && c.status === "ok" ? " (unstable)" : "") });
  const both = dl.status === "ok" && dm.status === "ok";
  // A run that diverged loses to one that finished; two that diverged decide nothing.
  const accuracyAtLeast = both ? dl.testAccuracy! >= dm.testAccuracy! : dl.status === "ok";
  // Lower by more than float noise: DecentLaM and DmSGD coincide exactly for the first two rounds.
  const consensusLower = both ? (dl.consensusDistance ?? Infinity) < (1 - CONSENSUS_TIE) * (dm.consensusDistance ?? Infinity) : dl.status === "ok";
  return {
    batch: dl.batch,
    topology: dl.topology,
    seed: dl.seed,
    decentlam: pick(dl),
    dmsgd: pick(dm),
    accuracyGainPts: both ? 100 * (dl.testAccuracy! - dm.testAccuracy!) : null,
    accuracyAtLeast,
    consensusLower,
    claimHolds: accuracyAtLeast && consensusLower && !dl.unstable,
  };
}

const statusShort = (c: Side) => (c.status === "ok" ? `${pct(c.testAccuracy)} (nodes ${pct(c.nodeTestAccuracy)}) cd ${sci(c.consensusDistance)} (run mean ${sci(c.consensusMeanOverEpochs)})` : c.status.startsWith("ok") ? `${pct(c.testAccuracy)} cd ${sci(c.consensusDistance)} UNSTABLE` : c.status.toUpperCase());

// ---- the grid -------------------------------------------------------------------------------------

const started = performance.now();
// The suite's runs for these batches and topologies: per batch, pmsgd once, then dmsgd and decentlam per topology.
const specs = gossipRuns(EPOCHS, DATA, BATCHES, TOPOLOGIES);
const plan = SEEDS.flatMap((seed) => specs.map((spec) => ({ spec, seed })));
console.log(
  `gossip experiment: ${plan.length} runs — ${NODES} nodes on ${WORKERS} threads, ${MODEL} on ${DATA}, partition ${PARTITION}, ` +
    `β = ${BETA}, ${EPOCHS} epoch${EPOCHS === 1 ? "" : "s"} per run (equal samples), batches ${BATCHES.join("/")} per node with γ = ${BATCHES.map(lrFor).join("/")} ` +
    `(gossipLr; ${BATCHES.map((b) => roundsPerEpoch(TRAIN_COUNT, NODES, b)).join("/")} rounds/epoch), seeds ${SEEDS.join(",")}`,
);

const results: Cell[] = [];
for (const [i, p] of plan.entries()) {
  const c = await runCell(p.spec, p.seed);
  results.push(c);
  const what = c.status === "ok" ? `${pct(c.testAccuracy)} avg / ${pct(c.nodeTestAccuracy)} nodes, consensus ${sci(c.consensusDistance)}, loss ${c.trainLoss!.toPrecision(3)}${c.unstable ? " UNSTABLE" : ""}` : `${c.status} in epoch ${c.stoppedInEpoch}`;
  console.error(`[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] seed ${p.seed} ${pad(c.algo, 9)} b=${pad(String(c.batch), 3)} ${pad(c.topology, 21)} ${what}  (${c.seconds.toFixed(1)} s)`);
}

console.log("\ncells: test accuracy of the averaged model x̄ / consensus distance (1/n)Σ‖x_i − x̄‖² after the last epoch");
console.log("       † PmSGD is an all-reduce (one run per batch and seed, repeated under every topology); ! train loss > ln 10; diverged @eK: NaN loss in epoch K");
for (const seed of SEEDS) printTable(`seed ${seed}`, results.filter((c) => c.seed === seed));
if (SEEDS.length > 1) printTable(`mean over seeds ${SEEDS.join(",")}`, results);

const verdicts: Verdict[] = [];
const find = (algo: Algo, batch: number, topology: string, seed: number) => results.find((c) => c.algo === algo && c.batch === batch && c.topology === topology && c.seed === seed)!;
console.log("\nverdicts: decentlam vs dmsgd (averaged-model accuracy, node-model accuracy, consensus distance cd after the last epoch and its mean over the epochs' ends)");
for (const batch of BATCHES) {
  for (const topology of TOPOLOGIES) {
    const perSeed = SEEDS.map((seed) => verdictOf(find("decentlam", batch, topology, seed), find("dmsgd", batch, topology, seed)));
    verdicts.push(...perSeed);
    const holds = perSeed.filter((v) => v.claimHolds).length;
    console.log(`b=${batch} ${topology}${SYMMETRIC.has(topology) ? "" : " (directed, decentlam forced)"}: decentlam ≥ dmsgd with lower consensus on ${holds}/${perSeed.length} seeds`);
    for (const v of perSeed) {
      const gain = v.accuracyGainPts === null ? "" : ` → accuracy ${v.accuracyGainPts >= 0 ? "+" : ""}${v.accuracyGainPts.toFixed(1)} pts, consensus ${v.consensusLower ? "lower" : "NOT lower"}`;
      console.log(`    seed ${v.seed}: decentlam ${statusShort(v.decentlam)}  vs  dmsgd ${statusShort(v.dmsgd)}${gain}`);
    }
  }
}

const largest = Math.max(...BATCHES);
console.log(`\nthe seed's claim at the largest batch (b=${largest}, γ=${lrFor(largest)}), partition ${PARTITION}:`);
for (const topology of TOPOLOGIES) {
  const vs = verdicts.filter((v) => v.batch === largest && v.topology === topology);
  const failed = vs.filter((v) => !v.claimHolds).map((v) => v.seed);
  console.log(`  ${pad(topology, 21)} ${failed.length === 0 ? "HOLDS" : `FAILS on seed${failed.length > 1 ? "s" : ""} ${failed.join(",")}`} (${vs.length - failed.length}/${vs.length} seeds)`);
}
const diverged = results.filter((c) => c.algo === "decentlam" && !SYMMETRIC.has(c.topology));
if (diverged.length > 0) {
  console.log("decentlam at β = 0.9 on directed graphs (heavy-ball gossip predicts divergence, docs/ALGORITHMS.md §6.2):");
  for (const topology of TOPOLOGIES.filter((t) => !SYMMETRIC.has(t))) {
    const cs = diverged.filter((c) => c.topology === topology);
    const nan = cs.filter((c) => c.status === "diverged");
    const blown = cs.filter((c) => c.status === "ok" && c.unstable);
    console.log(`  ${pad(topology, 21)} NaN in ${nan.length}/${cs.length} runs, finished but not training (loss > ln 10) in ${blown.length}/${cs.length}, trained in ${cs.length - nan.length - blown.length}/${cs.length}`);
  }
}

const wallSeconds = (performance.now() - started) / 1000;
console.log(`\nwall time ${wallSeconds.toFixed(1)} s for ${plan.length} runs`);

if (flags.out) {
  const report = {
    command: `npx bun bench/gossip-experiment.ts ${process.argv.slice(2).join(" ")}`.trim(),
    settings: { nodes: NODES, workers: WORKERS, executor: "threads", momentum: BETA, model: MODEL, data: DATA, partition: PARTITION, epochs: EPOCHS, batches: BATCHES, lr: Object.fromEntries(BATCHES.map((b) => [b, lrFor(b)])), lrRule: "gossipLr (engine/experiments/suites.ts): min(0.01·b/16, 0.16)", topologies: TOPOLOGIES, seeds: SEEDS },
    results,
    verdicts,
    wallSeconds,
  };
  await Bun.write(flags.out, JSON.stringify(report, null, 2) + "\n");
  console.log(`results written to ${flags.out}`);
}
