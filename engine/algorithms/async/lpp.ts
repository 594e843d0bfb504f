/**
 * LPP-SGD, locally-partitioned-asynchronous parallel SGD (Chatterjee, Kungurtsev, Alistarh, "Scaling
 * the Wild", arXiv 2203.06638): LAP-SGD whose workers, after a warm-up, alternate full Hogwild! steps
 * with partial steps that backpropagate only down to, and update only, the worker's own chunk of the
 * parameter list: contiguous chunks of about equal size, one per worker of a group.
 *
 *   worker w (rank q in group r), in round i of the epoch:
 *     if epoch ≥ warm-up and i is odd:  partial step on replica r: backward down to chunk q, update chunk q
 *     else:                              full Hogwild! step on replica r
 *     every K rounds, and at the end of the epoch (R > 1): barrier; average the replicas; barrier
 *
 * The paper's code warms up for 30 epochs of CIFAR training; `--lpp-warmup` sets it here.
 */
import type { Network } from "../../model/network.ts";
import type { Algorithm } from "../algorithm.ts";
import { asyncOptionsOf } from "../config.ts";
import { HogwildWorker, localAsyncBatches, planLocalAsync, type LocalAsyncLayout } from "./hogwild-step.ts";
import { averages, checkGroups } from "./lap.ts";

export interface LppLayout extends LocalAsyncLayout {
  /** Epochs of full steps before partial steps start. */
  warmup: number;
  /** Per rank within a group, the layers of its chunk [first, last] (first = −1: no chunk). */
  chunks: { first: number; last: number }[];
}

export const lpp: Algorithm<LppLayout> = {
  name: "lpp",
  family: "async",
  about: "lap, and after --lpp-warmup epochs partial steps on each worker's chunk of layers",
  paper: "Chatterjee, Kungurtsev, Alistarh: Scaling the Wild (arXiv 2203.06638)",
  flags: ["replicas", "avg-every", "lpp-warmup", "staleness-lr", "dc-lambda"],
  programs: (config) => config.workers,
  stepsPerEpoch: (config, trainCount) => localAsyncBatches(trainCount, config.batch),
  check: checkGroups,
  plan(input) {
    const o = asyncOptionsOf(input.config);
    const plan = planLocalAsync(input, o.replicas);
    return { ...plan, layout: { ...plan.layout, warmup: o.lppWarmup, chunks: lppChunks(input.net, input.programs / o.replicas) } };
  },
  *epoch(ctx, epoch) {
    const me = new HogwildWorker(ctx, epoch);
    const { chunks, warmup, avgEvery } = ctx.setup.layout;
    const chunk = chunks[me.rank]!;
    const partialSteps = epoch >= warmup && chunk.first >= 0;
    for (let round = 0; round < me.rounds; round++) {
      const batch = me.batchOf(round);
      if (batch !== null) {
        if (partialSteps && round % 2 === 1) yield* me.step(batch, chunk.first, chunk.last, "backward (partial)");
        else yield* me.step(batch);
      }
      if (averages(ctx.setup.layout, round, me.rounds, avgEvery)) yield* me.averageReplicas();
    }
    return me.result();
  },
};

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
