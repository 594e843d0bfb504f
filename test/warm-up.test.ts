/**
 * The kernel warm-up at start-up (runtime/warm-up.ts) runs on a memory of the warming worker's own:
 * a run opened with it must hold exactly the bytes of a run opened without it, in every region of the
 * arena (data, weights, optimizer state, gradients, activations, scratch, control), and train to
 * bitwise the same weights and test figures. The warm-up is made to run its whole course here
 * (warmUp: "whole"), so it has certainly computed gradients while the arena was live; the runs
 * without it pass warmUp: false, whatever SKEIN_WARM_UP says.
 */
import { describe, expect, test } from "bun:test";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { prefault, WARM_UP_MAX_CALLS, warmUp, warmUpByDefault } from "../engine/runtime/warm-up.ts";
import fc from "fast-check";
import { UserError } from "../engine/errors.ts";
import { sameBits, withEnv } from "./helpers.ts";

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-24-10",
  data: "synthetic:250",
  epochs: 2,
  batch: 160,
  workers: 2,
  executor: "threads",
  seed: 11,
  optimizer: defaultOptimizer("momentum"),
};

/** Open, copy the whole arena, train every epoch, evaluate: what a run leaves, bytes and figures. */
async function openAndTrain(config: TrainConfig, warmUp: boolean | "whole") {
  const session = await TrainingSession.open(config, { warmUp });
  try {
    const arena = new Uint8Array(session.memory.buffer).slice();
    const report = session.warmUpReport;
    const losses: number[] = [];
    for (let e = 0; e < config.epochs; e++) losses.push((await session.trainEpoch()).trainLoss);
    const test = await session.evaluate();
    return { arena, report, losses, test, params: session.params() };
  } finally {
    session.close();
  }
}

describe("kernel warm-up at start-up", () => {
  // Hogwild's weights depend on the threads' timing, so for it only the arena at opening is compared.
  for (const config of [base, { ...base, algo: "hogwild", batch: 16, optimizer: defaultOptimizer("sgd") } as TrainConfig]) {
    test(`${config.algo}, 2 workers: the arena after opening is byte for byte the arena without a warm-up${config.algo === "sync" ? ", and training gives bitwise the same weights, losses and test figures" : ""}`, async () => {
      const cold = await openAndTrain(config, false);
      const warm = await openAndTrain(config, "whole");
      expect(cold.report).toBeNull();
      expect(warm.report?.calls ?? 0).toBeGreaterThan(0); // it did run, while the arena was live
      expect(warm.report?.pages ?? 0).toBeGreaterThan(0); // and wrote into the run's own pages first
      expect(Buffer.from(warm.arena).equals(Buffer.from(cold.arena))).toBe(true);
      if (config.algo === "sync") {
        expect(sameBits(warm.params, cold.params)).toBe(true);
        expect(warm.losses).toEqual(cold.losses);
        expect(warm.test).toEqual(cold.test);
      }
    });
  }

  test("the warm-up ends at the stop word and is claimed by one caller only", async () => {
    const { module } = await loadKernelModule();
    const spec = { model: "mlp:784-24-10", inputShape: [784], classes: 10, rows: 8, sampleBytes: 784, scale: 1 / 255, shift: 0, optimizer: defaultOptimizer("adam") };
    const first = new Int32Array(new SharedArrayBuffer(8));
    const ran = warmUp(module, spec, first);
    expect(ran.calls).toBeGreaterThan(0);
    expect(ran.calls).toBeLessThanOrEqual(WARM_UP_MAX_CALLS);
    expect(warmUp(module, spec, first).calls).toBe(0); // claimed already
    const stopped = new Int32Array(new SharedArrayBuffer(8));
    stopped[0] = 1;
    expect(warmUp(module, spec, stopped).calls).toBe(0);
  });

  test("mapping the run's pages changes no byte: every page of every range is written once, compare-exchange 0 for 0", () => {
    const pages = 6;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(pages * 1024 - 1), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })), { maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(pages - 1), fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 4 }),
        (writes, rangePages) => {
          const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
          const words = new Int32Array(memory.buffer, 0, pages * 1024);
          for (const [at, value] of writes) words[at] = value;
          const before = words.slice();
          const ranges = rangePages.flatMap(([first, count]) => [first * 4096, Math.min(count, pages - first) * 4096]);
          const written = prefault({ memory, ranges }, () => false);
          expect(Buffer.from(words.buffer, 0, words.byteLength).equals(Buffer.from(before.buffer))).toBe(true);
          expect(written).toBe(rangePages.reduce((n, [first, count]) => n + Math.min(count, pages - first), 0));
        },
      ),
    );
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    expect(prefault({ memory, ranges: [0, 65536] }, () => true)).toBe(0); // told to stop: maps nothing more
  });

  test("SKEIN_WARM_UP: 0 turns it off, unset, empty or 1 leave it on, anything else is one clear error", () => {
    expect(warmUpByDefault("0")).toBe(false);
    for (const on of [undefined, "", "1"]) expect(warmUpByDefault(on)).toBe(true);
    expect(() => warmUpByDefault("yes")).toThrow(UserError);
    expect(() => warmUpByDefault("yes")).toThrow("SKEIN_WARM_UP=yes: expected 0 or 1");
  });

  test("a bad SKEIN_WARM_UP is refused by every run, also one that would not warm up (one worker, deterministic)", async () => {
    await withEnv("SKEIN_WARM_UP", "yes", () =>
      expect(TrainingSession.open({ ...base, workers: 1, executor: "deterministic" })).rejects.toThrow("SKEIN_WARM_UP=yes: expected 0 or 1"),
    );
  });
});
