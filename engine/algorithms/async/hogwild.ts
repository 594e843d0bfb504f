/**
 * Hogwild! (Niu, Recht, Ré, Wright, NeurIPS 2011): workers share one parameter vector; each reads it
 * without locks, computes a minibatch gradient and writes its update without locks.
 *
 *   every worker, until every batch of the epoch is taken: take the next batch b
 *     forward on the shared weights as they are now, noting each layer's version
 *     backward; apply each layer's gradient to the shared weights in place
 *
 * With one worker this is plain minibatch SGD.
 */
import type { Algorithm, EpochResult } from "../algorithm.ts";
import type { RoleContext } from "../../runtime/context.ts";
import type { RoleProgram } from "../../runtime/sync.ts";
import { HogwildWorker, localAsyncBatches, planLocalAsync, type LocalAsyncLayout } from "./hogwild-step.ts";

export const hogwild: Algorithm<LocalAsyncLayout> = {
  name: "hogwild",
  family: "async",
  about: "lock-free shared weights, every worker updating in place",
  paper: "Niu, Recht, Ré, Wright: Hogwild! (NeurIPS 2011)",
  flags: ["staleness-lr", "dc-lambda"],
  programs: (config) => config.workers,
  stepsPerEpoch: (config, trainCount) => localAsyncBatches(trainCount, config.batch),
  plan: (input) => planLocalAsync(input, 1),
  epoch: hogwildEpoch,
};

/** One worker's epoch: claim the next batch nobody has taken, train it in place, until none is left. */
export function* hogwildEpoch(ctx: RoleContext<LocalAsyncLayout>, epoch: number): RoleProgram<EpochResult> {
  const me = new HogwildWorker(ctx, epoch);
  for (let batch = yield* me.claimBatch(); batch >= 0; batch = yield* me.claimBatch()) yield* me.step(batch);
  return me.result();
}
