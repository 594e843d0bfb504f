/**
 * Pipeline execution by its invariants, under the deterministic executor:
 *  - the runtime executes any valid schedule exactly as a sequential reference that applies the same
 *    versions (test/pipeline-reference.ts): bitwise, on random schedules with F, B, I and W;
 *  - reductions: GPipe (and 1F1B) is synchronous SGD on the same batch; with one stage the
 *    asynchronous strategies are SGD on their unit (microbatch or batch);
 *  - PipeDream's and 2BW's backwards read, element by element, the weights their forward read;
 *    PipeOptim's prediction makes that distance smaller than the same run without it;
 *  - enough activation slots for M < D, M = D, M > D (the runtime's ownership check never fires);
 *  - a user's schedule runs, an invalid one is refused with the validator's message;
 *  - the memory each strategy keeps; a failing stage ends the run.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { partitionStages, PIPELINE_ALGORITHMS, type PipelineAlgorithm, type PipelineOptions } from "../engine/algorithms/pipeline/pipeline.ts";
import { parseScheduleJson } from "../engine/algorithms/pipeline/schedule-file.ts";
import { interleaved, oneFOneB, SCHEDULES } from "../engine/algorithms/pipeline/schedule.ts";
import { trainCommand } from "../engine/cli/train-command.ts";
import { RunError, UserError } from "../engine/errors.ts";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer, type OptimizerKind } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";
import { randomSchedule, referencePipeline } from "./pipeline-reference.ts";

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
/** Seven layers with parameters: up to D = 6 stages (and one to spare). */
const DEEP = "mlp:784-12-12-12-12-12-12-10";

const run = trainAndRead;
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const ASYNC: PipelineAlgorithm[] = ["pipedream", "2bw", "spectrain", "pipeoptim"];

/** train() and the sequential reference on the same configuration. */
async function againstReference(config: TrainConfig & { algo: PipelineAlgorithm; pipeline: PipelineOptions }) {
  const pipe = await run(config);
  const ref = await referencePipeline(config);
  return { pipe, ref, same: sameBits(pipe.params, ref) };
}

