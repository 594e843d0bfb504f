/**
 * Decentralized training: n logical nodes, each with its own parameters x_i and momentum m_i, that
 * average only with neighbours through a mixing matrix W (row i: what node i receives). Per round,
 * with γ the learning rate and β the momentum:
 *
 *   PmSGD (all-reduce):   m_i ← β m_i + (1/n) Σ_j g_j;           x_i ← x_i − γ m_i
 *   D-PSGD (ATC):         x_i ← Σ_j w_ij (x_j − γ g_j)
 *   DmSGD (ATC):          m_i ← β m_i + g_i;                      x_i ← Σ_j w_ij (x_j − γ m_j)
 *   DecentLaM:            z_i = Σ_j w_ij (x_j − γ g_j);  g̃_i = (x_i − z_i)/γ;
 *                         m_i ← β m_i + g̃_i;                     x_i ← x_i − γ m_i
 *     (Yuan et al., ICCV 2021: matrix form x⁺ = W(x − γg) + β(x − x⁻); with β = 0 it is D-PSGD.)
 *
 * Each round is two phases on every worker (nodes are dealt to workers in contiguous blocks):
 *   1. local: gradient g_i on node i's batch, then the message h_i every neighbour will read
 *      (x_i − γ g_i, x_i − γ m_i, or g_i for PmSGD); barrier
 *   2. mix: z_i = Σ_j w_ij h_j, then node i's update from z_i; barrier
 * The messages h are the double buffer: a node reads its neighbours' round-r messages while its own
 * x_i changes, and nobody writes a message until everyone has finished reading (the barrier).
 */
import type { KernelExports, Ptr } from "../../kernels/abi.ts";
import { epochOrder } from "../../data/order.ts";
import { loadBatch, planWorkerBuffers, type RoleContext } from "../../runtime/context.ts";
import { WORD } from "../../runtime/control.ts";
import { shardOf } from "../../runtime/split.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { Rng } from "../../rng.ts";
import { mark, span } from "../../runtime/trace.ts";

export const GOSSIP_ALGORITHMS = ["pmsgd", "dsgd", "dmsgd", "decentlam"] as const;
export type GossipAlgorithm = (typeof GOSSIP_ALGORITHMS)[number];

/** Per round of the topology's period, per node: the nodes it receives from (itself included) and their weights. */
export interface MixingSchedule {
  nodes: number;
  rounds: { from: number[]; weights: number[] }[][];
}

export interface GossipOptions {
  algorithm: GossipAlgorithm;
  mixing: MixingSchedule;
  /** Per node: the training sample indices it owns (the partition). */
  shards: Uint32Array[];
}

export interface GossipLayout {
  algorithm: GossipAlgorithm;
  nodes: number;
  params: Ptr[]; // x_i
  momentum: Ptr[]; // m_i
  messages: Ptr[]; // h_i
  /** Per worker: its gradient vector, and a scratch vector for DecentLaM's g̃. */
  grads: Ptr[];
  scratch: Ptr[];
  /** The averaged model x̄ (evaluated and checkpointed). */
  average: Ptr;
  /** Per node: room for the mixing kernel's arguments (up to n pointers and weights). */
  mixArgs: { tensors: Ptr; weights: Ptr }[];
  mixing: MixingSchedule;
  /** Per node: offsets into `shardIndices` of its samples. */
  shardOffsets: number[];
  shardIndices: Ptr; // i32, all shards back to back
}

export function planGossip(input: PlanInput, options: GossipOptions): AlgorithmPlan {
  const { planner, net, programs } = input;
  const n = options.mixing.nodes;
  const vectors = (name: string, kind: "parameters" | "optimizerState" | "gradients") =>
    Array.from({ length: n }, (_, i) => planner.floats(kind, `node${i}.${name}`, net.paramFloats));
  const shardOffsets: number[] = [0];
  for (const s of options.shards) shardOffsets.push(shardOffsets[shardOffsets.length - 1]! + s.length);
  const layout: GossipLayout = {
    algorithm: options.algorithm,
    nodes: n,
    params: vectors("params", "parameters"),
    momentum: vectors("momentum", "optimizerState"),
    messages: vectors("message", "gradients"),
    grads: Array.from({ length: programs }, (_, w) => planner.floats("gradients", `worker${w}.grads`, net.paramFloats)),
    scratch: Array.from({ length: programs }, (_, w) => planner.floats("scratch", `worker${w}.mixScratch`, net.paramFloats)),
    average: planner.floats("parameters", "average", net.paramFloats),
    mixArgs: Array.from({ length: n }, (_, i) => ({
      tensors: planner.reserve("control", `node${i}.mix.tensors`, n * 4),
      weights: planner.reserve("control", `node${i}.mix.weights`, n * 4),
    })),
    mixing: options.mixing,
    shardOffsets,
    shardIndices: planner.reserve("data", "gossip.shards", shardOffsets[n]! * 4),
  };
  return {
    layout,
    params: layout.average,
    optimizerState: [...layout.params, ...layout.momentum],
    perWorker: Array.from({ length: programs }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, input.batch)),
    epochRole: "gossip.epoch",
    beforeEvaluate: (memory) => averageNodes(memory, layout, net.paramFloats),
    async epochMetrics(memory, evaluate) {
      averageNodes(memory, layout, net.paramFloats);
      let accuracy = 0;
      for (const x of layout.params) accuracy += (await evaluate(x)).testAccuracy;
      return {
        consensusDistance: consensusDistance(memory, layout, net.paramFloats),
        nodeTestAccuracy: accuracy / n,
        // Messages carry the parameters, not the arena's alignment padding.
        bytesPerNodeStep: bytesPerNodeStep(layout, net.params.reduce((a, l) => a + l.tensors.reduce((b, t) => b + t.floats, 0), 0) * 4),
      };
    },
    prepare(memory, _epochsDone, restored) {
      // A new run starts every node from the same initial weights (those initialised into `average`);
      // a resumed one keeps each node's own x_i and m_i, restored from the checkpoint (optimizerState).
      const from = new Float32Array(memory.buffer, layout.average, net.paramFloats);
      if (!restored) for (const p of layout.params) new Float32Array(memory.buffer, p, net.paramFloats).set(from);
      const indices = new Int32Array(memory.buffer, layout.shardIndices, shardOffsets[n]!);
      options.shards.forEach((s, i) => indices.set(s, shardOffsets[i]!));
    },
  };
}

