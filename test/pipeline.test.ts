/**
 * Pipeline execution by its invariants: GPipe (and 1F1B) is synchronous SGD on the same batch; with
 * one stage every strategy is synchronous SGD (on the batch, or on the microbatch for the strategies
 * that step per microbatch); PipeDream's and 2BW's backwards use exactly their forward's weights; the
 * memory each strategy keeps; a failing stage ends the run.
 */
import { describe, expect, test } from "bun:test";
import { partitionStages, PIPELINE_ALGORITHMS } from "../engine/algorithms/pipeline/pipeline.ts";
import { RunError } from "../engine/errors.ts";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const base: TrainConfig = {
  algo: "gpipe",
  model: "mlp:784-32-24-16-10",
  data: "synthetic:384",
  epochs: 2,
  batch: 32,
  workers: 3,
  executor: "deterministic",
  seed: 9,
  optimizer: defaultOptimizer("momentum"),
  pipeline: { stages: 3, microbatches: 4 },
};

const run = trainAndRead;
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("pipelines reduce to synchronous SGD", () => {
  for (const executor of ["deterministic", "threads"] as const) {
    test(`gpipe and 1f1b = sync SGD on the same batch, to float tolerance (${executor})`, async () => {
      const sync = await run({ ...base, executor, algo: "sync", workers: 1 });
      for (const algo of ["gpipe", "1f1b"] as const) {
        const pipe = await run({ ...base, executor, algo });
        // Microbatch gradients summed vs one GEMM over the batch: rounding differs, nothing else.
        expect(maxDiff(pipe.params, sync.params)).toBeLessThan(1e-4);
      }
    });
  }

  test("one stage: every strategy is sync SGD, on the batch (gpipe, 1f1b, 2bw) or on the microbatch (the others) — bitwise where the arithmetic is the same", async () => {
    const oneStage = { ...base, pipeline: { stages: 1, microbatches: 4 } };
    const syncBatch = await run({ ...base, algo: "sync", workers: 1 });
    const syncMicro = await run({ ...base, algo: "sync", workers: 1, batch: base.batch / 4 });
    for (const algo of PIPELINE_ALGORITHMS) {
      const pipe = await run({ ...oneStage, algo });
      if (algo === "gpipe" || algo === "1f1b" || algo === "2bw") expect({ algo, diff: maxDiff(pipe.params, syncBatch.params) < 1e-4 }).toEqual({ algo, diff: true });
      else expect({ algo, same: sameBits(pipe.params, syncMicro.params) }).toEqual({ algo, same: true });
    }
  });
});

describe("weight versions", () => {
  test("pipedream and 2bw: every backward uses exactly the weights its forward used; pipeoptim predicts on all but the last stage", async () => {
    for (const algo of ["pipedream", "2bw"] as const) {
      const { summary } = await run({ ...base, algo });
      expect(summary.inconsistency).toEqual([0, 0, 0]);
    }
    const pipeoptim = await run({ ...base, algo: "pipeoptim" });
    expect(pipeoptim.summary.inconsistency![2]).toBe(0); // s = D − k − 1 = 0: nothing to predict
    expect(pipeoptim.summary.inconsistency![0]).toBeGreaterThan(0);
  });

  test("memory per stage: pipedream stashes D − k versions, 2bw one, pipeoptim one prediction, flush strategies none", async () => {
    const versions = async (algo: TrainConfig["algo"]) =>
      ((await run({ ...base, algo, epochs: 1 })).summary.stages as { extraWeightVersions: number }[]).map((s) => s.extraWeightVersions);
    expect(await versions("pipedream")).toEqual([3, 2, 1]);
    expect(await versions("2bw")).toEqual([1, 1, 1]);
    expect(await versions("pipeoptim")).toEqual([1, 1, 1]);
    expect(await versions("gpipe")).toEqual([0, 0, 0]);
  });

  test("threads and the deterministic executor agree bitwise for every strategy", async () => {
    for (const algo of PIPELINE_ALGORITHMS) {
      const a = await run({ ...base, algo, epochs: 1 });
      const b = await run({ ...base, algo, epochs: 1, executor: "threads" });
      expect({ algo, same: sameBits(a.params, b.params) }).toEqual({ algo, same: true });
    }
  });
});

describe("stages", () => {
  test("contiguous blocks covering every layer, each with parameters", () => {
    const net = new Network("lenet", [1, 28, 28], 10);
    for (let D = 1; D <= net.trainableLayers.length; D++) {
      const stages = partitionStages(net, D);
      expect(stages).toHaveLength(D);
      expect(stages[0]!.first).toBe(0);
      expect(stages[D - 1]!.last).toBe(net.layers.length - 1);
      stages.forEach((s, k) => {
        if (k > 0) expect(s.first).toBe(stages[k - 1]!.last + 1);
        const trainable = net.trainableLayers.filter((l) => l >= s.first && l <= s.last);
        expect(trainable.length).toBeGreaterThan(0);
      });
    }
    expect(() => partitionStages(net, 6)).toThrow(/--stages 6/);
  });

  for (const executor of ["threads", "deterministic"] as const) {
    test(`a stage that throws ends the run with a clear error (${executor})`, async () => {
      const attempt = run({ ...base, algo: "pipeoptim", executor, data: "synthetic:2000" }, { fault: { worker: 1, at: "kernel", afterCalls: 30 } });
      await expect(attempt).rejects.toThrow(RunError);
      await expect(attempt).rejects.toThrow(/worker 1 .*injected fault/);
    });
  }
});
