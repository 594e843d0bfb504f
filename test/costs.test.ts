/**
 * The simulator's kernel costs cover every kernel the models call:
 *  - every export of the kernel module is either charged (WORK) or on the explicit list of kernels
 *    that never are (NEVER_CHARGED), and the two lists name nothing else;
 *  - every kernel call a resnet or gpt training step makes (forward, loss, backward, evaluation, the
 *    split backward of zero-bubble pipelines, the optimizer) has a cost of its own, beyond the
 *    per-call overhead;
 *  - simulated epochs of resnet:8, resnet:8:b under zb-h1 and a small gpt cost more virtual time
 *    than they did when those models' kernels were free;
 *  - `skein calibrate`'s kernel step fits every kernel in WORK from the shapes it records;
 *  - a table without the GEMMs' curves of cost by distance is refused with one line naming the file and field.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { calibrateKernels, recordStep } from "../engine/cli/calibrate-kernels.ts";
import type { KernelExports, Ptr } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../engine/memory/arena.ts";
import { Network } from "../engine/model/network.ts";
import { SCHEDULES } from "../engine/algorithms/pipeline/schedule.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { Rng } from "../engine/rng.ts";
import { wrapKernels } from "../engine/runtime/kernel-timer.ts";
import { defaultCostTable, kernelCostFunction, loadCostTable, type CostTable } from "../engine/runtime/costs.ts";
import { userErrorOf } from "./helpers.ts";
import { tempFolders } from "./tempdir.ts";
import { NEVER_CHARGED, WORK } from "../engine/runtime/kernel-work.ts";
import { train, type TrainConfig } from "../engine/train.ts";

/** The kernels the models of the residual-network and transformer work added, free before. */
const ADDED = [
  "conv2d_backward_input", "winograd_forward", "winograd_backward_input", "winograd_backward_weights",
  "batchnorm_forward", "batchnorm_backward", "shortcut_forward", "shortcut_backward", "global_avgpool_forward", "global_avgpool_backward",
  "embedding_forward", "embedding_backward", "next_token_labels", "layernorm_forward", "layernorm_backward", "layernorm_backward_params",
  "attention_forward", "attention_backward",
];

/** The default table with no per-call overhead and no jitter: what is left is each kernel's own cost. */
function ownCosts(): CostTable {
  return { ...defaultCostTable(), callSeconds: 0, jitter: 0 };
}

const freshDir = tempFolders("skein-costs-");

describe("which kernels the simulator charges", () => {
  test("a kernel's further terms are charged: Winograd pays for its weight transform, embedding backward for the rows it zeroes", () => {
    const t = { ...ownCosts(), contextFactor: 1 };
    for (const [name, args] of [
      ["winograd_forward", [64, 128, 192, 8, 16, 28, 28, 16, 256]],
      ["embedding_backward", [64, 128, 192, 256, 17, 4, 16, 32, 65, 0]],
    ] as [string, number[]][]) {
      const c = t.kernels[name]!;
      const w = WORK[name]!;
      expect(c.perMore?.length).toBe(w.more!.length);
      const expected = c.fixed + c.perUnit * w.work(args) + (c.perByte ?? 0) * (w.bytes?.(args) ?? 0) + w.more!.reduce((a, m, i) => a + c.perMore![i]! * m.of(args), 0);
      expect(kernelCostFunction(t, name)(args)).toBeCloseTo(expected, 15);
      expect(w.more!.some((m, i) => c.perMore![i]! * m.of(args) > 0)).toBe(true);
    }
  });

  test("every export of the kernel module is in WORK or NEVER_CHARGED, not both, and the lists name only exports", async () => {
    const { module } = await loadKernelModule();
    const exported = WebAssembly.Module.exports(module).filter((e) => e.kind === "function").map((e) => e.name).sort();
    const listed = [...Object.keys(WORK), ...Object.keys(NEVER_CHARGED)].sort();
    expect(Object.keys(WORK).filter((name) => name in NEVER_CHARGED)).toEqual([]);
    expect(exported.filter((name) => !listed.includes(name))).toEqual([]);
    expect(listed.filter((name) => !exported.includes(name))).toEqual([]);
  });

  test.each(["resnet:8", "resnet:8:b", "gpt:2-2-16-8"])("every kernel call of a %s step costs something of its own", async (spec) => {
    const gpt = spec.startsWith("gpt");
    const shape = gpt ? [1, 1, 9] : [1, 28, 28];
    const classes = gpt ? 27 : 10;
    const net = new Network(spec, shape, classes);
    const rows = 4;
    const planner = new ArenaPlanner();
    const params = planner.floats("parameters", "params", net.paramFloats);
    const grads = planner.floats("gradients", "grads", net.paramFloats);
    const moments = planner.floats("scratch", "moments", 2 * net.paramFloats);
    const ws = net.planWorkspace(planner, "ws", rows, { splitBackward: true });
    const memory = createSharedMemory(planner.finish());
    const { module } = await loadKernelModule();
    const k = instantiateKernels(module, memory);
    net.initialize(f32(memory, params, net.paramFloats), Rng.derive(1, "costs test"));
    const x = f32(memory, ws.input, rows * net.inputFloats);
    for (let i = 0; i < x.length; i++) x[i] = gpt ? i % classes : (i % 7) / 7;
    const calls: [string, number[]][] = [];
    const recorder = wrapKernels(k, (name, call, args) => (calls.push([name, args as number[]]), call()));
    recordStep(recorder, net, params, grads, ws, rows);
    recorder.momentum_update(params, grads, moments, net.paramFloats, 0.01, 0.9, 0, 0, 0);
    recorder.adam_update(params, grads, moments, moments + net.paramFloats * 4, net.paramFloats, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.001);
    const table = ownCosts();
    const free = calls.filter(([name, args]) => !(kernelCostFunction(table, name)(args) > 0)).map(([name, args]) => `${name}(${args.join(",")})`);
    expect(free).toEqual([]);
    // The step did call the kernels its model is made of (so the check above is not vacuous).
    const names = new Set(calls.map(([name]) => name));
    for (const name of gpt ? ["attention_backward", "layernorm_backward_params", "embedding_backward"] : ["winograd_backward_weights", "batchnorm_backward", "conv2d_backward_input"]) expect(names.has(name)).toBe(true);
  });
});

