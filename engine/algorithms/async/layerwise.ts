/**
 * Layer-wise asynchronous SGD with decoupled forward and backward threads (Fokam, Nazeer, König,
 * Kappel, Subramoney, arXiv 2410.05985).
 *
 *   per replica: F forward threads, B backward threads, Q activation slots
 *   forward thread, for each batch it claims:
 *     take a free slot (wait if none: the bounded hand-off)
 *     forward through every layer with the weights as they are now, noting each layer's version
 *     loss and its gradient into the slot; hand the slot to the backward threads
 *   backward thread, for each slot it takes:
 *     for layer m from the top down:
 *       gradient of layer m (and of its input, with the weights the layer has now)
 *       apply it to layer m in place at once, then go on to m − 1
 *     give the slot back
 *   with R > 1 replicas: every K batches of each replica, drain, average the replicas, go on
 *
 * Batches keep one order from start to end, their ticket: a forward thread takes a free slot first and
 * only then claims the next ticket, hands slots over in ticket order, and updates of a layer are
 * applied in ticket order (a per-layer turn counter: a backward thread that catches up with an older
 * batch on some layer waits for it there, so updates of one layer never race).
 *
 * Staleness bound. Batch i reads layer m's version during its forward; until i's own update of m, the
 * layer is updated only by batches with earlier tickets that had not updated it yet. Each of those
 * already held a slot when i read m (slot before ticket), and so did i: at most Q − 1 of them. Hence
 * staleness ≤ Q − 1 for any F and B. (Without the ordering, a slow forward thread keeps its slot while
 * others cycle through the rest and staleness has no bound; the test suite found exactly that.) With
 * Q = 1 every batch runs alone and the updates are exactly synchronous SGD's.
 */
import { epochOrderOf } from "../../runtime/epoch-order.ts";
import type { Ptr } from "../../kernels/abi.ts";
import { loadBatch, planWorkerBuffers, type RoleContext, type WorkerBuffers } from "../../runtime/context.ts";
import { fillQueueWithIndices, planQueue, SharedQueue, type QueueLayout } from "../../runtime/queue.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { Algorithm, AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { asyncOptionsOf, type TrainConfig } from "../config.ts";
import { applyLayerUpdate, averageReplicasSlice, copyReplica0, planReplicas, replicaCounters, restoreReplicaCounters, versionsView, type ReplicaLayout } from "./replicas.ts";
import { StalenessRecorder } from "./staleness.ts";
import { keepWeights } from "./hogwild-step.ts";
import { weightedSum, type WeightedSumArgs } from "../../kernels/weighted-sum.ts";
import type { Edges } from "../gossip/round.ts";
import { mark, span } from "../../runtime/trace.ts";

interface Slot extends WorkerBuffers {
  /** i32[layers]: each layer's version when the forward read it. */
  versionRead: Ptr;
  /** i32: rows of the batch in this slot. */
  rows: Ptr;
  /** DC-ASGD: the weights the forward read, laid out like the parameters (0 when λ = 0). */
  readWeights: Ptr;
}

interface ReplicaPipeline {
  slots: Slot[];
  free: QueueLayout;
  ready: QueueLayout;
  /** i32 words: the next ticket to claim for a forward, for a backward, and to hand over. */
  forwardTicket: Ptr;
  backwardTicket: Ptr;
  handOver: Ptr;
  /** i32[layers]: updates of each layer applied so far in turn order. */
  turn: Ptr;
}

export interface LayerwiseLayout {
  replicas: ReplicaLayout;
  pipelines: ReplicaPipeline[];
  threadsPerReplica: number;
  fwdThreads: number;
  avgEvery: number;
  /** Per backward thread (by program index): its gradient vector. */
  grads: Ptr[];
  /**
   * LayUp (layup.ts): replicas are gossip nodes. After each layer update a backward thread mixes that
   * layer with its neighbours' current copies, and the replicas are never averaged with a barrier.
   */
  gossip?: LayerGossip;
}

export interface LayerGossip {
  /** Per round of the topology's period, per replica: whom it receives from and with what weight. */
  rounds: Edges[][];
  /** Per program: room for the mixing kernel's pointer table. */
  mixArgs: WeightedSumArgs[];
}

