/**
 * resnet:8 end to end: it learns well above chance under both executors, deterministic runs are
 * bitwise reproducible, resuming equals not stopping, and every algorithm family trains it with the
 * batch-norm policy holding (the running statistics in the final weights were updated by training
 * forwards, whichever copy of the weights those forwards ran on).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { partitionStages } from "../engine/algorithms/pipeline/pipeline.ts";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { openResume, train, type TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";


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

/** The parameter vector with every running statistic zeroed: what training's trajectory consists of. */
function trainableOnly(params: Float32Array): Float32Array {
  const net = new Network("resnet:8", [1, 28, 28], 10);
  const out = params.slice();
  for (const t of net.params.flatMap((l) => l.tensors)) if (/running_/.test(t.name)) out.fill(0, t.offset, t.offset + t.floats);
  return out;
}

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

  test("resnet:8:b (projection shortcuts) learns far above chance and keeps every batch norm's running statistics, the projections' too", async () => {
    const { summary, params } = await trainAndRead({ ...base, model: "resnet:8:b", epochs: 2 });
    expect(summary.testAccuracy).toBeGreaterThan(0.5);
    const net = new Network("resnet:8:b", [1, 28, 28], 10);
    const stats = net.params.flatMap((l) => l.tensors).filter((t) => /shortcut\.bn\.running_(mean|var)$/.test(t.name));
    expect(stats.length).toBe(4);
    for (const t of stats) expect(Array.from(params.subarray(t.offset, t.offset + t.floats)).some((v) => v !== (t.name.endsWith("mean") ? 0 : 1))).toBe(true);
  });

  test("deterministic runs are bitwise reproducible; another seed differs", async () => {
    const a = await trainAndRead(base);
    const b = await trainAndRead(base);
    const c = await trainAndRead({ ...base, seed: 4 });
    expect(sameBits(a.params, b.params)).toBe(true);
    expect(sameBits(a.params, c.params)).toBe(false);
    expect(a.summary.testLoss).toBe(b.summary.testLoss);
  });

  test("threaded sync: the workers' racing running-statistics updates leave the learned weights bitwise reproducible", async () => {
    const config = { ...base, executor: "threads" as const };
    const a = await trainAndRead(config);
    const b = await trainAndRead(config);
    expect(sameBits(trainableOnly(a.params), trainableOnly(b.params))).toBe(true);
    expect(sameBits(trainableOnly(a.params), a.params)).toBe(false); // the statistics are there, and were masked
  });

  test("pipeline stages cut resnet:20 between blocks, balanced by multiply-adds", () => {
    const net = new Network("resnet:20", [3, 32, 32], 10);
    const cost = (i: number) => net.layers[i]!.macsPerSample?.() ?? 0;
    const total = net.layers.reduce((a, _, i) => a + cost(i), 0);
    const largest = Math.max(...net.layers.map((_, i) => cost(i)));
    for (const D of [2, 3, 4, 6]) {
      const stages = partitionStages(net, D);
      expect(stages[0]!.first).toBe(0);
      expect(stages.at(-1)!.last).toBe(net.layers.length - 1);
      stages.forEach((s, d) => d > 0 && expect(s.first).toBe(stages[d - 1]!.last + 1));
      const stageCost = stages.map((s) => Array.from({ length: s.last - s.first + 1 }, (_, j) => cost(s.first + j)).reduce((a, b) => a + b, 0));
      // the linear partition's optimum is within one layer of the perfect split
      expect(Math.max(...stageCost)).toBeLessThanOrEqual(total / D + largest);
    }
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
    // PipeDream-2BW as published needs at least as many microbatches per batch as stages.
    ...(["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"] as const).map((algo): [string, Partial<TrainConfig>] => [algo, { algo, pipeline: { stages: 3, microbatches: algo === "2bw" ? 3 : 2 } }]),
    ...(["pmsgd", "dsgd", "dmsgd", "decentlam"] as const).map((algo): [string, Partial<TrainConfig>] => [algo, { algo, optimizer: momentum, gossip: { nodes: 2 } }]),
  ];
  test.each(families)("%s trains resnet:8 and keeps batch norm's running statistics current", async (algo, overrides) => {
    const { summary, params } = await trainAndRead({ ...base, data: "synthetic:256", ...overrides });
    expect(Number.isFinite(summary.testLoss)).toBe(true);
    expect(summary.testLoss).toBeLessThan(Math.log(10) + 0.3); // not diverged (one short epoch)
    expect(runningStatisticsMoved(params)).toEqual(Array(runningStatisticsMoved(params).length).fill(true));
    if (!algo.match(/sgd|decentlam/)) expect(summary.testAccuracy).toBeGreaterThan(0.15);
  });

  test("the CLI: a resnet run folder (checkpoint, trace, metrics) feeds skein report; bad specs end in one line, exit 2", () => {
    const MAIN = join(import.meta.dir, "../engine/cli/main.ts");
    const skein = (...args: string[]) => {
      const r = Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, SKEIN_DEBUG: "" } });
      return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    };
    const dir = mkdtempSync(join(tmpdir(), "skein-resnet-cli-"));
    const run = join(dir, "run");
    const trained = skein("train", "--model", "resnet:8", "--data", "synthetic:64", "--epochs", "1", "--batch", "16", "--algo", "pipedream", "--stages", "2", "--out", run, "--json");
    expect(trained.code).toBe(0);
    for (const file of ["checkpoint.safetensors", "trace.json", "metrics.jsonl", "summary.json"]) expect(existsSync(join(run, file))).toBe(true);
    const report = skein("report", run, "--out", join(dir, "report.html"));
    expect(report.code).toBe(0);
    // The report draws the run: its title, its accuracy, and the per-stage memory of its pipeline.
    const html = readFileSync(join(dir, "report.html"), "utf8");
    expect(html).toContain("skein report: run");
    expect(html).toContain("memory per stage");
    for (const bad of [["--model", "resnet:9"], ["--model", "resnet:8", "--data", "synthetic:64", "--algo", "gpipe", "--stages", "9"]]) {
      const r = skein("train", ...bad, "--epochs", "1", "--out", join(dir, "bad"));
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(existsSync(join(dir, "bad"))).toBe(false);
    }
  });
});
