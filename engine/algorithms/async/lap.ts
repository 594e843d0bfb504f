/**
 * LAP-SGD, locally-asynchronous parallel SGD (Chatterjee, Kungurtsev, Alistarh, "Scaling the Wild",
 * arXiv 2203.06638): R replicas, one per device in the paper, each trained by its own group of
 * Hogwild! workers; the replicas are averaged every K batches of each worker.
 *
 *   worker w of group r, in round i of the epoch:
 *     Hogwild! step on replica r with batch i·N + w
 *     every K rounds, and at the end of the epoch (R > 1):
 *       barrier; average the replicas (each worker its slice); barrier
 *
 * With R = 1 this is Hogwild!.
 */
import { UserError } from "../../errors.ts";
import type { Algorithm } from "../algorithm.ts";
import { asyncOptionsOf, type TrainConfig } from "../config.ts";
import { HogwildWorker, localAsyncBatches, planLocalAsync, type LocalAsyncLayout } from "./hogwild-step.ts";
import { hogwildEpoch } from "./hogwild.ts";

export const lap: Algorithm<LocalAsyncLayout> = {
  name: "lap",
  family: "async",
  about: "replicas, each trained by a Hogwild! group, averaged every --avg-every batches",
  paper: "Chatterjee, Kungurtsev, Alistarh: Scaling the Wild (arXiv 2203.06638)",
  flags: ["replicas", "avg-every", "staleness-lr", "dc-lambda"],
  programs: (config) => config.workers,
  stepsPerEpoch: (config, trainCount) => localAsyncBatches(trainCount, config.batch),
  check: checkGroups,
  plan: (input) => planLocalAsync(input, asyncOptionsOf(input.config).replicas),
  *epoch(ctx, epoch) {
    // One replica: no averaging rounds, so this is Hogwild!, batches claimed as it claims them.
    if (ctx.setup.layout.replicas.params.length === 1) return yield* hogwildEpoch(ctx, epoch);
    const me = new HogwildWorker(ctx, epoch);
    const K = ctx.setup.layout.avgEvery;
    for (let round = 0; round < me.rounds; round++) {
      const batch = me.batchOf(round);
      if (batch !== null) yield* me.step(batch);
      if (averages(ctx.setup.layout, round, me.rounds, K)) yield* me.averageReplicas();
    }
    return me.result();
  },
};

/** Every replica needs the same number of workers. */
export function checkGroups(config: TrainConfig): void {
  const { replicas } = asyncOptionsOf(config);
  if (config.workers % replicas !== 0) {
    throw new UserError(`--workers ${config.workers} is not a multiple of --replicas ${replicas}: every replica needs the same number of workers`);
  }
}

/** Average after round `round`: every K rounds and at the end of the epoch, when there is more than one replica. */
export function averages(layout: LocalAsyncLayout, round: number, rounds: number, K: number): boolean {
  return layout.replicas.params.length > 1 && ((round + 1) % K === 0 || round === rounds - 1);
}
