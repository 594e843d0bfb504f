/**
 * The Hogwild! step and what the local-asynchronous family (hogwild, lap, lpp) shares around it: N
 * workers in R groups, group r training replica r in place without locks (replicas.ts says what the
 * races do). With averaging rounds (lap, lpp with more than one replica) batches are dealt round-robin
 * so every worker does the same number of steps up to one and the rounds line up; with one replica
 * workers claim the next batch (claimBatch).
 *
 *   step(batch), on the worker's replica:
 *     forward as the weights are now (no lock), noting each layer's version
 *     backward from the loss down to `lowest` (a full step: the first trainable layer)
 *     apply each layer's gradient in place (no lock), counting its staleness
 */
import type { Ptr } from "../../kernels/abi.ts";
import { epochOrderOf } from "../../runtime/epoch-order.ts";
import { loadBatch, planWorkerBuffers, type RoleContext, type WorkerBuffers } from "../../runtime/context.ts";
import type { Blocked, RoleProgram } from "../../runtime/sync.ts";
import { claimBlock } from "../../runtime/claim.ts";
import { WORD } from "../../runtime/control.ts";
import { mark, span } from "../../runtime/trace.ts";
import type { AlgorithmPlan, EpochResult, PlanInput } from "../algorithm.ts";
import { asyncOptionsOf } from "../config.ts";
import { applyLayerUpdate, averageReplicasSlice, copyReplica0, planReplicas, replicaCounters, restoreReplicaCounters, versionsView, type ReplicaLayout } from "./replicas.ts";
import { StalenessRecorder } from "./staleness.ts";

export interface LocalAsyncLayout {
  replicas: ReplicaLayout;
  /** Per worker: its gradient vector. */
  grads: Ptr[];
  /** lap, lpp: average the replicas every this many rounds. */
  avgEvery: number;
  /** DC-ASGD: per worker, the weights each layer had when its forward read them (0 when λ = 0). */
  readWeights: Ptr[];
}

/** R replicas (each with its optimizer state and layer versions) and one gradient vector per worker. */
export function planLocalAsync(input: PlanInput, R: number): AlgorithmPlan<LocalAsyncLayout> {
  const { planner, net, programs } = input;
  const o = asyncOptionsOf(input.config);
  const replicas = planReplicas(planner, net, R, programs, input.optimizer, input.audit, o);
  const layers = net.layers.length;
  return {
    layout: {
      replicas,
      grads: Array.from({ length: programs }, (_, w) => planner.floats("gradients", `worker${w}.grads`, net.paramFloats)),
      avgEvery: o.avgEvery,
      readWeights: Array.from({ length: programs }, (_, w) => (o.dcLambda > 0 ? planner.floats("scratch", `worker${w}.readWeights`, net.paramFloats) : 0)),
    },
    params: replicas.params[0]!,
    optimizerState: replicas.state.flat(),
    perWorker: Array.from({ length: programs }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, input.batch)),
    prepare: (memory) => copyReplica0(memory, replicas, net.paramFloats),
    counters: (memory) => replicaCounters(memory, replicas, layers),
    restoreCounters: (memory, counters) => restoreReplicaCounters(memory, replicas, layers, counters),
    ledger: (r) => replicas.ledger[r] ?? 0,
  };
}

/** Batches per epoch: the training split in batches of `--batch`, the last one partial. */
export function localAsyncBatches(trainCount: number, batch: number): number {
  return Math.ceil(trainCount / batch);
}

/** DC-ASGD: copy layer m's weights, as the forward is about to read them, into `into` (laid out like the parameters). */
export function keepWeights(ctx: RoleContext, m: number, into: Ptr, params: Ptr): void {
  const region = ctx.net.params[m]!;
  if (region.floats > 0) ctx.k.copy(into + region.offset * 4, params + region.offset * 4, region.floats);
}

/** One worker of a local-asynchronous run, for one epoch: its replica, buffers and tallies. */
export class HogwildWorker {
  readonly replica: number;
  /** This worker's rank within its replica's group. */
  readonly rank: number;
  /** Rounds of the epoch: in round i, worker w trains batch i·N + w (if it exists). */
  readonly rounds: number;
  private readonly steps: number;
  private readonly order: Uint32Array;
  private readonly buffers: WorkerBuffers;
  private readonly versionRead: Int32Array;
  private readonly recorder: StalenessRecorder;
  private readonly started = performance.now();
  private readonly waitedBefore: number;
  private lossSum = 0;
  private samples = 0;
  private updates = 0;

