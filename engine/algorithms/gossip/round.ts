/**
 * The gossip round that every decentralized algorithm here shares: n logical nodes, each with its own
 * parameters x_i and momentum m_i, averaging only with neighbours through a mixing matrix W (row i:
 * what node i receives). An algorithm is its `GossipRule`: the message a node sends, and the update it
 * makes from the messages it receives (pmsgd.ts, dsgd.ts, dmsgd.ts, decentlam.ts).
 *
 * Each round is two phases on every worker (nodes are dealt to workers in contiguous blocks):
 *   1. local: gradient g_i on node i's batch, then its message h_i; barrier
 *   2. mix: node i's update from Σ_j w_ij h_j (its rule); barrier
 * The messages h are the double buffer: a node reads its neighbours' round-r messages while its own
 * x_i changes, and nobody writes a message until everyone has finished reading (the barrier).
 */
import type { KernelExports, Ptr } from "../../kernels/abi.ts";
import { UserError } from "../../errors.ts";
import { weightedSum, type WeightedSumArgs } from "../../kernels/weighted-sum.ts";
import { epochOrder } from "../../data/order.ts";
import { loadBatch, planWorkerBuffers, type RoleContext } from "../../runtime/context.ts";
import { shardOf } from "../../runtime/split.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { Algorithm, AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { gossipOptionsOf, type TrainConfig } from "../config.ts";
import { gossipOptions } from "./setup.ts";
import { Rng } from "../../rng.ts";
import { mark, span } from "../../runtime/trace.ts";
import { PhaseOneOrder, readerPrograms } from "./across.ts";

/** What makes one gossip algorithm different from another. */
export interface GossipRule {
  /** Per-node vectors the rule keeps beyond x_i and m_i (zero at the start unless `prepare` sets them). */
  state?: readonly string[];
  /** Before the first round, once every x_i holds the initial model: set the rule's own state. */
  prepare?(memory: WebAssembly.Memory, layout: GossipLayout, i: number, floats: number): void;
  /**
   * Node i's own model: where its gradient is taken, what its accuracy and consensus distance are
   * measured on (default x_i; push-sum: the de-biased x_i / w_i).
   */
  modelOf?(layout: GossipLayout, i: number): Ptr;
  /** Phase 1 for node i in round t: h_i, what its neighbours read this round, from its gradient g_i. */
  message(v: GossipVectors, i: number, grads: Ptr, gamma: number, beta: number, t: number): void;
  /**
   * Phase 2 for node i, once every message is written: mix what it receives and update x_i (and m_i).
   * `scratch` is a vector of the worker's; `firstOfWorker` says node i is the first node of its worker
   * this round (PmSGD computes the network mean once per worker).
   */
  update(v: GossipVectors, i: number, edges: Edges, scratch: Ptr, gamma: number, beta: number, firstOfWorker: boolean, t: number): void;
  /** Every node's update reads every node's message, whatever the mixing matrix says (an all-reduce). */
  readsAll?: boolean;
  /** Bytes a node sends per round (default: one model per out-neighbour). */
  bytesPerNodeStep?(layout: GossipLayout, modelBytes: number): number;
  /** As how many messages it sends them (default: one per model-sized share; a ring all-reduce: 2(n−1)). */
  messagesPerNodeStep?(layout: GossipLayout): number;
}

/** Per round of the topology's period, per node: the nodes it receives from (itself included) and their weights. */
export interface MixingSchedule {
  nodes: number;
  rounds: { from: number[]; weights: number[] }[][];
}

export interface GossipOptions {
  mixing: MixingSchedule;
  /** What the rule reads at run time beyond γ and β. */
  settings: Record<string, number>;
  /** Per node: the training sample indices it owns (the partition). */
  shards: Uint32Array[];
}

