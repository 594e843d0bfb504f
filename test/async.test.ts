/**
 * The asynchronous family by its invariants, mostly under the deterministic executor, where
 * fast-check chooses configurations and scheduler seeds (that is, interleavings):
 *  - reductions: hogwild on one worker = sync; lap with one replica = hogwild; layerwise with one
 *    forward thread, one backward thread and one slot = sync — bitwise;
 *  - no update is lost or applied twice: per layer, gradients produced = updates applied = the
 *    layer's shared version counter, and with plain SGD the weights moved by exactly −lr·Σ(applied);
 *  - layerwise's staleness never exceeds queue − 1;
 *  - a worker that throws ends the run with a clear error under both executors;
 *  - LPP's parameter chunks are contiguous and within one layer of equal size.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { lppChunks } from "../engine/algorithms/async/lpp.ts";
import { RunError } from "../engine/errors.ts";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { openResume, TrainingSession, train, type TrainConfig } from "../engine/train.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sameBits, trainAndRead, ledgerDeviation } from "./helpers.ts";

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-24-16-10",
  data: "synthetic:320",
  epochs: 2,
  batch: 32,
  workers: 1,
  executor: "deterministic",
  seed: 5,
  optimizer: defaultOptimizer("adam"),
};

const run = trainAndRead;

describe("reductions to simpler algorithms (bitwise)", () => {
  for (const executor of ["threads", "deterministic"] as const) {
    test(`hogwild with one worker = sync (${executor})`, async () => {
      const sync = await run({ ...base, executor });
      const hogwild = await run({ ...base, executor, algo: "hogwild" });
      expect(sameBits(hogwild.params, sync.params)).toBe(true);
    });

    test(`layerwise with 1 forward, 1 backward thread and one slot = sync (${executor})`, async () => {
      const sync = await run({ ...base, executor, optimizer: defaultOptimizer("nesterov") });
      const layerwise = await run({ ...base, executor, optimizer: defaultOptimizer("nesterov"), algo: "layerwise", async: { fwdThreads: 1, bwdThreads: 1, queue: 1 } });
      expect(layerwise.summary.workers).toBe(2);
      expect(sameBits(layerwise.params, sync.params)).toBe(true);
    });
  }

  test("lap with one replica = hogwild, for any interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: 2, max: 3 }), async (schedulerSeed, workers) => {
        const hogwild = await run({ ...base, algo: "hogwild", workers }, { schedulerSeed });
        const lap = await run({ ...base, algo: "lap", workers, async: { replicas: 1, avgEvery: 2 } }, { schedulerSeed });
        expect(sameBits(lap.params, hogwild.params)).toBe(true);
      }),
      { numRuns: 5 },
    );
  });
});

/** Configurations of every async algorithm, small enough to run many interleavings. */
const asyncConfig = fc.oneof(
  fc.record({ algo: fc.constant("hogwild" as const), workers: fc.integer({ min: 1, max: 3 }), async: fc.constant({}) }),
  fc.record({ algo: fc.constant("lap" as const), workers: fc.constant(4), async: fc.record({ replicas: fc.constantFrom(1, 2, 4), avgEvery: fc.integer({ min: 1, max: 4 }) }) }),
  fc.record({ algo: fc.constant("lpp" as const), workers: fc.constantFrom(2, 3), async: fc.record({ replicas: fc.constant(1), lppWarmup: fc.constantFrom(0, 1) }) }),
  fc.record({
    algo: fc.constant("layerwise" as const),
    workers: fc.constant(0),
    async: fc.record({ fwdThreads: fc.integer({ min: 1, max: 2 }), bwdThreads: fc.integer({ min: 1, max: 3 }), queue: fc.integer({ min: 1, max: 4 }), replicas: fc.constantFrom(1, 2), avgEvery: fc.integer({ min: 1, max: 4 }) }),
  }),
);

describe("resume", () => {
  for (const [algo, async] of [["hogwild", {}], ["layerwise", { fwdThreads: 2, bwdThreads: 2, queue: 3 }]] as const) {
    test(`${algo} under the deterministic executor continues to the same weights as an uninterrupted run`, async () => {
      const config: TrainConfig = { ...base, algo, workers: 2, epochs: 3, async };
      const straight = await run(config);
      const dir = mkdtempSync(join(tmpdir(), "skein-async-resume-"));
      await train({ ...config, epochs: 1 }, { out: dir });
      const resumed = await run(config, { out: dir, resume: await openResume(dir) });
      expect(sameBits(resumed.params, straight.params)).toBe(true);
    });
  }
});

