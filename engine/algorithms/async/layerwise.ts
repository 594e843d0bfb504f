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
 * Updates of one layer are applied in the order the slots were taken (a per-layer turn counter): a
 * backward thread that catches up with an older batch on some layer waits for it there. That keeps
 * updates of a layer from racing, and gives the staleness bound below.
 *
 * Staleness bound. Batch i reads layer m's version v during its forward; between that read and i's
 * own update of m, layer m is updated only by batches taken from the hand-off queue before i (turn
 * order), which have not reached m yet when i reads it. Each of those holds a slot at that moment and
 * so does i: there are at most Q − 1 of them. Hence staleness ≤ Q − 1 for any F and B, and with
 * Q = 1, F = B = 1 every batch runs alone: the updates are exactly synchronous SGD's.
 */
import { epochOrder } from "../../data/order.ts";
import type { Ptr } from "../../kernels/abi.ts";
import { loadBatch, planWorkerBuffers, type RoleContext, type WorkerBuffers } from "../../runtime/context.ts";
import { WORD } from "../../runtime/control.ts";
import { fillQueueWithIndices, planQueue, SharedQueue, type QueueLayout } from "../../runtime/queue.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { applyLayerUpdate, averageReplicasSlice, copyReplica0, planReplicas, versionsView, type ReplicaLayout } from "./replicas.ts";
import { StalenessRecorder } from "./staleness.ts";

interface Slot extends WorkerBuffers {
  /** i32[layers]: each layer's version when the forward read it. */
  versionRead: Ptr;
  /** i32: rows of the batch in this slot. */
  rows: Ptr;
}

interface ReplicaPipeline {
  slots: Slot[];
  free: QueueLayout;
  ready: QueueLayout;
  /** i32 words: the next batch to forward, the next slot to take for backward (claims, see `claim`). */
  forwardTicket: Ptr;
  backwardTicket: Ptr;
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
}

export function planLayerwise(input: PlanInput, audit = false): AlgorithmPlan {
  const { planner, net, async: o } = input;
  const R = o.replicas;
  const perReplica = o.fwdThreads + o.bwdThreads;
  const programs = R * perReplica;
  const replicas = planReplicas(planner, net, R, programs, input.optimizer, audit);
  const layers = net.layers.length;
  const pipelines = Array.from({ length: R }, (_, r): ReplicaPipeline => ({
    slots: Array.from({ length: o.queue }, (_, s) => ({
      ...planWorkerBuffers(planner, net, `replica${r}.slot${s}`, input.batch),
      versionRead: planner.reserve("control", `replica${r}.slot${s}.versions`, layers * 4),
      rows: planner.reserve("control", `replica${r}.slot${s}.rows`, 4),
    })),
    free: planQueue(planner, `replica${r}.free`, o.queue),
    ready: planQueue(planner, `replica${r}.ready`, o.queue),
    forwardTicket: planner.reserve("control", `replica${r}.forwardTicket`, 4),
    backwardTicket: planner.reserve("control", `replica${r}.backwardTicket`, 4),
    turn: planner.reserve("control", `replica${r}.turn`, layers * 4),
  }));
  const grads = Array.from({ length: programs }, (_, p) =>
    p % perReplica >= o.fwdThreads ? planner.floats("gradients", `thread${p}.grads`, net.paramFloats) : 0,
  );
  const layout: LayerwiseLayout = { replicas, pipelines, threadsPerReplica: perReplica, fwdThreads: o.fwdThreads, avgEvery: o.avgEvery, grads };
  return {
    layout,
    params: replicas.params[0]!,
    optimizerState: replicas.state.flat(),
    // Evaluation buffers only: training batches live in the slots.
    perWorker: Array.from({ length: programs }, (_, p) => planWorkerBuffers(planner, net, `thread${p}`, Math.min(input.batch, 256))),
    epochRole: "layerwise.epoch",
    prepare(memory) {
      copyReplica0(memory, replicas, net.paramFloats);
      for (const pipe of pipelines) fillQueueWithIndices(memory, pipe.free, o.queue);
    },
    counters: (memory) => replicas.versions.flatMap((_, r) => [...versionsView(memory, replicas, r, layers)]),
    restoreCounters: (memory, counters) => replicas.versions.forEach((_, r) => versionsView(memory, replicas, r, layers).set(counters.slice(r * layers, (r + 1) * layers))),
  };
}