export interface GossipLayout {
  nodes: number;
  params: Ptr[]; // x_i
  momentum: Ptr[]; // m_i
  messages: Ptr[]; // h_i
  /** The rule's own per-node vectors, by name (GossipRule.state). */
  state: Record<string, Ptr[]>;
  /** f32 per node: a scalar the rule keeps beside x_i (push-sum's weight), and its round-r message. */
  scalars: Ptr;
  scalarMessages: Ptr;
  /**
   * i32 per node: in a run across processes, bumped (sync.wake) once the node's message of the round
   * is written and another process reads it, so the main thread can send it while the worker goes on.
   */
  written: Ptr;
  /** Per worker: its gradient vector, and a scratch vector for DecentLaM's g̃. */
  grads: Ptr[];
  scratch: Ptr[];
  /** The averaged model x̄ (evaluated and checkpointed). */
  average: Ptr;
  /** Per node: room for the mixing kernel's arguments (up to n pointers and weights). */
  mixArgs: WeightedSumArgs[];
  mixing: MixingSchedule;
  settings: Record<string, number>;
  /** Per node: offsets into `shardIndices` of its samples. */
  shardOffsets: number[];
  shardIndices: Ptr; // i32, all shards back to back
}

/** A gossip algorithm's registry entry, and its rule (tests run the rule on its own). */
export type GossipAlgorithm = Algorithm<GossipLayout> & { readonly rule: GossipRule };

/** A gossip algorithm's registry entry: the shared round, planned and run with its rule. */
export function gossipAlgorithm(
  entry: Pick<Algorithm, "name" | "about" | "paper"> & {
    rule: GossipRule;
    check?: Algorithm["check"];
    flags?: string[];
    /** Numbers the rule reads at run time, from the configuration (e.g. SlowMo's τ, β, α). */
    settings?(config: TrainConfig): Record<string, number>;
  },
): GossipAlgorithm {
  const { rule, check, flags = [], settings, ...rest } = entry;
  return {
    ...rest,
    rule,
    family: "gossip",
    flags: ["topology", "nodes", "partition", ...flags],
    programs: (config) => config.workers,
    stepsPerEpoch: (config, trainCount) => roundsPerEpoch(trainCount, gossipOptionsOf(config).nodes, config.batch),
    check(config) {
      const { nodes } = gossipOptionsOf(config);
      if (config.optimizer.kind !== "sgd" && config.optimizer.kind !== "momentum") {
        throw new UserError(`--optimizer ${config.optimizer.kind}: ${entry.name} has its own update rule; use momentum (β = --momentum) or sgd (β = 0)`);
      }
      if (config.workers > nodes) throw new UserError(`--workers ${config.workers} is more than --nodes ${nodes}: every worker needs at least one node`);
      check?.(config);
    },
    plan: (input) => planGossip(input, { ...gossipOptions(input.dataset, input.config), settings: settings?.(input.config) ?? {} }, rule),
    epoch: (ctx, epoch) => gossipWorkerEpoch(ctx, epoch, rule),
  };
}

