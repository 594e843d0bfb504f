/**
 * The step replay calibrate measures contention and kernels in context with: each thread replays a
 * real training step (gather, forward, loss, backward, momentum update) on its own batch, workspace
 * and gradients, with the parameters shared, as the workers of a run do.
 */
import { describe, expect, test } from "bun:test";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { measureWakeSeconds, StepReplay } from "../engine/cli/step-replay.ts";

const MODELS = ["mlp:784-32-10", "lenet"];

describe("step replay", () => {
  test("every thread replays the same calls of a training step per model, on its own workspace and gradients, sharing the parameters", async () => {
    const { module } = await loadKernelModule();
    const threads = 3;
    const replay = StepReplay.build(module, MODELS, [1, 28, 28], 10, threads);
    expect(replay.calls).toHaveLength(threads);
    expect(replay.perModel.map((m) => m.model)).toEqual(MODELS);
    const names = (t: number) => replay.calls[t]!.map(([name]) => name);
    for (let t = 1; t < threads; t++) expect(names(t)).toEqual(names(0));
    for (const { from, to } of replay.perModel) {
      for (let t = 0; t < threads; t++) {
        const step = replay.calls[t]!.slice(from, to);
        expect(step[0]![0]).toBe("gather_batch");
        expect(step[step.length - 1]![0]).toBe("momentum_update");
        expect(step.some(([name]) => name === "softmax_xent")).toBe(true);
      }
      const gathers = replay.calls.map((c) => c[from]![1]);
      const updates = replay.calls.map((c) => c[to - 1]![1]);
      // Own batch (indices) and workspace (the gather's output) per thread; one set of parameters.
      expect(new Set(gathers.map((a) => a[0])).size).toBe(threads);
      expect(new Set(gathers.map((a) => a[4])).size).toBe(threads);
      expect(new Set(updates.map((a) => a[0])).size).toBe(1);
      expect(new Set(updates.map((a) => a[1])).size).toBe(threads);
    }
  });

  test("threads started, timed and closed: a throughput for every k and a step time per model", async () => {
    const { module } = await loadKernelModule();
    const replay = StepReplay.build(module, MODELS, [1, 28, 28], 10, 2);
    await replay.start(20);
    try {
      for (const k of [1, 2]) expect(await replay.throughput(k, 10, 0)).toBeGreaterThan(0);
      const speedup = await replay.speedup(2, 10, 1);
      expect(speedup).toHaveLength(2);
      expect(speedup[0]).toBe(1);
      expect(replay.stepSeconds(0, 5, 1)).toBeGreaterThan(0);
      await expect(replay.throughput(3, 10)).rejects.toThrow(/3 threads asked, 2 started/);
    } finally {
      replay.close();
    }
  });

  test("the wake-up ping-pong finishes with a positive time per hand-over, also with the replay threads alive", async () => {
    const { module } = await loadKernelModule();
    const replay = StepReplay.build(module, MODELS.slice(0, 1), [1, 28, 28], 10, 2);
    await replay.start(10);
    try {
      for (let i = 0; i < 5; i++) expect(await measureWakeSeconds(400, 2)).toBeGreaterThan(0);
    } finally {
      replay.close();
    }
  });
});