/** x̄ = (1/n) Σ x_i, into `average` (accumulated in f64). */
function averageNodes(memory: WebAssembly.Memory, layout: GossipLayout, floats: number): void {
  const sum = new Float64Array(floats);
  for (const p of layout.params) {
    const x = new Float32Array(memory.buffer, p, floats);
    for (let e = 0; e < floats; e++) sum[e]! += x[e]!;
  }
  const avg = new Float32Array(memory.buffer, layout.average, floats);
  for (let e = 0; e < floats; e++) avg[e] = sum[e]! / layout.nodes;
}

/** (1/n) Σ_i ‖x_i − x̄‖², with x̄ already in `average`. */
function consensusDistance(memory: WebAssembly.Memory, layout: GossipLayout, floats: number): number {
  const avg = new Float32Array(memory.buffer, layout.average, floats);
  let total = 0;
  for (const p of layout.params) {
    const x = new Float32Array(memory.buffer, p, floats);
    for (let e = 0; e < floats; e++) total += (x[e]! - avg[e]!) ** 2;
  }
  return total / layout.nodes;
}

/**
 * Bytes a node sends per round: one model-sized message per out-neighbour (self excluded), averaged
 * over the period and the nodes. PmSGD is an all-reduce: a ring all-reduce sends 2(n − 1)/n models.
 */
function bytesPerNodeStep(layout: GossipLayout, modelBytes: number): number {
  const n = layout.nodes;
  if (layout.algorithm === "pmsgd") return (2 * (n - 1) * modelBytes) / n;
  let edges = 0;
  for (const round of layout.mixing.rounds) for (let i = 0; i < n; i++) edges += round[i]!.from.filter((j) => j !== i).length;
  return (edges / (layout.mixing.rounds.length * n)) * modelBytes;
}

/** Rounds per epoch: enough for the n nodes together to see the training set once. */
export function roundsPerEpoch(trainCount: number, nodes: number, batch: number): number {
  return Math.ceil(trainCount / (nodes * batch));
}

export function* gossipWorkerEpoch(ctx: RoleContext, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker, sync, control } = ctx;
  const layout = setup.layout as GossipLayout;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const { lo, hi } = shardOf(layout.nodes, setup.workers, worker);
  const grads = layout.grads[worker]!;
  const scratch = layout.scratch[worker]!;
  const mine = setup.perWorker[worker]!;
  const v: GossipVectors = { k, memory: ctx.memory, floats: net.paramFloats, layout };
  const gamma = setup.optimizer.lr;
  const beta = setup.optimizer.kind === "sgd" ? 0 : setup.optimizer.momentum;
  const rounds = roundsPerEpoch(setup.data.trainCount, layout.nodes, setup.batch);
  const period = layout.mixing.rounds.length;
  // Each node walks its own shard in an order fixed by (seed, epoch, node).
  const orders = Array.from({ length: hi - lo }, (_, d) => nodeOrder(ctx, layout, lo + d, epoch));
  let lossSum = 0;
  let samples = 0;

  for (let r = 0; r < rounds; r++) {
    // 1. local: gradient and message
    for (let i = lo; i < hi; i++) {
      const order = orders[i - lo]!;
      const rows = setup.batch;
      const from = (r * rows) % order.length;
      const t = mark(ctx.trace);
      loadBatch(ctx, mine, "train", wrap(order, from, rows), 0, rows);
      lossSum += net.gradient(k, layout.params[i]!, grads, mine.ws, rows, 1 / rows);
      samples += rows;
      writeMessage(v, i, grads, gamma, beta);
      span(ctx.trace, `node ${i}: gradient + message`, t);
      yield* sync.point();
    }
    control.workerLoss[worker] = lossSum;
    control.add(WORD.samplesDone, (hi - lo) * setup.batch);
    yield* sync.barrier(); // every message of this round is written

    // 2. mix and update
    const round = layout.mixing.rounds[(epoch * rounds + r) % period]!;
    for (let i = lo; i < hi; i++) {
      const t = mark(ctx.trace);
      mixAndUpdate(v, i, round[i]!, scratch, gamma, beta, i > lo);
      span(ctx.trace, `node ${i}: mix + update`, t);
      yield* sync.point();
    }
    yield* sync.barrier(); // no message is overwritten before every node has mixed
  }
  return {
    lossSum,
    samples,
    updates: worker === 0 ? rounds : 0,
    layerUpdates: 0,
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
  };
}

