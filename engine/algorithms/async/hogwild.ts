/**
 * Hogwild! (Niu, Recht, Ré, Wright 2011) and its locally-asynchronous generalisations LAP-SGD and
 * LPP-SGD (Chatterjee, Kungurtsev, Alistarh, "Scaling the Wild", arXiv 2203.06638).
 *
 *   N workers in R groups; group r trains replica r, its workers Hogwild!-style:
 *   each worker, for each of its batches:
 *     forward on replica r as it is now (no lock), noting each layer's version
 *     backward: gradient of every layer (lpp, partial step: only down to its own chunk)
 *     apply each layer's gradient to replica r in place (no lock)
 *     every K of its batches, and at the end of the epoch (R > 1 only):
 *       barrier; average the replicas; barrier
 *
 *   hogwild = R = 1 (no averaging, no barrier at all)
 *   lap     = R ≥ 1 replicas averaged every K batches
 *   lpp     = lap, and after `lppWarmup` epochs each worker alternates full steps with partial steps
 *             that backpropagate to, and update, only its chunk: the parameter list split into
 *             contiguous chunks of about equal size, one per worker of a group.
 *
 * Batches are dealt round-robin (batch b to worker b mod N), so every worker does the same number
 * of steps up to one, and averaging rounds line up.
 */
import type { Network } from "../../model/network.ts";
import { epochOrder } from "../../data/order.ts";
import { loadBatch, planWorkerBuffers, type RoleContext } from "../../runtime/context.ts";
import { WORD } from "../../runtime/control.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import type { AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { applyLayerUpdate, averageReplicasSlice, copyReplica0, planReplicas, versionsView, type ReplicaLayout } from "./replicas.ts";
import { StalenessRecorder } from "./staleness.ts";
import { mark, span } from "../../runtime/trace.ts";

export type LocalAsyncKind = "hogwild" | "lap" | "lpp";

export interface HogwildLayout {
  kind: LocalAsyncKind;
  replicas: ReplicaLayout;
  grads: number[]; // per worker
  avgEvery: number;
  lppWarmup: number;
  /** lpp: per rank within a group, the layers of its chunk [first, last]. */
  chunks: { first: number; last: number }[];
}

export function planHogwild(kind: LocalAsyncKind, input: PlanInput, audit = false): AlgorithmPlan {
  const { planner, net, programs, async: opts } = input;
  const R = kind === "hogwild" ? 1 : opts.replicas;
  const replicas = planReplicas(planner, net, R, programs, input.optimizer, audit);
  const layout: HogwildLayout = {
    kind,
    replicas,
    grads: Array.from({ length: programs }, (_, w) => planner.floats("gradients", `worker${w}.grads`, net.paramFloats)),
    avgEvery: opts.avgEvery,
    lppWarmup: opts.lppWarmup,
    chunks: lppChunks(net, programs / R),
  };
  return {
    layout,
    params: replicas.params[0]!,
    optimizerState: replicas.state.flat(),
    perWorker: Array.from({ length: programs }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, input.batch)),
    epochRole: "hogwild.epoch",
    prepare: (memory) => copyReplica0(memory, replicas, net.paramFloats),
    counters: (memory) => replicas.versions.flatMap((_, r) => [...versionsView(memory, replicas, r, net.layers.length)]),
    restoreCounters: (memory, counters) => replicas.versions.forEach((_, r) => versionsView(memory, replicas, r, net.layers.length).set(counters.slice(r * net.layers.length, (r + 1) * net.layers.length))),
  };
}

/**
 * Contiguous chunks of trainable layers, one per rank, of about equal size (greedy: close a chunk once
 * it reaches its fair share). A rank left without a layer (more workers than layers) takes full steps.
 */
