/** What the simulated executor's two test files share: a small synchronous run to vary. */
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";

export const simulatedBase: TrainConfig = {
  algo: "sync",
  model: "mlp:784-24-16-10",
  data: "synthetic:256",
  epochs: 1,
  batch: 32,
  workers: 1,
  executor: "simulated",
  seed: 3,
  optimizer: defaultOptimizer("momentum"),
};