export const layerwise: Algorithm<LayerwiseLayout> = {
  name: "layerwise",
  family: "async",
  about: "decoupled forward and backward threads, each layer updated as soon as its gradient exists",
  paper: "Fokam, Nazeer, König, Kappel, Subramoney: asynchronous SGD with decoupled backpropagation (arXiv 2410.05985)",
  flags: ["replicas", "avg-every", "fwd-threads", "bwd-threads", "queue", "staleness-lr", "dc-lambda"],
  programs: threadsOf,
  programsFrom: "--replicas × (--fwd-threads + --bwd-threads)",
  // Batches of the epoch, whichever thread trains them.
  stepsPerEpoch: (config, trainCount) => Math.ceil(trainCount / config.batch),
  plan: planLayerwise,
  epoch: layerwiseEpoch,
};

/** Threads of a layerwise run: F forward and B backward threads per replica. */
export function threadsOf(config: TrainConfig): number {
  const o = asyncOptionsOf(config);
  return o.replicas * (o.fwdThreads + o.bwdThreads);
}

/** `gossipRounds`: LayUp's topology (per round, per replica), or none for layerwise itself. */
export function planLayerwise(input: PlanInput, gossipRounds?: Edges[][]): AlgorithmPlan<LayerwiseLayout> {
  const { planner, net } = input;
  const o = asyncOptionsOf(input.config);
  const R = o.replicas;
  const perReplica = o.fwdThreads + o.bwdThreads;
  const programs = R * perReplica;
  const replicas = planReplicas(planner, net, R, programs, input.optimizer, input.audit, o);
  const layers = net.layers.length;
  const pipelines = Array.from({ length: R }, (_, r): ReplicaPipeline => ({
    slots: Array.from({ length: o.queue }, (_, s) => ({
      ...planWorkerBuffers(planner, net, `replica${r}.slot${s}`, input.batch),
      versionRead: planner.reserve("control", `replica${r}.slot${s}.versions`, layers * 4),
      rows: planner.reserve("control", `replica${r}.slot${s}.rows`, 4),
      readWeights: o.dcLambda > 0 ? planner.floats("scratch", `replica${r}.slot${s}.readWeights`, net.paramFloats) : 0,
    })),
    free: planQueue(planner, `replica${r}.free`, o.queue),
    ready: planQueue(planner, `replica${r}.ready`, o.queue),
    forwardTicket: planner.reserve("control", `replica${r}.forwardTicket`, 4),
    backwardTicket: planner.reserve("control", `replica${r}.backwardTicket`, 4),
    handOver: planner.reserve("control", `replica${r}.handOver`, 4),
    turn: planner.reserve("control", `replica${r}.turn`, layers * 4),
  }));
  const grads = Array.from({ length: programs }, (_, p) =>
    p % perReplica >= o.fwdThreads ? planner.floats("gradients", `thread${p}.grads`, net.paramFloats) : 0,
  );
  const gossip = gossipRounds && {
    rounds: gossipRounds,
    mixArgs: Array.from({ length: programs }, (_, p) => ({
      tensors: planner.reserve("control", `thread${p}.gossip.tensors`, R * 4),
      weights: planner.reserve("control", `thread${p}.gossip.weights`, R * 4),
    })),
  };
  const layout: LayerwiseLayout = { replicas, pipelines, threadsPerReplica: perReplica, fwdThreads: o.fwdThreads, avgEvery: o.avgEvery, grads, ...(gossip ? { gossip } : {}) };
  return {
    layout,
    params: replicas.params[0]!,
    optimizerState: replicas.state.flat(),
    // Evaluation buffers only: training batches live in the slots.
    perWorker: Array.from({ length: programs }, (_, p) => planWorkerBuffers(planner, net, `thread${p}`, Math.min(input.batch, 256))),
    trackName: (p) => `replica ${Math.floor(p / perReplica)} ${p % perReplica < o.fwdThreads ? "forward" : "backward"} thread ${p}`,
    prepare(memory, epochsDone) {
      // Replicas are averaged at every epoch's end, so replica 0 (what is checkpointed) is all of them.
      // LayUp's nodes never are: its plan starts and restores each node itself.
      if (!gossip) copyReplica0(memory, replicas, net.paramFloats);
      const words = new Int32Array(memory.buffer);
      pipelines.forEach((pipe, r) => {
        fillQueueWithIndices(memory, pipe.free, o.queue);
        const first = epochsDone * batchesPerEpoch(input.trainCount, input.batch, r, R);
        for (const word of [pipe.forwardTicket, pipe.backwardTicket, pipe.handOver]) words[word >> 2] = first;
      });
    },
    counters: (memory) => replicaCounters(memory, replicas, layers),
    restoreCounters: (memory, counters) => restoreReplicaCounters(memory, replicas, layers, counters),
    ledger: (r) => replicas.ledger[r] ?? 0,
  };
}