describe("simulated epochs of residual networks and transformers", () => {
  const base: TrainConfig = { algo: "sync", model: "resnet:8", data: "synthetic:32", epochs: 1, batch: 16, workers: 1, executor: "simulated", seed: 1, optimizer: defaultOptimizer("momentum") };
  const dir = freshDir();
  /** The default table with the added kernels free, as the simulator charged them before. */
  const before = join(dir, "before.json");
  const table = ownCosts();
  writeFileSync(before, JSON.stringify({ ...table, kernels: { ...table.kernels, ...Object.fromEntries(ADDED.map((name) => [name, { fixed: 0, perUnit: 0, perByte: 0, fitError: 0, shapes: 1 }])) } }));
  const now = join(dir, "now.json");
  writeFileSync(now, JSON.stringify(table));

  // With the added kernels free, a residual network's epoch was charged for its head, its
  // optimizer and its loss only: the convolutions and batch norms are most of its work. A small
  // transformer's dense maps are GEMMs, charged before too; attention and its layer norms add to them.
  test.each([
    ["resnet:8, sync", { model: "resnet:8" }, 2],
    ["resnet:8:b, zb-h1 on 2 stages", { algo: "1f1b", model: "resnet:8:b", workers: 2, pipeline: { stages: 2, microbatches: 2, schedule: SCHEDULES["zb-h1"]!(2, 2) } }, 2],
    ["gpt:2-2-16-8, sync", { model: "gpt:2-2-16-8", data: "text:names:8" }, 1.2],
  ] as [string, Partial<TrainConfig>, number][])("%s: more virtual time than with its kernels free", async (_, overrides, atLeast) => {
    const config = { ...base, ...overrides } as TrainConfig;
    const free = await train({ ...config, simulation: { costs: before, machine: "ideal" } });
    const charged = await train({ ...config, simulation: { costs: now, machine: "ideal" } });
    expect(charged.trainSeconds).toBeGreaterThan(atLeast * free.trainSeconds);
  });
});

describe("skein calibrate", () => {
  test("the kernel step fits every kernel in WORK, each from more than one shape", async () => {
    const fits = await calibrateKernels({ models: ["mlp:784-16-10", "lenet"], data: "digits", quick: true, say: () => {} });
    expect(Object.keys(fits).sort()).toEqual(Object.keys(WORK).sort());
    for (const [name, c] of Object.entries(fits)) expect([name, c.shapes > 1]).toEqual([name, true]);
  });
});

describe("the GEMMs' and streaming kernels' curves of cost by distance", () => {
  const kinds = [
    ...["gemm_nn", "gemm_nt", "gemm_tn"].map((name) => ({ name, whose: "the GEMMs'" })),
    ...["weighted_sum", "momentum_update", "copy"].map((name) => ({ name, whose: "the streaming kernels'" })),
  ];
  for (const { name, whose } of kinds) {
    test(`a table without memory.coldCurves.${name} is refused with one line`, () => {
      const t = JSON.parse(JSON.stringify(defaultCostTable())) as Record<string, any>;
      delete t.memory.coldCurves[name];
      const path = join(freshDir(), "costs.json");
      writeFileSync(path, JSON.stringify(t));
      const text = userErrorOf(() => loadCostTable(path));
      expect(text).toBe(`--costs ${path}: memory.coldCurves.${name}: missing (${whose} cost by how far their operands are; run skein calibrate again)`);
    });
  }
});
