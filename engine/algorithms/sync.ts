/**
 * Synchronous data-parallel SGD: the all-reduce / PmSGD baseline every other algorithm is compared to.
 *
 *   for each step:
 *     every worker w: g_w = ∇ loss on its shard of the batch, scaled by 1/|batch|
 *     barrier
 *     all-reduce, split as reduce-scatter: worker w owns slice w of the flat parameter vector; it sums
 *       g_0 + … + g_{N−1} over its slice (into gradSum) and applies the optimizer to that slice only
 *     barrier
 *
 * With N = 1 this is plain minibatch SGD. The sum runs in worker order on every slice, so the result
 * does not depend on which thread finished first: same seed and config → bitwise the same weights.
 */
import type { Ptr } from "../kernels/abi.ts";
import { applyUpdate, planOptimizerState, updateRegion } from "../optim/optimizer.ts";
import { writeWeightedSumArgs, type WeightedSumArgs } from "../kernels/weighted-sum.ts";
import { WORD } from "../runtime/control.ts";
import { loadBatch, planWorkerBuffers, type RoleContext } from "../runtime/context.ts";
import type { Algorithm, AlgorithmPlan, EpochResult, PlanInput } from "./algorithm.ts";
import type { RoleProgram } from "../runtime/sync.ts";
import { alignedSliceOf, shardOf } from "../runtime/split.ts";
import { mark, span } from "../runtime/trace.ts";
import { epochOrder } from "../data/order.ts";

export interface SyncLayout {
  grads: Ptr[]; // one gradient vector per worker
  /**
   * The summed gradient. Slice w is written and read only by worker w: summing into grads[0] instead
   * would make every worker dirty part of worker 0's vector each step, and worker 0's next backward
   * would pull those cache lines back across cores.
   */
  gradSum: Ptr;
  /** Per worker: i32[N] pointers to the N gradient slices it sums, f32[N] weights (all 1). */
  reduceArgs: WeightedSumArgs[];
  slices: { lo: number; hi: number }[]; // float ranges of the flat vector each worker reduces and updates
}

export const sync: Algorithm<SyncLayout> = {
  name: "sync",
  family: "sync",
  about: "synchronous data-parallel SGD: gradients all-reduced every step",
  paper: "minibatch SGD with an all-reduce (the baseline every other algorithm is compared to)",
  flags: [],
  programs: (config) => config.workers,
  stepsPerEpoch: (config, trainCount) => stepsPerEpoch(trainCount, config.batch),
  plan: planSync,
  epoch: syncWorkerEpoch,
};

function planSync(input: PlanInput): AlgorithmPlan<SyncLayout> {
  const { planner, net, programs: workers } = input;
  const params = planner.floats("parameters", "params", net.paramFloats);
  const optimizerState = planOptimizerState(planner, net.paramFloats, input.optimizer.kind);
  const grads = Array.from({ length: workers }, (_, w) => planner.floats("gradients", `worker${w}.grads`, net.paramFloats));
  // One worker needs no sum: its gradient is the batch gradient.
  const gradSum = workers > 1 ? planner.floats("gradients", "gradSum", net.paramFloats) : grads[0]!;
  const reduceArgs = Array.from({ length: workers }, (_, w) => ({
    tensors: planner.reserve("control", `worker${w}.reduce.tensors`, workers * 4),
    weights: planner.reserve("control", `worker${w}.reduce.weights`, workers * 4),
  }));
  const slices = Array.from({ length: workers }, (_, w) => alignedSliceOf(net.paramFloats, workers, w));
  const layout: SyncLayout = { grads, gradSum, reduceArgs, slices };
  const rows = Math.ceil(input.batch / workers);
  return {
    layout,
    params,
    optimizerState,
    perWorker: Array.from({ length: workers }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, rows)),
  };
}

export function stepsPerEpoch(trainCount: number, batch: number): number {
  return Math.ceil(trainCount / batch);
}

/** One epoch of one worker; Adam's step count continues from the epochs before it. */
function* syncWorkerEpoch(ctx: RoleContext<SyncLayout>, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker, sync, control } = ctx;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const layout = setup.layout;
  const N = setup.workers;
  const mine = setup.perWorker[worker]!;
  const myGrads = layout.grads[worker]!;
  const { lo, hi } = layout.slices[worker]!;
  // The table of slice `lo` of every worker's gradient, written once: each step reuses it.
  writeWeightedSumArgs(ctx.memory, layout.reduceArgs[worker]!, layout.grads, 1, lo);

  const { trainCount } = setup.data;
  const order = epochOrder(trainCount, setup.seed, epoch);
  const steps = stepsPerEpoch(trainCount, setup.batch);
  const stepsBefore = epoch * steps;
  let lossSum = 0;
  let samples = 0;

  for (let step = 0; step < steps; step++) {
    const batchStart = step * setup.batch;
    const batchRows = Math.min(setup.batch, trainCount - batchStart);
    const shard = shardOf(batchRows, N, worker);
    const rows = shard.hi - shard.lo;
    const t0 = mark(ctx.trace);
    if (rows > 0) {
      loadBatch(ctx, mine, "train", order, batchStart + shard.lo, rows);
      const loss = net.gradient(k, setup.params, myGrads, mine.ws, rows, 1 / batchRows);
      lossSum += loss;
      samples += rows;
      control.workerLoss[worker] = lossSum;
      control.add(WORD.samplesDone, rows);
    } else {
      k.fill_zero(myGrads, net.paramFloats); // a tiny last batch may leave a worker without rows
    }
    span(ctx.trace, "forward+backward", t0);
    yield* sync.barrier(); // every shard's gradient is in place

    const t1 = mark(ctx.trace);
    sync.allReduce(net.parameterCount * 4, N); // what the reduction costs between nodes of a cluster
    if (hi > lo) {
      const { tensors, weights } = layout.reduceArgs[worker]!;
      if (N > 1) k.weighted_sum(layout.gradSum + lo * 4, tensors, weights, N, hi - lo);
      applyUpdate(k, setup.optimizer, updateRegion(setup.params, layout.gradSum, setup.optimizerState, lo, hi - lo), stepsBefore + step + 1);
    }
    span(ctx.trace, "reduce+update", t1);
    yield* sync.barrier(); // the whole vector is updated before anyone reads it again
  }
  // Every worker takes part in every step; worker 0 speaks for the step count.
  const updates = worker === 0 ? steps : 0;
  return {
    lossSum,
    samples,
    updates,
    layerUpdates: updates * net.trainableLayers.length,
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
  };
}