/** Replica r trains batches r, r + R, r + 2R, … of each epoch's `steps` batches. */
function batchesPerEpoch(trainCount: number, batch: number, replica: number, R: number): number {
  return Math.ceil((Math.ceil(trainCount / batch) - replica) / R);
}

/**
 * Claim the next ticket below `hi` from a shared counter, or null when none is left. Counters only
 * grow, across epochs (prepare() starts them where the first epoch of this process begins).
 */
function claim(words: Int32Array, index: number, hi: number): number | null {
  for (;;) {
    const seen = Atomics.load(words, index);
    if (seen >= hi) return null;
    if (Atomics.compareExchange(words, index, seen, seen + 1) === seen) return seen;
  }
}

function* layerwiseEpoch(ctx: RoleContext<LayerwiseLayout>, epoch: number): RoleProgram<EpochResult> {
  const { setup, worker } = ctx;
  const layout = setup.layout;
  const R = layout.pipelines.length;
  const replica = Math.floor(worker / layout.threadsPerReplica);
  const isForward = worker % layout.threadsPerReplica < layout.fwdThreads;
  const started = performance.now();
  const waitedBefore = ctx.sync.waitedMs;
  const recorder = new StalenessRecorder(ctx.net.trainableLayers);
  const totals = { lossSum: 0, samples: 0, updates: 0 };

  // Replica r trains batches r, r + R, r + 2R, … of the epoch, in segments of K between averagings.
  const steps = Math.ceil(setup.data.trainCount / setup.batch);
  const mineCount = batchesPerEpoch(setup.data.trainCount, setup.batch, replica, R);
  const averages = R > 1 && !layout.gossip; // LayUp's replicas only ever gossip
  const K = averages ? layout.avgEvery : mineCount;
  const segments = Math.ceil(Math.ceil(steps / R) / K);
  const order = epochOrderOf(ctx, epoch);
  for (let s = 0; s < segments; s++) {
    const hi = epoch * mineCount + Math.min((s + 1) * K, mineCount);
    if (isForward) yield* forwardThread(ctx, layout, replica, order, epoch * mineCount, hi, totals);
    else yield* backwardThread(ctx, layout, replica, hi, recorder, totals);
    if (averages) {
      yield* ctx.sync.barrier(); // every replica has drained its segment
      averageReplicasSlice(ctx, layout.replicas, worker, setup.programs);
      yield* ctx.sync.barrier();
    }
  }
  const staleness = recorder.report();
  return {
    ...totals,
    layerUpdates: staleness.layers.reduce((a, l) => a + l.applied, 0),
    waitedMs: ctx.sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
    staleness: isForward ? undefined : staleness,
  };
}

function* forwardThread(
  ctx: RoleContext,
  layout: LayerwiseLayout,
  replica: number,
  order: Uint32Array,
  epochBase: number,
  hi: number,
  totals: { lossSum: number; samples: number },
): RoleProgram<void> {
  const { k, net, setup, memory, sync, control } = ctx;
  const pipe = layout.pipelines[replica]!;
  const words = new Int32Array(memory.buffer);
  const free = new SharedQueue(memory, pipe.free, sync);
  const ready = new SharedQueue(memory, pipe.ready, sync);
  const params = layout.replicas.params[replica]!;
  const versions = versionsView(memory, layout.replicas, replica, net.layers.length);
  const R = layout.pipelines.length;
  for (;;) {
    const { item } = yield* free.pop(); // slot first, then ticket: see the staleness bound
    const ticket = claim(words, pipe.forwardTicket >> 2, hi);
    if (ticket === null) return yield* free.push(item);
    const batch = replica + R * (ticket - epochBase);
    const slot = pipe.slots[item]!;
    const from = batch * setup.batch;
    const rows = Math.min(setup.batch, setup.data.trainCount - from);
    loadBatch(ctx, slot, "train", order, from, rows);
    const read = new Int32Array(memory.buffer, slot.versionRead, net.layers.length);
    const t = mark(ctx.trace);
    for (let m = 0; m < net.layers.length; m++) {
      read[m] = Atomics.load(versions, m);
      if (slot.readWeights !== 0) keepWeights(ctx, m, slot.readWeights, params);
      net.forwardLayer(k, m, params, slot.ws, rows);
      yield* sync.point();
    }
    totals.lossSum += net.lossAndGradient(k, slot.ws, rows, 1 / rows);
    span(ctx.trace, "forward", t);
    totals.samples += rows;
    control.report(ctx.worker, totals.lossSum, rows);
    new Int32Array(memory.buffer, slot.rows, 1)[0] = rows;
    // Hand over in ticket order, so the ready queue's order (the backward turn order) is ticket order.
    for (let seen = Atomics.load(words, pipe.handOver >> 2); seen !== ticket; seen = Atomics.load(words, pipe.handOver >> 2)) {
      yield* sync.waitChange(pipe.handOver, seen, "an older batch's hand-over");
    }
    yield* ready.push(item);
    sync.wake(pipe.handOver);
  }
}