function planGossip(input: PlanInput, options: GossipOptions, rule: GossipRule): AlgorithmPlan<GossipLayout> {
  const { planner, net, programs } = input;
  const n = options.mixing.nodes;
  const vectors = (name: string, kind: "parameters" | "optimizerState" | "gradients") =>
    Array.from({ length: n }, (_, i) => planner.floats(kind, `node${i}.${name}`, net.paramFloats));
  const shardOffsets: number[] = [0];
  for (const s of options.shards) shardOffsets.push(shardOffsets[shardOffsets.length - 1]! + s.length);
  const layout: GossipLayout = {
    nodes: n,
    params: vectors("params", "parameters"),
    momentum: vectors("momentum", "optimizerState"),
    messages: vectors("message", "gradients"),
    state: Object.fromEntries((rule.state ?? []).map((name) => [name, vectors(name, "optimizerState")])),
    scalars: planner.reserve("optimizerState", "nodes.scalars", n * 4),
    scalarMessages: planner.reserve("gradients", "nodes.scalarMessages", n * 4),
    written: planner.reserve("control", "nodes.messageWritten", n * 4),
    grads: Array.from({ length: programs }, (_, w) => planner.floats("gradients", `worker${w}.grads`, net.paramFloats)),
    scratch: Array.from({ length: programs }, (_, w) => planner.floats("scratch", `worker${w}.mixScratch`, net.paramFloats)),
    average: planner.floats("parameters", "average", net.paramFloats),
    // Up to n neighbours and two more terms (mixInto's extras).
    mixArgs: Array.from({ length: n }, (_, i) => ({
      tensors: planner.reserve("control", `node${i}.mix.tensors`, (n + 2) * 4),
      weights: planner.reserve("control", `node${i}.mix.weights`, (n + 2) * 4),
    })),
    mixing: options.mixing,
    settings: options.settings,
    shardOffsets,
    shardIndices: planner.reserve("data", "gossip.shards", shardOffsets[n]! * 4),
  };
  return {
    layout,
    params: layout.average,
    optimizerState: [...layout.params, ...layout.momentum, ...Object.values(layout.state).flat()],
    perWorker: Array.from({ length: programs }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, input.batch)),
    beforeEvaluate: (memory) => averageNodes(memory, layout, net.paramFloats),
    checkpointVectors: () => [{ name: "gossip.nodeScalars", ptr: layout.scalars, floats: n }],
    async epochMetrics(memory, evaluate) {
      averageNodes(memory, layout, net.paramFloats);
      let accuracy = 0;
      const models = layout.params.map((x, i) => rule.modelOf?.(layout, i) ?? x);
      for (const x of models) accuracy += (await evaluate(x)).testAccuracy;
      return {
        consensusDistance: consensusDistance(memory, layout, models, net.paramFloats),
        nodeTestAccuracy: accuracy / n,
        // Messages carry the parameters, not the arena's alignment padding.
        bytesPerNodeStep: (rule.bytesPerNodeStep ?? bytesToNeighbours)(layout, net.parameterCount * 4),
      };
    },
    prepare(memory, _epochsDone, restored) {
      // A new run starts every node from the same initial weights (those initialised into `average`)
      // and the rule's own start; a resumed one keeps each node's own x_i, m_i and the rule's vectors,
      // restored from the checkpoint (optimizerState), and the per-node scalars (checkpointVectors).
      const from = new Float32Array(memory.buffer, layout.average, net.paramFloats);
      if (!restored) {
        for (const p of layout.params) new Float32Array(memory.buffer, p, net.paramFloats).set(from);
        for (let i = 0; i < n; i++) rule.prepare?.(memory, layout, i, net.paramFloats);
      }
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

/** (1/n) Σ_i ‖model_i − x̄‖², with x̄ already in `average`. */
function consensusDistance(memory: WebAssembly.Memory, layout: GossipLayout, models: Ptr[], floats: number): number {
  const avg = new Float32Array(memory.buffer, layout.average, floats);
  let total = 0;
  for (const p of models) {
    const x = new Float32Array(memory.buffer, p, floats);
    for (let e = 0; e < floats; e++) total += (x[e]! - avg[e]!) ** 2;
  }
  return total / layout.nodes;
}

/**
 * Bytes a node sends per round: one model-sized message per out-neighbour (self excluded), averaged
 * over the period and the nodes.
 */
function bytesToNeighbours(layout: GossipLayout, modelBytes: number): number {
  const n = layout.nodes;
  let edges = 0;
  for (const round of layout.mixing.rounds) for (let i = 0; i < n; i++) edges += round[i]!.from.filter((j) => j !== i).length;
  return (edges / (layout.mixing.rounds.length * n)) * modelBytes;
}

/** What a node sends per round, for the network model: its bytes, and as how many messages. */
function trafficPerNodeStep(layout: GossipLayout, rule: GossipRule, modelBytes: number): { bytes: number; messages: number } {
  const bytes = (rule.bytesPerNodeStep ?? bytesToNeighbours)(layout, modelBytes);
  return { bytes, messages: rule.messagesPerNodeStep?.(layout) ?? Math.max(1, Math.round(bytes / modelBytes)) };
}

/** Rounds per epoch: enough for the n nodes together to see the training set once. */
export function roundsPerEpoch(trainCount: number, nodes: number, batch: number): number {
  return Math.ceil(trainCount / (nodes * batch));
}

function* gossipWorkerEpoch(ctx: RoleContext<GossipLayout>, epoch: number, rule: GossipRule): RoleProgram<EpochResult> {
  const { k, net, setup, worker, sync, control } = ctx;
  const layout = setup.layout;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const { lo, hi } = shardOf(layout.nodes, setup.programs, worker);
  const grads = layout.grads[worker]!;
  const scratch = layout.scratch[worker]!;
  const mine = setup.perWorker[worker]!;
  const v: GossipVectors = { k, memory: ctx.memory, floats: net.paramFloats, layout };
  const gamma = setup.optimizer.lr;
  const beta = setup.optimizer.kind === "sgd" ? 0 : setup.optimizer.momentum;
  const rounds = roundsPerEpoch(setup.data.trainCount, layout.nodes, setup.batch);
  const period = layout.mixing.rounds.length;
  const traffic = trafficPerNodeStep(layout, rule, net.parameterCount * 4);
  // Each node walks its own shard in an order fixed by (seed, epoch, node).
  const orders = Array.from({ length: hi - lo }, (_, d) => nodeOrder(ctx, layout, lo + d, epoch));
  // Across processes: nodes whose messages another process reads go first (across.ts).
  const phaseOne = new PhaseOneOrder(setup, layout.mixing, lo, hi, rule.readsAll === true);
  const losses = new Float64Array(hi - lo);
  // Who reads each node's message: the simulator charges the network only for readers in another
  // process when told the run's placement (an all-reduce rule declares its traffic as a whole).
  const readers = rule.readsAll ? null : readerPrograms(layout.mixing, setup.programs, lo, hi);
  let lossSum = 0;
  let samples = 0;

  for (let r = 0; r < rounds; r++) {
    const round = epoch * rounds + r; // rounds since the run began
    // 1. local: gradient and message
    const p = round % period;
    for (const i of phaseOne.of(p)) {
      const order = orders[i - lo]!;
      const rows = setup.batch;
      const from = (r * rows) % order.length;
      const t = mark(ctx.trace);
      loadBatch(ctx, mine, "train", wrap(order, from, rows), 0, rows);
      losses[i - lo] = net.gradient(k, rule.modelOf?.(layout, i) ?? layout.params[i]!, grads, mine.ws, rows, 1 / rows);
      samples += rows;
      rule.message(v, i, grads, gamma, beta, round);
      sync.send(traffic.bytes, traffic.messages, readers?.[p]![i - lo]); // to its out-neighbours
      if (phaseOne.crosses[p]![i]) sync.wake(layout.written + 4 * i); // its message can leave now
      span(ctx.trace, `node ${i}: gradient + message`, t);
      yield* sync.point();
    }
    for (const loss of losses) lossSum += loss; // in node order, whatever order computed them
    control.report(worker, lossSum, (hi - lo) * setup.batch);
    yield* sync.barrier(); // every message of this round is written

    // 2. mix and update
    const mixing = layout.mixing.rounds[round % period]!;
    for (let i = lo; i < hi; i++) {
      const t = mark(ctx.trace);
      rule.update(v, i, mixing[i]!, scratch, gamma, beta, i === lo, round);
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
  layout: Pick<GossipLayout, "nodes" | "params" | "momentum" | "messages" | "mixArgs" | "state" | "scalars" | "scalarMessages" | "settings">;
}

/** One node's incoming edges this round: the nodes it receives from (itself included) and their weights. */
export type Edges = { from: number[]; weights: number[] };

/**
 * out = scale · Σ_j w_j h_j over one node's incoming edges (h: the messages, or another per-node
 * vector), plus up to two more terms c·p: one fused pass over the vectors, whatever the rule adds.
 */
export function mixInto(v: GossipVectors, i: number, out: Ptr, edges: Edges, h: readonly Ptr[] = v.layout.messages, scale = 1, extra: readonly (readonly [Ptr, number])[] = []): void {
  const sources = edges.from.map((j) => h[j]!);
  const weights = edges.weights.map((w) => w * scale);
  for (const [p, c] of extra) sources.push(p), weights.push(c);
  weightedSum(v.k, v.memory, v.layout.mixArgs[i]!, out, sources, weights, v.floats);
}

/** out = Σ c·p over a few of node i's vectors in one pass (the node's mixing table is free in phase 1). */
export function combine(v: GossipVectors, i: number, out: Ptr, terms: readonly (readonly [Ptr, number])[]): void {
  weightedSum(v.k, v.memory, v.layout.mixArgs[i]!, out, terms.map(([p]) => p), terms.map(([, c]) => c), v.floats);
}

const allNodesCache = new Map<number, Edges>();
/** W = J: every node with weight 1/n (the exact average an all-reduce computes). */
export function allNodes(n: number): Edges {
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

