/**
 * Synchronous training end to end: it learns, it is reproducible bit for bit, the two executors agree,
 * resuming equals not stopping, and a failing worker ends the run with a clear error, not a hang.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunError } from "../engine/errors.ts";
import { defaultOptimizer, OPTIMIZERS } from "../engine/optim/optimizer.ts";
import { openResume, train, type TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-64-10",
  data: "digits",
  epochs: 1,
  batch: 64,
  workers: 1,
  executor: "threads",
  seed: 3,
  optimizer: defaultOptimizer("momentum"),
};

const finalParams = trainAndRead;

const tempDir = () => mkdtempSync(join(tmpdir(), "skein-test-"));

describe("sync training", () => {
  test("one epoch of an mlp on the embedded digits is far above chance", async () => {
    const { summary } = await finalParams(base);
    expect(summary.testAccuracy).toBeGreaterThan(0.85);
    expect(summary.trainLoss).toBeLessThan(0.7);
    expect(summary.samplesPerSec).toBeGreaterThan(0);
    expect(summary.arena.overhead).toBeLessThanOrEqual(1.25);
  });

  test("same seed and config on one worker: bitwise identical weights; another seed differs", async () => {
    const a = await finalParams(base);
    const b = await finalParams(base);
    const c = await finalParams({ ...base, seed: 4 });
    expect(sameBits(a.params, b.params)).toBe(true);
    expect(sameBits(a.params, c.params)).toBe(false);
  });

  test("threaded and deterministic executors give bitwise the same weights with 3 workers", async () => {
    const config = { ...base, data: "synthetic:600", workers: 3, batch: 50 };
    const threads = await finalParams(config);
    const replay = await finalParams({ ...config, executor: "deterministic" });
    expect(sameBits(threads.params, replay.params)).toBe(true);
  });

  test("sync's result does not depend on the interleaving (any scheduler seed)", async () => {
    const config: TrainConfig = { ...base, data: "synthetic:200", workers: 3, batch: 40, executor: "deterministic" };
    const reference = (await finalParams(config)).params;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 1e9 }), async (schedulerSeed) => {
        const { params } = await finalParams(config, { schedulerSeed });
        expect(sameBits(params, reference)).toBe(true);
      }),
      { numRuns: 8 },
    );
  });

  test("resume continues to the same result as an uninterrupted run", async () => {
    const config = { ...base, data: "synthetic:400", epochs: 3, batch: 32, optimizer: defaultOptimizer("adam") };
    const straight = await finalParams(config);
    const dir = tempDir();
    await train({ ...config, epochs: 1 }, { out: dir });
    const resumed = await finalParams(config, { out: dir, resume: await openResume(dir) });
    expect(sameBits(straight.params, resumed.params)).toBe(true);
    const lines = (await Bun.file(join(dir, "metrics.jsonl")).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual([1, 2, 3]);
    const summary = await Bun.file(join(dir, "summary.json")).json();
    expect(summary.epochs).toBe(3);
  });

  test("a run folder has a Chrome trace: one named track per worker, spans in order, inside the run's time", async () => {
    const dir = tempDir();
    const before = Date.now() * 1000;
    await train({ ...base, data: "synthetic:256", workers: 2, executor: "threads" }, { out: dir });
    const { traceEvents } = await Bun.file(join(dir, "trace.json")).json();
    const tracks = traceEvents.filter((e: { ph: string }) => e.ph === "M");
    expect(tracks.map((e: { tid: number }) => e.tid).sort()).toEqual([0, 1]);
    for (const tid of [0, 1]) {
      const spans = traceEvents.filter((e: { ph: string; tid: number }) => e.ph === "X" && e.tid === tid);
      expect(spans.length).toBeGreaterThan(0);
      spans.forEach((e: { ts: number; dur: number }, i: number) => {
        expect(e.dur).toBeGreaterThanOrEqual(0);
        expect(e.ts).toBeGreaterThan(before);
        if (i > 0) expect(e.ts).toBeGreaterThanOrEqual(spans[i - 1].ts + spans[i - 1].dur - 1);
      });
    }
  });

  test("every optimizer trains", async () => {
    for (const kind of OPTIMIZERS) {
      const { summary } = await finalParams({ ...base, data: "synthetic:1000", batch: 32, optimizer: defaultOptimizer(kind) });
      expect({ kind, acc: summary.testAccuracy > 0.5 }).toEqual({ kind, acc: true });
    }
  });

  test("lenet trains on two workers", async () => {
    const { summary } = await finalParams({ ...base, model: "lenet", workers: 2 });
    expect(summary.testAccuracy).toBeGreaterThan(0.7);
  });
});

describe("a failing worker ends the run with a clear error", () => {
  for (const executor of ["threads", "deterministic"] as const) {
    test(`throws mid-run (${executor})`, async () => {
      // No clock here: a peer left blocked (the stop flag not waking it) would sit in its barrier
      // until ThreadSync's 120 s deadline, which is the test timeout, so the test fails either way.
      const run = train({ ...base, data: "synthetic:2000", workers: 2, executor }, { fault: { worker: 1, at: "kernel", afterCalls: 200 } });
      await expect(run).rejects.toThrow(RunError);
      await expect(run).rejects.toThrow(/worker 1 .*injected fault/);
    });

    test(`fails to start (${executor})`, async () => {
      const run = train({ ...base, data: "synthetic:100", workers: 2, executor }, { fault: { worker: 0, at: "init" } });
      await expect(run).rejects.toThrow(/worker 0 failed during start/);
    });
  }
});