/**
 * Claim the next ticket in [lo, hi) from a shared counter, or null when none is left. Counters only
 * grow, across epochs; a counter below `lo` (a resumed process starts at 0) jumps to it.
 */
function claim(words: Int32Array, index: number, lo: number, hi: number): number | null {
  for (;;) {
    const seen = Atomics.load(words, index);
    const next = Math.max(seen, lo);
    if (next >= hi) return null;
    if (Atomics.compareExchange(words, index, seen, next + 1) === seen) return next;
  }
}

export function* layerwiseEpoch(ctx: RoleContext, epoch: number): RoleProgram<EpochResult> {
  const { setup, worker } = ctx;
  const layout = setup.layout as LayerwiseLayout;
  const R = layout.pipelines.length;
  const replica = Math.floor(worker / layout.threadsPerReplica);
  const isForward = worker % layout.threadsPerReplica < layout.fwdThreads;
  const started = performance.now();
  const waitedBefore = ctx.sync.waitedMs;
  const recorder = new StalenessRecorder(ctx.net.trainableLayers);
  const totals = { lossSum: 0, samples: 0, updates: 0 };

  // Replica r trains batches r, r + R, r + 2R, … of the epoch, in segments of K between averagings.
  const steps = Math.ceil(setup.data.trainCount / setup.batch);
  const mineCount = Math.ceil((steps - replica) / R);
  const K = R > 1 ? layout.avgEvery : mineCount;
  const segments = Math.ceil(Math.ceil(steps / R) / K);
  const order = epochOrder(setup.data.trainCount, setup.seed, epoch);
  for (let s = 0; s < segments; s++) {
    const lo = epoch * mineCount + Math.min(s * K, mineCount);
    const hi = epoch * mineCount + Math.min((s + 1) * K, mineCount);
    if (isForward) yield* forwardThread(ctx, layout, replica, order, epoch * mineCount, lo, hi, totals);
    else yield* backwardThread(ctx, layout, replica, lo, hi, recorder, totals);
    if (R > 1) {
      yield* ctx.sync.barrier(); // every replica has drained its segment
      averageReplicasSlice(ctx, layout.replicas, worker, setup.workers);
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
  lo: number,
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
    const ticket = claim(words, pipe.forwardTicket >> 2, lo, hi);
    if (ticket === null) return;
    const batch = replica + R * (ticket - epochBase);
    const { item } = yield* free.pop();
    const slot = pipe.slots[item]!;
    const from = batch * setup.batch;
    const rows = Math.min(setup.batch, setup.data.trainCount - from);
    loadBatch(ctx, slot, "train", order, from, rows);
    const read = new Int32Array(memory.buffer, slot.versionRead, net.layers.length);
    for (let m = 0; m < net.layers.length; m++) {
      read[m] = Atomics.load(versions, m);
      net.forwardLayer(k, m, params, slot.ws, rows);
      yield* sync.point();
    }
    totals.lossSum += net.lossAndGradient(k, slot.ws, rows, 1 / rows);
    totals.samples += rows;
    control.workerLoss[ctx.worker] = totals.lossSum;
    control.add(WORD.samplesDone, rows);
    new Int32Array(memory.buffer, slot.rows, 1)[0] = rows;
    yield* ready.push(item);
  }
}

function* backwardThread(
  ctx: RoleContext,
  layout: LayerwiseLayout,
  replica: number,
  lo: number,
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
    if (claim(words, pipe.backwardTicket >> 2, lo, hi) === null) return;
    const { item, ticket: turn } = yield* ready.pop();
    const slot = pipe.slots[item]!;
    const rows = new Int32Array(memory.buffer, slot.rows, 1)[0]!;
    const read = new Int32Array(memory.buffer, slot.versionRead, net.layers.length);
    for (let m = net.layers.length - 1; m >= firstTrainable; m--) {
      net.backwardLayer(k, m, params, grads, slot.ws, rows, false);
      if (net.params[m]!.floats > 0) {
        recorder.produced(m);
        // Wait for the batches taken before this one to have updated layer m.
        for (let seen = Atomics.load(words, turnWord(m) >> 2); seen !== turn; seen = Atomics.load(words, turnWord(m) >> 2)) {
          yield* sync.waitChange(turnWord(m), seen, `layer ${m}'s turn`);
        }
        applyLayerUpdate(ctx, layout.replicas, replica, m, grads, read[m]!, recorder);
        sync.wake(turnWord(m));
      }
      yield* sync.point();
    }
    totals.updates++;
    yield* free.push(item);
  }
}

