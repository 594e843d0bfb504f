/**
 * Hogwild! (Niu, Recht, Ré, Wright, NeurIPS 2011): workers share one parameter vector; each reads it
 * without locks, computes a minibatch gradient and writes its update without locks.
 *
 *   every worker w, for each batch b ≡ w (mod N) of the epoch:
 *     forward on the shared weights as they are now, noting each layer's version
 *     backward; apply each layer's gradient to the shared weights in place
 *
 * With one worker this is plain minibatch SGD.
 */
import type { Algorithm } from "../algorithm.ts";
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
  *epoch(ctx, epoch) {
    const me = new HogwildWorker(ctx, epoch);
    for (let round = 0; round < me.rounds; round++) {
      const batch = me.batchOf(round);
      if (batch !== null) yield* me.step(batch);
    }
    return me.result();
  },
};