describe("the runtime executes the schedule", () => {
  test("random valid schedules (D ≤ 6, M ≤ 12, F/B/I/W, flushed or not) under every strategy = the sequential reference, bitwise", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
        fc.constantFrom<PipelineAlgorithm>(...PIPELINE_ALGORITHMS),
        fc.constantFrom<OptimizerKind>("momentum", "adam"),
        async (D, M, choices, split, algo, opt) => {
          fc.pre(algo !== "2bw" || M >= D); // 2BW refuses M < D (tested below)
          const flush = algo === "gpipe" || algo === "1f1b" || algo === "2bw";
          const schedule = randomSchedule(D, M, choices, split, flush);
          // A small step: with microbatches of one or two samples momentum at 0.02 can diverge (NaN),
          // and this property is about executing the schedule exactly, not about learning.
          const optimizer = { ...defaultOptimizer(opt), ...(opt === "momentum" ? { lr: 0.005 } : {}) };
          const config = { ...base, algo, model: DEEP, data: "synthetic:48", epochs: 1, batch: 12, workers: D, optimizer, pipeline: { stages: D, microbatches: M, schedule } };
          const { same } = await againstReference(config);
          expect({ D, M, algo, same }).toEqual({ D, M, algo, same: true });
        },
      ),
      { numRuns: 24 },
    );
  });

  test("every asynchronous strategy's own stream, M < D, M = D, M > D, both units = the reference, bitwise (the slot check never fires)", async () => {
    const D = 4;
    for (const algo of ASYNC) {
      for (const M of [2, 4, 6]) {
        for (const unit of ["microbatch", "batch"] as const) {
          if (algo === "2bw" && (M < D || unit === "batch")) continue;
          const config = { ...base, algo, model: DEEP, data: "synthetic:96", epochs: 2, batch: 12, workers: D, pipeline: { stages: D, microbatches: M, unit } };
          const { same } = await againstReference(config);
          expect({ algo, M, unit, same }).toEqual({ algo, M, unit, same: true });
        }
      }
    }
  });

  test("zb-h1 (split I/W), an out-of-order schedule and a `skein schedule --json` print run on real threads as under the deterministic executor, bitwise", async () => {
    const D = 3;
    const printed = JSON.parse(JSON.stringify({ ...SCHEDULES["zb-h1"]!(D, 4), makespan: 1 })); // extra keys are ignored
    const schedules = [parseScheduleJson(JSON.stringify(printed), "zb-h1.json"), randomSchedule(D, 4, [3, 1, 4, 1, 5, 9, 2, 6], [true, false, false], false)];
    for (const [algo, schedule] of [["gpipe", schedules[0]!], ["pipeoptim", schedules[1]!]] as const) {
      const config = { ...base, algo, workers: D, epochs: 1, pipeline: { stages: D, microbatches: 4, schedule } };
      const a = await run(config);
      const b = await run({ ...config, executor: "threads" });
      const ref = await referencePipeline(config);
      expect({ algo, threads: sameBits(a.params, b.params), reference: sameBits(a.params, ref) }).toEqual({ algo, threads: true, reference: true });
    }
  });

  // ZB-H1 reorders 1F1B's backwards into I's and W's but accumulates the same gradients in the same
  // microbatch order, so the trained weights must not differ in a single bit: on every layer kind.
  test.each([
    [DEEP, "synthetic:96", "deterministic"],
    [DEEP, "synthetic:96", "threads"],
    ["lenet", "synthetic:48", "deterministic"],
    ["resnet:8", "synthetic:48", "threads"],
    ["gpt:2-2-16-8", "text:names:8", "deterministic"],
  ] as const)("zb-h1 trains %s to the same weights as 1f1b, bitwise (%s, %s)", async (model, data, executor) => {
    const D = 3;
    const M = 4;
    const config = { ...base, algo: "1f1b" as const, model, data, executor, epochs: 2, batch: 12, workers: D, pipeline: { stages: D, microbatches: M } };
    const oneF = await run(config);
    const zb = await run({ ...config, pipeline: { ...config.pipeline, schedule: SCHEDULES["zb-h1"]!(D, M) } });
    expect(oneF.params.some((v) => !Number.isFinite(v))).toBe(false);
    expect(sameBits(zb.params, oneF.params)).toBe(true);
  });

  // Interleaved 1F1B: v chunks per worker, run by the same interpreter. Every layer still sees the
  // microbatches' forwards and backwards in ascending order, so it trains to 1F1B's weights, bitwise.
  test.each([
    [2, 2, 4, "deterministic"],
    [2, 3, 2, "threads"],
    [3, 2, 6, "deterministic"],
    [3, 2, 3, "threads"],
  ] as const)("interleaved (D = %d, v = %d, M = %d, %s) = the sequential reference = 1f1b, bitwise", async (D, v, M, executor) => {
    const config = { ...base, algo: "1f1b" as const, model: DEEP, data: "synthetic:96", executor, epochs: 2, batch: 12, workers: D, pipeline: { stages: D, microbatches: M, schedule: interleaved(D, M, v) } };
    const il = await run(config);
    const ref = await referencePipeline(config);
    const oneF = await run({ ...config, pipeline: { stages: D, microbatches: M } });
    expect({ reference: sameBits(il.params, ref), oneF: sameBits(il.params, oneF.params) }).toEqual({ reference: true, oneF: true });
  });

  test("--schedule interleaved:2 and --schedule zb-h1 by name through the CLI; an asynchronous strategy is refused on virtual stages", async () => {
    const args = ["--model", "mlp:784-16-12-12-10", "--data", "synthetic:96", "--epochs", "1", "--batch", "16", "--stages", "2", "--microbatches", "4", "--json"];
    for (const name of ["interleaved:2", "zb-h1"]) expect(await trainCommand(["--algo", "1f1b", "--schedule", name, ...args])).toBe(0);
    await expect(trainCommand(["--algo", "pipedream", "--schedule", "interleaved:2", ...args])).rejects.toThrow(/virtual stages .* use --algo 1f1b or gpipe/);
    await expect(trainCommand(["--algo", "1f1b", "--schedule", "interleaved:2", ...args.slice(0, -2), "3", "--json"])).rejects.toThrow(/microbatches 3 must be a multiple of the 2 stages/);
  });

  test("threads and the deterministic executor agree bitwise for every strategy", async () => {
    for (const algo of PIPELINE_ALGORITHMS) {
      const a = await run({ ...base, algo, epochs: 1 });
      const b = await run({ ...base, algo, epochs: 1, executor: "threads" });
      expect({ algo, same: sameBits(a.params, b.params) }).toEqual({ algo, same: true });
    }
  });
});

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

  test("one stage: gpipe and 1f1b are SGD on the batch; pipedream, spectrain, pipeoptim SGD on their unit, bitwise", async () => {
    const oneStage = { ...base, workers: 1, pipeline: { stages: 1, microbatches: 4 } };
    const syncBatch = await run({ ...base, algo: "sync", workers: 1 });
    const syncMicro = await run({ ...base, algo: "sync", workers: 1, batch: base.batch / 4 });
    for (const algo of ["gpipe", "1f1b"] as const) expect({ algo, close: maxDiff((await run({ ...oneStage, algo })).params, syncBatch.params) < 1e-4 }).toEqual({ algo, close: true });
    for (const algo of ["pipedream", "spectrain", "pipeoptim"] as const) {
      const micro = await run({ ...oneStage, algo });
      const whole = await run({ ...oneStage, algo, pipeline: { stages: 1, microbatches: 4, unit: "batch" } });
      expect({ algo, micro: sameBits(micro.params, syncMicro.params), batch: sameBits(whole.params, syncBatch.params) }).toEqual({ algo, micro: true, batch: true });
    }
  });

  test("one stage: 2bw is not SGD: its gradients are one version old even there (W(t+1) = W(t) − η∇f(W(t−1)))", async () => {
    const oneStage = { ...base, workers: 1, pipeline: { stages: 1, microbatches: 4 } };
    const sync = await run({ ...base, algo: "sync", workers: 1 });
    const twoBW = await run({ ...oneStage, algo: "2bw", pipeline: { stages: 1, microbatches: 4 } });
    expect(maxDiff(twoBW.params, sync.params)).toBeGreaterThan(1e-4);
  });
});