export function lppChunks(net: Network, ranks: number): { first: number; last: number }[] {
  const trainable = net.trainableLayers;
  const total = trainable.reduce((a, l) => a + net.params[l]!.floats, 0);
  const chunks: { first: number; last: number }[] = [];
  let start = 0;
  let acc = 0;
  for (let i = 0; i < trainable.length; i++) {
    acc += net.params[trainable[i]!]!.floats;
    const remainingRanks = ranks - chunks.length;
    const remainingLayers = trainable.length - i - 1;
    if (remainingRanks > 1 && (acc >= (total * (chunks.length + 1)) / ranks || remainingLayers <= remainingRanks - 1)) {
      chunks.push({ first: trainable[start]!, last: trainable[i]! });
      start = i + 1;
    }
  }
  if (start < trainable.length) chunks.push({ first: trainable[start]!, last: trainable[trainable.length - 1]! });
  while (chunks.length < ranks) chunks.push({ first: -1, last: -1 });
  return chunks;
}

export function* hogwildWorkerEpoch(ctx: RoleContext, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker, sync, control, memory } = ctx;
  const layout = setup.layout as HogwildLayout;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const N = setup.workers;
  const R = layout.replicas.params.length;
  const group = N / R;
  const replica = Math.floor(worker / group);
  const rank = worker % group;
  const params = layout.replicas.params[replica]!;
  const grads = layout.grads[worker]!;
  const mine = setup.perWorker[worker]!;
  const versions = versionsView(memory, layout.replicas, replica, net.layers.length);
  const versionRead = new Int32Array(net.layers.length);
  const recorder = new StalenessRecorder(net.trainableLayers);
  const chunk = layout.chunks[rank]!;
  const partialSteps = layout.kind === "lpp" && epoch >= layout.lppWarmup && chunk.first >= 0;

  const { trainCount } = setup.data;
  const order = epochOrder(trainCount, setup.seed, epoch);
  const steps = Math.ceil(trainCount / setup.batch);
  const rounds = Math.ceil(steps / N);
  let lossSum = 0;
  let samples = 0;
  let updates = 0;

  for (let round = 0; round < rounds; round++) {
    const batch = round * N + worker;
    if (batch < steps) {
      const from = batch * setup.batch;
      const rows = Math.min(setup.batch, trainCount - from);
      loadBatch(ctx, mine, "train", order, from, rows);
      const partial = partialSteps && round % 2 === 1;
      const lowest = partial ? chunk.first : (net.trainableLayers[0] ?? net.layers.length);

      let t = mark(ctx.trace);
      for (let m = 0; m < net.layers.length; m++) {
        versionRead[m] = Atomics.load(versions, m);
        net.forwardLayer(k, m, params, mine.ws, rows);
        yield* sync.point();
      }
      lossSum += net.lossAndGradient(k, mine.ws, rows, 1 / rows);
      samples += rows;
      span(ctx.trace, "forward", t);
      t = mark(ctx.trace);
      for (let m = net.layers.length - 1; m >= lowest; m--) {
        net.backwardLayer(k, m, params, grads, mine.ws, rows, false);
        yield* sync.point();
      }
      span(ctx.trace, partial ? "backward (partial)" : "backward", t);
      t = mark(ctx.trace);
      for (let m = net.layers.length - 1; m >= lowest; m--) {
        if (net.params[m]!.floats === 0 || (partial && m > chunk.last)) continue;
        recorder.produced(m);
        applyLayerUpdate(ctx, layout.replicas, replica, m, grads, versionRead[m]!, recorder);
        yield* sync.point();
      }
      span(ctx.trace, "update", t);
      updates++;
      control.workerLoss[worker] = lossSum;
      control.add(WORD.samplesDone, rows);
    }
    const lastRound = round === rounds - 1;
    if (R > 1 && ((round + 1) % layout.avgEvery === 0 || lastRound)) {
      yield* sync.barrier(); // every replica has finished its batches of this round
      const t = mark(ctx.trace);
      averageReplicasSlice(ctx, layout.replicas, worker, N);
      span(ctx.trace, "average replicas", t);
      yield* sync.barrier(); // the average is complete before anyone trains on it
    }
  }
  const staleness = recorder.report();
  return {
    lossSum,
    samples,
    updates,
    layerUpdates: staleness.layers.reduce((a, l) => a + l.applied, 0),
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
    staleness,
  };
}