describe("no update is lost or applied twice", () => {
  test("per layer: produced = applied = the shared version counter; plain SGD moved the weights by exactly −lr·Σ applied", async () => {
    await fc.assert(
      fc.asyncProperty(asyncConfig, fc.integer({ min: 0, max: 1e9 }), async (c, schedulerSeed) => {
        const config: TrainConfig = { ...base, ...c, epochs: 1, optimizer: { ...defaultOptimizer("sgd"), lr: 0.05 } };
        const initial = (await run({ ...config, epochs: 0 })).params;
        const session = await TrainingSession.open(config, { schedulerSeed, audit: true });
        try {
          const epoch = await session.trainEpoch();
          const staleness = epoch.staleness!;
          const replicas = (session.setup.layout as { replicas: { versions: number[] } }).replicas.versions;
          const layers = session.net.layers.length;
          for (const l of staleness.layers) {
            expect(l.applied).toBe(l.produced);
            const versions = replicas.reduce((a, at) => a + new Int32Array(session.memory.buffer, at, layers)[l.layer]!, 0);
            expect(versions).toBe(l.applied);
          }
          // Every batch of the epoch was forwarded, and (but for lpp's partial steps) updated every layer.
          expect(epoch.samples).toBe(session.dataset.train.count);
          if (c.algo !== "lpp") {
            for (const l of staleness.layers) expect(l.applied).toBe(session.stepsPerEpoch);
          }
          // One replica: w = w0 − lr·Σ g exactly up to rounding. (With replicas, averaging mixes them.)
          if (replicas.length === 1) {
            const final = session.params();
            const ledger = session.ledger()!;
            expect(ledgerDeviation(initial, final, ledger, 0.05)).toBeLessThan(1e-4);
          }
        } finally {
          session.close();
        }
      }),
      { numRuns: 24 },
    );
  });
});

describe("layerwise staleness", () => {
  test("never exceeds queue − 1, for any threads, slots and interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ fwdThreads: fc.integer({ min: 1, max: 3 }), bwdThreads: fc.integer({ min: 1, max: 3 }), queue: fc.integer({ min: 1, max: 6 }) }),
        fc.integer({ min: 0, max: 1e9 }),
        async (o, schedulerSeed) => {
          const { summary } = await run({ ...base, algo: "layerwise", epochs: 1, async: o }, { schedulerSeed });
          for (const l of summary.staleness!) expect(l.max).toBeLessThanOrEqual(o.queue - 1);
          if (o.queue === 1) for (const l of summary.staleness!) expect(l.max).toBe(0);
        },
      ),
      { numRuns: 30 },
    );
  });

  test("on real threads too", async () => {
    const queue = 3;
    const { summary } = await run({ ...base, data: "synthetic:1200", executor: "threads", algo: "layerwise", epochs: 1, async: { fwdThreads: 2, bwdThreads: 2, queue } });
    for (const l of summary.staleness!) expect(l.max).toBeLessThanOrEqual(queue - 1);
    expect(summary.testAccuracy).toBeGreaterThan(0.5);
  });
});

describe("a failing worker ends an async run with a clear error", () => {
  for (const executor of ["threads", "deterministic"] as const) {
    for (const [algo, fault, async] of [
      ["hogwild", 1, {}],
      ["layerwise", 2, { fwdThreads: 1, bwdThreads: 2, queue: 2 }], // a backward thread dies mid-run
      ["layerwise", 0, { fwdThreads: 1, bwdThreads: 2, queue: 2 }], // the forward thread dies: backward threads wait for slots
    ] as const) {
      test(`${algo}, worker ${fault} throws (${executor})`, async () => {
        const attempt = run({ ...base, data: "synthetic:2000", algo, workers: 2, executor, async }, { fault: { worker: fault, at: "kernel", afterCalls: 40 } });
        await expect(attempt).rejects.toThrow(RunError);
        await expect(attempt).rejects.toThrow(new RegExp(`worker ${fault} .*injected fault`));
      });
    }
  }
});

describe("lpp chunks", () => {
  /** Layer widths of an MLP (input first, classes last): the layer sizes are the data LPP splits. */
  const widths = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 3, maxLength: 9 });

  test("contiguous, in layer order, covering every trainable layer once", () => {
    fc.assert(
      fc.property(widths, fc.integer({ min: 1, max: 10 }), (w, ranks) => {
        const net = new Network(`mlp:${w.join("-")}`, [w[0]!], w.at(-1)!);
        const chunks = lppChunks(net, ranks);
        expect(chunks).toHaveLength(ranks);
        const covered = chunks.filter((c) => c.first >= 0).flatMap((c) => net.trainableLayers.filter((l) => l >= c.first && l <= c.last));
        expect(covered).toEqual(net.trainableLayers);
      }),
    );
  });

  test("about equal sizes: every chunk is within one layer of the fair share", () => {
    // Chunks are whole layers, so no split can beat the largest layer; LPP's promise (Chatterjee et
    // al., 2203.06638: "contiguous chunks of about equal size") is that no chunk misses the fair
    // share total/chunks by a whole layer or more. With more ranks than layers, the extra ranks get
    // no chunk (they take full steps) and each layer is a chunk of its own.
    fc.assert(
      fc.property(widths, fc.integer({ min: 1, max: 10 }), (w, ranks) => {
        const net = new Network(`mlp:${w.join("-")}`, [w[0]!], w.at(-1)!);
        const sizes = lppChunks(net, ranks)
          .filter((c) => c.first >= 0)
          .map((c) => net.trainableLayers.filter((l) => l >= c.first && l <= c.last).reduce((a, l) => a + net.params[l]!.floats, 0));
        const layerSizes = net.trainableLayers.map((l) => net.params[l]!.floats);
        const total = layerSizes.reduce((a, b) => a + b, 0);
        expect(sizes).toHaveLength(Math.min(ranks, layerSizes.length));
        const fair = total / sizes.length;
        const largest = Math.max(...layerSizes);
        for (const size of sizes) expect(Math.abs(size - fair)).toBeLessThan(largest);
      }),
    );
  });
});