  constructor(
    private readonly ctx: RoleContext<LocalAsyncLayout>,
    epoch: number,
  ) {
    const { setup, worker, net } = ctx;
    const N = setup.programs;
    const R = setup.layout.replicas.params.length;
    this.replica = Math.floor(worker / (N / R));
    this.rank = worker % (N / R);
    this.steps = localAsyncBatches(setup.data.trainCount, setup.batch);
    this.rounds = Math.ceil(this.steps / N);
    this.order = epochOrderOf(ctx, epoch);
    this.buffers = setup.perWorker[worker]!;
    this.versionRead = new Int32Array(net.layers.length);
    this.recorder = new StalenessRecorder(net.trainableLayers);
    this.waitedBefore = ctx.sync.waitedMs;
  }

  /** The batch this worker trains in `round`, or null when the epoch has none left for it. */
  batchOf(round: number): number | null {
    const batch = round * this.ctx.setup.programs + this.ctx.worker;
    return batch < this.steps ? batch : null;
  }

  /**
   * Without rounds to keep in line (one replica): the next batch of the epoch nobody has taken yet, or
   * -1 when all are taken. Dealt round-robin, a worker the machine slows (another process on its core)
   * would leave its peers idle at the end of every epoch while it finishes its share; claimed, it
   * simply trains fewer batches. Hogwild!'s workers race on the weights anyway, so who trains which
   * batch is one more thing thread timing decides, never the batches an epoch visits (each exactly
   * once); with one worker the order is 0, 1, 2, … as before. The session rewinds the counter before
   * every epoch.
   */
  *claimBatch(): Generator<Blocked, number, void> {
    return yield* claimBlock(this.ctx.sync, this.ctx.control, WORD.claimNext, this.steps);
  }

  /**
   * One Hogwild! step on `batch`: backpropagate down to layer `lowest` and update the layers in
   * [lowest, highest] (a full step: every trainable layer).
   */
  *step(batch: number, lowest = this.ctx.net.trainableLayers[0] ?? this.ctx.net.layers.length, highest = this.ctx.net.layers.length - 1, label = "backward"): RoleProgram<void> {
    const { ctx, buffers, versionRead, recorder } = this;
    const { k, net, setup, worker, sync, control, memory } = ctx;
    const layout = setup.layout;
    const params = layout.replicas.params[this.replica]!;
    const grads = layout.grads[worker]!;
    const readWeights = layout.readWeights[worker]!;
    const versions = versionsView(memory, layout.replicas, this.replica, net.layers.length);
    const from = batch * setup.batch;
    const rows = Math.min(setup.batch, setup.data.trainCount - from);
    loadBatch(ctx, buffers, "train", this.order, from, rows);

    let t = mark(ctx.trace);
    for (let m = 0; m < net.layers.length; m++) {
      versionRead[m] = Atomics.load(versions, m);
      if (readWeights !== 0) keepWeights(ctx, m, readWeights, params);
      net.forwardLayer(k, m, params, buffers.ws, rows);
      yield* sync.point();
    }
    this.lossSum += net.lossAndGradient(k, buffers.ws, rows, 1 / rows);
    this.samples += rows;
    span(ctx.trace, "forward", t);
    t = mark(ctx.trace);
    for (let m = net.layers.length - 1; m >= lowest; m--) {
      net.backwardLayer(k, m, params, grads, buffers.ws, rows, false);
      yield* sync.point();
    }
    span(ctx.trace, label, t);
    t = mark(ctx.trace);
    for (let m = net.layers.length - 1; m >= lowest; m--) {
      if (net.params[m]!.floats === 0 || m > highest) continue;
      recorder.produced(m);
      applyLayerUpdate(ctx, layout.replicas, this.replica, m, grads, versionRead[m]!, recorder, readWeights);
      yield* sync.point();
    }
    span(ctx.trace, "update", t);
    this.updates++;
    control.report(worker, this.lossSum, rows);
  }

  /** Average the replicas: every worker averages its slice, between two barriers. */
  *averageReplicas(): RoleProgram<void> {
    const { ctx } = this;
    yield* ctx.sync.barrier(); // every replica has finished its batches of this round
    const t = mark(ctx.trace);
    averageReplicasSlice(ctx, ctx.setup.layout.replicas, ctx.worker, ctx.setup.programs);
    span(ctx.trace, "average replicas", t);
    yield* ctx.sync.barrier(); // the average is complete before anyone trains on it
  }

  result(): EpochResult {
    const staleness = this.recorder.report();
    return {
      lossSum: this.lossSum,
      samples: this.samples,
      updates: this.updates,
      layerUpdates: staleness.layers.reduce((a, l) => a + l.applied, 0),
      waitedMs: this.ctx.sync.waitedMs - this.waitedBefore,
      elapsedMs: performance.now() - this.started,
      staleness,
    };
  }
}

