/**
 * resnet:8 end to end: it learns well above chance under both executors, deterministic runs are
 * bitwise reproducible, resuming equals not stopping, and every algorithm family trains it with the
 * batch-norm policy holding (the running statistics in the final weights were updated by training
 * forwards, whichever copy of the weights those forwards ran on).
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { openResume, train, type TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

setDefaultTimeout(240_000);

const base: TrainConfig = {
  algo: "sync",
  model: "resnet:8",
  data: "synthetic:384",
  epochs: 1,
  batch: 16,
  workers: 2,
  executor: "deterministic",
  seed: 3,
  optimizer: defaultOptimizer("adam"),
};

/** For every batch norm in the final weights: did its running mean and variance leave their initial 0 and 1? */
function runningStatisticsMoved(params: Float32Array, shape: number[] = [1, 28, 28]): boolean[] {
  const net = new Network("resnet:8", shape, 10);
  return net.params.flatMap((l) => l.tensors).filter((t) => /running_(mean|var)$/.test(t.name)).map((t) => {
    const init = t.name.endsWith("mean") ? 0 : 1;
    return Array.from(params.subarray(t.offset, t.offset + t.floats)).some((v) => v !== init);
  });
}

describe("resnet:8 training", () => {
  for (const executor of ["threads", "deterministic"] as const) {
    test(`sync on 2 workers (${executor} executor) learns far above chance, evaluating with running statistics`, async () => {
      const { summary, params } = await trainAndRead({ ...base, executor, epochs: 2 });
      expect(summary.testAccuracy).toBeGreaterThan(0.5); // 10 classes: chance is 0.1
      expect(summary.testLoss).toBeLessThan(Math.log(10) - 0.5);
      expect(runningStatisticsMoved(params).every(Boolean)).toBe(true);
    });
  }

  test("deterministic runs are bitwise reproducible; another seed differs", async () => {
    const a = await trainAndRead(base);
    const b = await trainAndRead(base);
    const c = await trainAndRead({ ...base, seed: 4 });
    expect(sameBits(a.params, b.params)).toBe(true);
    expect(sameBits(a.params, c.params)).toBe(false);
    expect(a.summary.testLoss).toBe(b.summary.testLoss);
  });

  test("resume continues to the same weights and running statistics as an uninterrupted run", async () => {
    const config = { ...base, epochs: 2 };
    const straight = await trainAndRead(config);
    const dir = mkdtempSync(join(tmpdir(), "skein-resnet-"));
    await train({ ...config, epochs: 1 }, { out: dir });
    const resumed = await trainAndRead(config, { out: dir, resume: await openResume(dir) });
    expect(sameBits(straight.params, resumed.params)).toBe(true);
    expect(resumed.summary.testLoss).toBe(straight.summary.testLoss);
  });

  // One short run per algorithm under the deterministic executor. Gossip runs 2 nodes with momentum
  // (its own update rules); pipelines cut resnet:8 into 3 stages between blocks.
  const momentum = { ...defaultOptimizer("momentum"), lr: 0.05 };
  const families: [string, Partial<TrainConfig>][] = [
    ["hogwild", { algo: "hogwild" }],
    ["lap", { algo: "lap", async: { replicas: 2, avgEvery: 2 } }],
    ["lpp", { algo: "lpp", async: { replicas: 1, lppWarmup: 0 } }],
    ["layerwise", { algo: "layerwise", workers: 1, async: { fwdThreads: 1, bwdThreads: 1, queue: 2 } }],
    ...(["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"] as const).map((algo): [string, Partial<TrainConfig>] => [algo, { algo, pipeline: { stages: 3, microbatches: 2 } }]),
    ...(["pmsgd", "dsgd", "dmsgd", "decentlam"] as const).map((algo): [string, Partial<TrainConfig>] => [algo, { algo, optimizer: momentum, gossip: { nodes: 2 } }]),
  ];
  test.each(families)("%s trains resnet:8 and keeps batch norm's running statistics current", async (algo, overrides) => {
    const { summary, params } = await trainAndRead({ ...base, data: "synthetic:256", ...overrides });
    expect(Number.isFinite(summary.testLoss)).toBe(true);
    expect(summary.testLoss).toBeLessThan(Math.log(10) + 0.3); // not diverged (one short epoch)
    expect(runningStatisticsMoved(params)).toEqual(Array(runningStatisticsMoved(params).length).fill(true));
    if (!algo.match(/sgd|decentlam/)) expect(summary.testAccuracy).toBeGreaterThan(0.15);
  });
});