describe("weight versions", () => {
  test("pipedream and 2bw: every backward reads, element by element, the weights its forward read (D = 2..6; M < D, = D, > D)", async () => {
    for (let D = 2; D <= 6; D++) {
      for (const M of [D - 1, D, D + 2]) {
        for (const algo of ["pipedream", "2bw"] as const) {
          if (algo === "2bw" && M < D) continue;
          const { summary } = await run({ ...base, algo, model: DEEP, data: "synthetic:96", epochs: 1, batch: 12, workers: D, pipeline: { stages: D, microbatches: M, measureEvery: 1 } });
          expect({ algo, D, M, inconsistency: summary.inconsistency }).toEqual({ algo, D, M, inconsistency: new Array(D).fill(0) });
        }
      }
    }
  });

  test("the contents check can fail: pipeoptim's and spectrain's backwards read other weights than their forwards", async () => {
    for (const algo of ["pipeoptim", "spectrain"] as const) {
      const { summary } = await run({ ...base, algo, pipeline: { stages: 3, microbatches: 4, measureEvery: 1 } });
      expect(summary.inconsistency![0]).toBeGreaterThan(0);
    }
  });

  for (const opt of ["momentum", "adam"] as const) {
    test(`pipeoptim's prediction brings the forward's weights closer to the backward's than the same run without it (${opt})`, async () => {
      for (const D of [3, 4]) {
        const config = { ...base, algo: "pipeoptim" as const, model: DEEP, workers: D, epochs: 1, optimizer: defaultOptimizer(opt) };
        const predicted = (await run({ ...config, pipeline: { stages: D, microbatches: 4, measureEvery: 1 } })).summary.inconsistency!;
        const plain = (await run({ ...config, pipeline: { stages: D, microbatches: 4, measureEvery: 1, prediction: false } })).summary.inconsistency!;
        for (let k = 0; k < D - 1; k++) expect({ D, k, lower: predicted[k]! < plain[k]! }).toEqual({ D, k, lower: true });
        // The last stage runs F and B back to back: nothing to predict, nothing to measure.
        expect([predicted[D - 1], plain[D - 1]]).toEqual([0, 0]);
      }
    });
  }

  test("2bw's versions do not depend on the depth (delay one everywhere, as published): D = 2, 4, 6 give the same weights, bitwise", async () => {
    const at = (D: number) => run({ ...base, algo: "2bw", model: DEEP, data: "synthetic:96", batch: 12, workers: D, pipeline: { stages: D, microbatches: 6 } });
    const [two, four, six] = [await at(2), await at(4), await at(6)];
    expect([sameBits(two.params, four.params), sameBits(two.params, six.params)]).toEqual([true, true]);
    // PipeDream's staleness D − k − 1 does depend on it.
    const pd = (D: number) => run({ ...base, algo: "pipedream", model: DEEP, data: "synthetic:96", batch: 12, workers: D, pipeline: { stages: D, microbatches: 6 } });
    expect(sameBits((await pd(2)).params, (await pd(4)).params)).toBe(false);
  });

  test("2bw needs M ≥ D", async () => {
    const attempt = run({ ...base, algo: "2bw", workers: 4, model: DEEP, pipeline: { stages: 4, microbatches: 2 } });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/--algo 2bw: .*--microbatches 2 .*at least as many as --stages 4/);
  });

  test("memory per stage: pipedream stashes D − k − 1 versions, 2bw one, spectrain and pipeoptim one prediction where they predict, flush strategies none", async () => {
    const versions = async (algo: TrainConfig["algo"]) =>
      ((await run({ ...base, algo, epochs: 1 })).summary.stages as { extraWeightVersions: number }[]).map((s) => s.extraWeightVersions);
    expect(await versions("pipedream")).toEqual([2, 1, 0]);
    expect(await versions("2bw")).toEqual([1, 1, 1]);
    expect(await versions("pipeoptim")).toEqual([1, 1, 0]);
    expect(await versions("spectrain")).toEqual([1, 1, 1]);
    expect(await versions("gpipe")).toEqual([0, 0, 0]);
  });
});