/**
 * LayUp's gossip step for one layer: x_r[m] ← Σ_j w_rj x_j[m] over replica r's neighbours' copies as
 * they are now, in place, with no lock and no barrier (a neighbour may be updating its copy at the same
 * moment, as Hogwild! threads do with one copy). The round of a dynamic topology follows the layer's
 * update count.
 */
function gossipLayer(ctx: RoleContext, replicas: ReplicaLayout, gossip: LayerGossip, replica: number, m: number, version: number): void {
  const region = ctx.net.params[m]!;
  const edges = gossip.rounds[version % gossip.rounds.length]![replica]!;
  const at = (p: Ptr) => p + region.offset * 4;
  weightedSum(ctx.k, ctx.memory, gossip.mixArgs[ctx.worker]!, at(replicas.params[replica]!), edges.from.map((j) => at(replicas.params[j]!)), edges.weights, region.floats);
}

function* backwardThread(
  ctx: RoleContext,
  layout: LayerwiseLayout,
  replica: number,
  hi: number,
  recorder: StalenessRecorder,
  totals: { updates: number },
): RoleProgram<void> {
  const { k, net, memory, sync } = ctx;
  const pipe = layout.pipelines[replica]!;
  const words = new Int32Array(memory.buffer);
  const free = new SharedQueue(memory, pipe.free, sync);
  const ready = new SharedQueue(memory, pipe.ready, sync);
  const params = layout.replicas.params[replica]!;
  const grads = layout.grads[ctx.worker]!;
  const turnWord = (m: number) => pipe.turn + m * 4;
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  for (;;) {
    // One claim per batch forwarded in this segment, so no thread waits for a slot that never comes.
    if (claim(words, pipe.backwardTicket >> 2, hi) === null) return;
    const { item, ticket: turn } = yield* ready.pop();
    const slot = pipe.slots[item]!;
    const rows = new Int32Array(memory.buffer, slot.rows, 1)[0]!;
    const read = new Int32Array(memory.buffer, slot.versionRead, net.layers.length);
    const t = mark(ctx.trace);
    for (let m = net.layers.length - 1; m >= firstTrainable; m--) {
      net.backwardLayer(k, m, params, grads, slot.ws, rows, false);
      if (net.params[m]!.floats > 0) {
        recorder.produced(m);
        // Wait for the batches taken before this one to have updated layer m.
        for (let seen = Atomics.load(words, turnWord(m) >> 2); seen !== turn; seen = Atomics.load(words, turnWord(m) >> 2)) {
          yield* sync.waitChange(turnWord(m), seen, `layer ${m}'s turn`);
        }
        // The gradient took virtual time: the forward threads that are behind read the layer first.
        yield* sync.virtualPoint();
        const version = applyLayerUpdate(ctx, layout.replicas, replica, m, grads, read[m]!, recorder, slot.readWeights) + read[m]!;
        if (layout.gossip) gossipLayer(ctx, layout.replicas, layout.gossip, replica, m, version);
        sync.wake(turnWord(m));
      }
      yield* sync.point();
    }
    span(ctx.trace, "backward + layer updates", t);
    totals.updates++;
    yield* free.push(item);
  }
}