/** What the per-node steps need: kernels, memory, the vectors' length and where they live. */
export interface GossipVectors {
  k: KernelExports;
  memory: WebAssembly.Memory;
  floats: number;
  layout: Pick<GossipLayout, "algorithm" | "nodes" | "params" | "momentum" | "messages" | "mixArgs">;
}

/** Phase 1 for node i: h_i, what its neighbours will read this round, from its gradient g_i. */
export function writeMessage(v: GossipVectors, i: number, grads: Ptr, gamma: number, beta: number): void {
  const { k, floats, layout } = v;
  const h = layout.messages[i]!;
  switch (layout.algorithm) {
    case "pmsgd":
      return k.copy(h, grads, floats); // the all-reduce averages gradients
    case "dsgd":
    case "decentlam":
      k.copy(h, layout.params[i]!, floats);
      return k.sgd_update(h, grads, floats, gamma, 0); // x_i − γ g_i
    case "dmsgd":
      k.copy(h, layout.params[i]!, floats);
      return k.momentum_update(h, grads, layout.momentum[i]!, floats, gamma, beta, 0, 0, 0); // m_i ← βm_i + g_i; x_i − γ m_i
  }
}

/**
 * Phase 2 for node i, once every message is written: mix what it receives and update x_i (and m_i).
 * `scratch` is a vector of the worker's; `reuseMean` says it already holds PmSGD's mean gradient
 * (W = J whatever the topology: every node gets the same ḡ, so a worker computes it once).
 */
export function mixAndUpdate(v: GossipVectors, i: number, edges: Edges, scratch: Ptr, gamma: number, beta: number, reuseMean = false): void {
  const { k, floats, layout } = v;
  const x = layout.params[i]!;
  const m = layout.momentum[i]!;
  switch (layout.algorithm) {
    case "pmsgd":
      if (!reuseMean) mixInto(v, i, scratch, allNodes(layout.nodes)); // ḡ = (1/n) Σ_j g_j
      return k.momentum_update(x, scratch, m, floats, gamma, beta, 0, 0, 0); // m ← βm + ḡ; x ← x − γm
    case "decentlam":
      mixInto(v, i, scratch, edges); // z_i
      k.scale(scratch, floats, -1);
      k.axpy(scratch, x, floats, 1); // x_i − z_i
      k.scale(scratch, floats, 1 / gamma); // g̃_i = (x_i − z_i)/γ
      return k.momentum_update(x, scratch, m, floats, gamma, beta, 0, 0, 0); // m ← βm + g̃; x ← x − γm
    case "dsgd":
    case "dmsgd":
      return mixInto(v, i, x, edges); // x_i ← Σ_j w_ij h_j
  }
}

type Edges = { from: number[]; weights: number[] };

/** out = Σ_j w_j h_j over one node's incoming edges. */
function mixInto(v: GossipVectors, i: number, out: Ptr, edges: Edges): void {
  const { k, memory, floats, layout } = v;
  const { tensors, weights } = layout.mixArgs[i]!;
  const ptrs = new Int32Array(memory.buffer, tensors, edges.from.length);
  const ws = new Float32Array(memory.buffer, weights, edges.from.length);
  edges.from.forEach((j, e) => {
    ptrs[e] = layout.messages[j]!;
    ws[e] = edges.weights[e]!;
  });
  k.weighted_sum(out, tensors, weights, edges.from.length, floats);
}

const allNodesCache = new Map<number, { from: number[]; weights: number[] }>();
function allNodes(n: number): { from: number[]; weights: number[] } {
  let e = allNodesCache.get(n);
  if (!e) allNodesCache.set(n, (e = { from: Array.from({ length: n }, (_, j) => j), weights: new Array(n).fill(1 / n) }));
  return e;
}

/** Node i's shard, shuffled for this epoch. */
function nodeOrder(ctx: RoleContext, layout: GossipLayout, i: number, epoch: number): Uint32Array {
  const start = layout.shardOffsets[i]!;
  const count = layout.shardOffsets[i + 1]! - start;
  const shard = new Int32Array(ctx.memory.buffer, layout.shardIndices + start * 4, count);
  const perm = epochOrder(count, Rng.derive(ctx.setup.seed, "node", i).nextU32(), epoch);
  return Uint32Array.from(perm, (p) => shard[p]!);
}

/** `rows` items of `order` from `from`, wrapping around (a node with a small shard cycles through it). */
function wrap(order: Uint32Array, from: number, rows: number): Uint32Array {
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = order[(from + r) % order.length]!;
  return out;
}

