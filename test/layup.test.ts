/**
 * LayUp-style decentralized layer-wise training (engine/algorithms/async/layup.ts): layerwise
 * replicas as gossip nodes that mix each layer with their neighbours after every update.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const base: TrainConfig = {
  algo: "layup",
  model: "mlp:784-24-16-10",
  data: "synthetic:320",
  epochs: 2,
  batch: 16,
  workers: 1,
  executor: "deterministic",
  seed: 3,
  optimizer: defaultOptimizer("momentum"),
  async: { replicas: 1, fwdThreads: 1, bwdThreads: 1, queue: 2 },
};

describe("layup", () => {
  test("one node is layerwise, bitwise, for any interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1e9 }), async (schedulerSeed) => {
        const layup = await trainAndRead(base, { schedulerSeed });
        const layerwise = await trainAndRead({ ...base, algo: "layerwise" }, { schedulerSeed });
        expect(sameBits(layup.params, layerwise.params)).toBe(true);
      }),
      { numRuns: 4 },
    );
  });

  test("gossip holds the nodes together: a denser graph, a smaller consensus distance", async () => {
    const eight = { ...base, async: { ...base.async, replicas: 8 } };
    const ring = await trainAndRead({ ...eight, gossip: { topology: "ring" } });
    const full = await trainAndRead({ ...eight, gossip: { topology: "full" } });
    // Every node trains other batches, so they disagree; each layer update mixes them back, the
    // complete graph in one step, the 8-ring only over several (measured: 0.017 vs 0.0011).
    expect(full.summary.workers).toBe(16); // 8 nodes × (1 forward + 1 backward thread)
    expect(ring.summary.consensusDistance!).toBeGreaterThan(0);
    expect(full.summary.consensusDistance!).toBeLessThan(ring.summary.consensusDistance! / 4);
  });

  test("nodes are never averaged with a barrier, and they learn: the evaluated model is their mean", async () => {
    const { summary } = await trainAndRead({ ...base, data: "synthetic:960", async: { ...base.async, replicas: 3 }, gossip: { topology: "ring" } });
    expect(summary.consensusDistance!).toBeGreaterThan(0);
    expect(summary.testAccuracy).toBeGreaterThan(0.5);
    expect(summary.nodeTestAccuracy!).toBeGreaterThan(0.5);
  });
});
