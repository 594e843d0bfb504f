/**
 * Staleness mitigations of the asynchronous family: the staleness-aware learning rate (a gradient τ ≥ 1
 * versions old applied with lr/τ; Zhang, Gupta, Lian, Liu 2016) and DC-ASGD's delay compensation
 * (g + λ·g⊙g⊙(w_now − w_read); Zheng et al. 2017). Both must vanish without delay, and act with it.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { floats } from "./arbitraries.ts";
import { sameBits, trainAndRead, ledgerDeviation } from "./helpers.ts";
import { arenaFor, expectClose, VARIANTS } from "./kernels.harness.ts";

const base: TrainConfig = {
  algo: "hogwild",
  model: "mlp:784-24-16-10",
  data: "synthetic:320",
  epochs: 2,
  batch: 32,
  workers: 1,
  executor: "deterministic",
  seed: 5,
  optimizer: defaultOptimizer("momentum"),
};

describe("delay_compensate kernel", () => {
  for (const variant of VARIANTS) {
    test(`g + λ·g⊙g⊙(w_now − w_read) against plain TypeScript (${variant} build)`, async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 67 }).chain((n) => fc.tuple(fc.constant(n), floats(n, 2), floats(n), floats(n))),
          fc.double({ min: 0, max: 4, noNaN: true }),
          ([n, g, now, read], lambda) => {
            a.reset();
            const [pg, pn, pr] = [a.put(g), a.put(now), a.put(read)];
            a.k.delay_compensate(pg, pn, pr, n, lambda);
            const l = Math.fround(lambda);
            const want = Float64Array.from(g, (x, i) => x + l * x * x * (now[i]! - read[i]!));
            expectClose(a.read(pg, n), want, 1e-5, 1e-6, "compensated gradient");
          },
        ),
      );
    });
  }
});

describe("without delay both are the plain update, bitwise", () => {
  const mitigated = { stalenessLr: true, dcLambda: 0.5 };
  for (const executor of ["threads", "deterministic"] as const) {
    test(`hogwild, one worker (${executor})`, async () => {
      const plain = await trainAndRead({ ...base, executor });
      const withBoth = await trainAndRead({ ...base, executor, async: mitigated });
      expect(sameBits(withBoth.params, plain.params)).toBe(true);
    });
    test(`layerwise, 1 forward and 1 backward thread, one slot (${executor})`, async () => {
      const o = { fwdThreads: 1, bwdThreads: 1, queue: 1 };
      const plain = await trainAndRead({ ...base, executor, algo: "layerwise", async: o });
      const withBoth = await trainAndRead({ ...base, executor, algo: "layerwise", async: { ...o, ...mitigated } });
      expect(sameBits(withBoth.params, plain.params)).toBe(true);
    });
  }
});

describe("with delay they act", () => {
  test("staleness-aware lr: plain SGD moves the weights by exactly −Σ (lr/τ)·g over the applied gradients, for any interleaving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1e9 }), async (schedulerSeed) => {
        const config: TrainConfig = {
          ...base,
          algo: "layerwise",
          epochs: 1,
          optimizer: { ...defaultOptimizer("sgd"), lr: 0.05 },
          async: { fwdThreads: 2, bwdThreads: 2, queue: 4, stalenessLr: true },
        };
        const initial = (await trainAndRead({ ...config, epochs: 0 })).params;
        const session = await TrainingSession.open(config, { schedulerSeed, audit: true });
        try {
          const epoch = await session.trainEpoch();
          // The ledger holds Σ (lr_applied/lr)·g; without stale gradients the property would be plain SGD's.
          expect(Math.max(...epoch.staleness!.layers.map((l) => l.max))).toBeGreaterThan(1);
          const final = session.params();
          const ledger = session.ledger()!;
          expect(ledgerDeviation(initial, final, ledger, 0.05)).toBeLessThan(1e-4);
        } finally {
          session.close();
        }
      }),
      { numRuns: 6 },
    );
  });

  test("each changes the result of a run with stale gradients (same interleaving)", async () => {
    const config: TrainConfig = { ...base, algo: "layerwise", epochs: 1, async: { fwdThreads: 2, bwdThreads: 2, queue: 4 } };
    const plain = await trainAndRead(config);
    const rate = await trainAndRead({ ...config, async: { ...config.async, stalenessLr: true } });
    const compensated = await trainAndRead({ ...config, async: { ...config.async, dcLambda: 0.5 } });
    expect(sameBits(rate.params, plain.params)).toBe(false);
    expect(sameBits(compensated.params, plain.params)).toBe(false);
    expect(rate.summary.testAccuracy).toBeGreaterThan(0.3);
    expect(compensated.summary.testAccuracy).toBeGreaterThan(0.3);
  });
});