describe("user schedules", () => {
  const dir = mkdtempSync(join(tmpdir(), "skein-schedule-"));
  const file = (name: string, body: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof body === "string" ? body : JSON.stringify(body));
    return path;
  };

  test("a valid JSON schedule runs and equals the built-in one it spells out", async () => {
    const s = oneFOneB(3, 4);
    const json = { name: "mine", stages: 3, microbatches: 4, flush: true, actions: s.actions.map((l) => l.map((a) => `${a.kind}${a.microbatch}`)) };
    const schedule = parseScheduleJson(JSON.stringify(json), "test");
    const builtIn = await run({ ...base, algo: "1f1b" });
    const mine = await run({ ...base, algo: "1f1b", pipeline: { stages: 3, microbatches: 4, schedule } });
    expect(sameBits(mine.params, builtIn.params)).toBe(true);
  });

  test("an invalid schedule is refused with the validator's message, exit 2, through the CLI", async () => {
    const bad = file("bad.json", { stages: 2, microbatches: 2, actions: [["F0", "F1", "B0", "B1"], ["B0", "F0", "F1", "B1"]] });
    const attempt = run({ ...base, algo: "gpipe", workers: 2, pipeline: { stages: 2, microbatches: 2, schedule: parseScheduleJson(JSON.stringify({ stages: 2, microbatches: 2, actions: [["F0", "F1", "B0", "B1"], ["B0", "F0", "F1", "B1"]] }), bad) } });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(/is not a valid schedule: stage 1: B of microbatch 0 before its F/);
    const errors: string[] = [];
    const code = await runCli(["--algo", "gpipe", "--schedule", bad, "--data", "synthetic:64", "--batch", "16", "--epochs", "1"], errors);
    expect(code).toBe(2);
    expect(errors.join("")).toMatch(/B of microbatch 0 before its F/);
    expect(await runCli(["--algo", "gpipe", "--schedule", file("junk.json", "{ nope"), "--data", "synthetic:64"], errors)).toBe(2);
    expect(await runCli(["--algo", "gpipe", "--schedule", join(dir, "missing.json")], errors)).toBe(2);
    expect(await runCli(["--algo", "gpipe", "--pipeline-unit", "batch"], errors)).toBe(2);
  });
});

/** Runs `skein train ARGS` as main.ts does: a UserError is one line and exit code 2. */
async function runCli(argv: string[], errors: string[]): Promise<number> {
  try {
    return await trainCommand(argv);
  } catch (e) {
    if (e instanceof UserError) {
      errors.push(e.message);
      return 2;
    }
    throw e;
  }
}

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
