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
import { defaultCostTable, kernelCostFunction, loadCostTable, warmCurves, type CostTable } from "../engine/runtime/costs.ts";
import { CacheTracker, curveAt, ringCallFootprint, STREAMING_KERNELS, STREAMING_OPERANDS, streamingFootprint, type StreamingKernel } from "../engine/runtime/cache-model.ts";
import { fit, fitByFootprint } from "../engine/cli/cost-fit.ts";
import { WARM_FOOTPRINTS } from "../engine/cli/calibrate-streaming.ts";
import fc from "fast-check";
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

/** The element count's position in each streaming kernel's arguments but weighted_sum's (the kernel ABI's). */
const WORK_ARG: Record<string, number> = {
  copy: 2, axpy: 2, scale: 1, fill_zero: 1, sgd_update: 2, momentum_update: 3, adam_update: 4, rmsprop_update: 3,
  predict_linear: 3, predict_nesterov: 4, predict_adam: 4, predict_rmsprop: 4, delay_compensate: 3, squared_distance: 2,
};

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

describe("the streaming kernels' warm cost by footprint", () => {
  const table = (edit: (t: Record<string, any>) => void) => {
    const t = JSON.parse(JSON.stringify(defaultCostTable())) as Record<string, any>;
    edit(t);
    const path = join(freshDir(), "costs.json");
    writeFileSync(path, JSON.stringify(t));
    return path;
  };
  const curve = "must be a non-empty list of increasing positive byte counts";
  const refused: [what: string, edit: (t: Record<string, any>) => void, line: string][] = [
    ["no warm curve", (t) => delete t.kernels.copy.warm, "kernels.copy.warm: missing (the streaming kernels' cost per byte by the call's footprint; run skein calibrate again)"],
    ["no two-input curve for weighted_sum", (t) => delete t.kernels.weighted_sum.warmTwoInputs, "kernels.weighted_sum.warmTwoInputs: missing (the streaming kernels' cost per byte by the call's footprint; run skein calibrate again)"],
    ["footprints out of order", (t) => t.kernels.axpy.warm.footprints.reverse(), `kernels.axpy.warm.footprints: ${curve}`],
    ["a rate short", (t) => t.kernels.momentum_update.warm.secondsPerByte.pop(), "kernels.momentum_update.warm.secondsPerByte: must be one number ≥ 0 per footprint"],
    ["a negative rate", (t) => (t.kernels.weighted_sum.warmTwoInputs.secondsPerByte[3] = -1e-12), "kernels.weighted_sum.warmTwoInputs.secondsPerByte: must be one number ≥ 0 per footprint"],
    ["a warm curve on a GEMM", (t) => (t.kernels.gemm_nn.warm = t.kernels.copy.warm), `kernels.gemm_nn.warm: only the streaming kernels (${STREAMING_KERNELS.join(", ")}) have a cost by footprint`],
    ["a two-input curve on copy", (t) => (t.kernels.copy.warmTwoInputs = t.kernels.copy.warm), "kernels.copy.warmTwoInputs: only weighted_sum has a cost for two inputs"],
  ];
  for (const [what, edit, line] of refused) {
    test(`a table with ${what} is refused with one line`, () => {
      const path = table(edit);
      expect(userErrorOf(() => loadCostTable(path))).toBe(`--costs ${path}: ${line}`);
    });
  }

  test("a call costs fixed + its footprint's bytes at the rate for that footprint; weighted_sum of two inputs by its own curve", () => {
    const t = { ...ownCosts(), contextFactor: 1 };
    fc.assert(
      fc.property(fc.constantFrom(...STREAMING_KERNELS), fc.integer({ min: 1, max: 1 << 22 }), fc.integer({ min: 2, max: 8 }), (name, n, parts) => {
        const args = name === "weighted_sum" ? [64, 128, 192, parts, n] : Array.from({ length: 13 }, (_, i) => (i === WORK_ARG[name] ? n : 64 * (i + 1)));
        const c = t.kernels[name]!;
        const f = streamingFootprint(name, args);
        const w = name === "weighted_sum" && parts === 2 ? c.warmTwoInputs! : c.warm!;
        expect(f).toBe(4 * n * (name === "weighted_sum" ? parts + 1 : STREAMING_OPERANDS[name as Exclude<StreamingKernel, "weighted_sum">]));
        expect(kernelCostFunction(t, name)(args)).toBeCloseTo(c.fixed + f * curveAt(w.footprints, w.secondsPerByte, f), 15);
      }),
    );
  });

  test("the fit recovers a per-byte rate that steps up with the footprint, which one affine rate cannot follow", () => {
    const knots = Array.from({ length: 8 }, (_, i) => 4096 << (2 * i)); // 4 KiB … 64 MiB, ×4 apart
    fc.assert(
      fc.property(
        fc.double({ min: 1e-8, max: 1e-6, noNaN: true }),
        fc.array(fc.double({ min: 2e-12, max: 1e-10, noNaN: true }), { minLength: knots.length, maxLength: knots.length }),
        (fixed, rates) => {
          // Timed at the knots, between them, and below the first (where only fixed and the first rate count).
          const footprints = [1024, 2048, ...knots, ...knots.slice(1).map((k) => k / 2)];
          const truth = (f: number) => fixed + f * curveAt(knots, rates, f);
          const c = fitByFootprint(footprints.map((footprint) => ({ footprint, seconds: truth(footprint) })), knots);
          expect(c.fitError).toBeLessThan(1e-6);
          for (const f of [3000, 300_000, 940_608 * 4, 50 << 20]) expect(c.fixed + f * curveAt(knots, c.warm!.secondsPerByte, f)).toBeCloseTo(truth(f), 12);
        },
      ),
    );
    // A rate that doubles where the footprint leaves a 1 MiB cache: the affine fit misses a 3.8 MB call
    // (a mixing step of the small model's vectors) by far more than the cost by footprint does.
    const step = (f: number) => 1e-7 + f * (f <= 1 << 20 ? 10e-12 : 20e-12);
    const sizes = [1024, 4096, 65536, 262144, 1 << 20, 2 << 20, 4 << 20, 16 << 20];
    const byFootprint = fitByFootprint(sizes.map((footprint) => ({ footprint, seconds: step(footprint) })), sizes);
    const affine = fit(sizes.map((footprint) => ({ work: footprint, seconds: step(footprint) })));
    const mix = 940_608 * 4;
    expect(Math.abs((byFootprint.fixed + mix * curveAt(sizes, byFootprint.warm!.secondsPerByte, mix)) / step(mix) - 1)).toBeLessThan(0.01);
    expect(Math.abs((affine.fixed + affine.perUnit * mix) / step(mix) - 1)).toBeGreaterThan(0.15);
  });

  test("warm cost and cache model together: a byte costs the warm rate at its own distance (up to the ring's call) plus the ring's curve beyond, counted once", () => {
    // A copy whose own two operands take F bytes, after `between` bytes of other work by the same
    // program. The warm cost prices F's own rate (which steps up at 1 MiB here); the cache model adds,
    // per operand, the warm rate's rise from F to the operand's distance, capped at the ring's call
    // (the core's own caches), and the ring's curve at the distance less at F (it is measured against
    // that call: 0 below twice its bytes). Ignoring the footprint (one rate) or the cap fails this.
    const knots = WARM_FOOTPRINTS;
    const rates = knots.map((f) => (f <= 48 << 10 ? 5e-12 : f <= 1 << 20 ? 8e-12 : 16e-12 + 1e-12 * Math.log2(f / (2 << 20))));
    const warm = { footprints: knots, secondsPerByte: rates };
    const base = defaultCostTable();
    const footprints = base.memory.footprints;
    const ringCall = ringCallFootprint("copy");
    const ring = footprints.map((f) => (f < 2 * ringCall ? 0 : 1e-12 * Math.log2(f / ringCall)));
    const memory = { ...base.memory, coldCurves: { ...base.memory.coldCurves, copy: ring } };
    const t = { ...base, contextFactor: 1, callSeconds: 0, memory, kernels: { ...base.kernels, copy: { ...base.kernels.copy!, fixed: 0, warm } } };
    const charged = (n: number, between: number) => {
      const planner = new ArenaPlanner();
      const a = planner.floats("parameters", "a", n);
      const b = planner.floats("gradients", "b", n);
      const other = planner.reserve("scratch", "other", Math.max(64, between));
      const plan = planner.finish();
      const tracker = new CacheTracker(t.memory, plan, null, warmCurves(t));
      const args = [b, a, n];
      const cost = () => kernelCostFunction(t, "copy")(args) + tracker.extraSeconds("copy", args, 4 * n);
      cost();
      tracker.extraSeconds("fill_zero", [other, Math.max(16, between / 4)], Math.max(64, between));
      const size = (name: string) => plan.regions.find((r) => r.name === name)!.bytes;
      // b was touched last, then the other work: b is that far back, a one region further.
      return { seconds: cost(), distances: [size("other") + size("b"), size("other") + size("b") + size("a")] };
    };
    const w = (bytes: number) => curveAt(knots, rates, bytes);
    fc.assert(
      fc.property(fc.integer({ min: 16 << 10, max: 1 << 20 }), fc.integer({ min: 0, max: 64 << 20 }), (n, between) => {
        const f = 8 * n;
        const { seconds, distances } = charged(n, between);
        const perByte = (d: number) => Math.max(0, w(Math.min(d, ringCall)) - w(Math.min(f, ringCall))) + Math.max(0, curveAt(footprints, ring, d) - curveAt(footprints, ring, f));
        expect(seconds / (f * w(f) + distances.reduce((s, d) => s + 4 * n * perByte(d), 0))).toBeCloseTo(1, 9);
      }),
    );
    // The ring's own call (0.94 MB an operand), its operands 32 MiB back: per byte exactly what the
    // ring measured there, the warm call plus its curve; the warm rate's rise beyond is not counted again.
    const n = ringCall / 8;
    const { seconds, distances } = charged(n, 32 << 20);
    expect(seconds / (ringCall * w(ringCall) + distances.reduce((s, d) => s + 4 * n * curveAt(footprints, ring, d), 0))).toBeCloseTo(1, 9);
    // A small call (128 KiB) whose operands its program pushed 3 MiB back: the rise of the warm rate
    // across the core's 1 MiB cache, up to the ring's call.
    const small = charged(16 << 10, 3 << 20);
    expect(small.seconds / small.distances.reduce((s, d) => s + (64 << 10) * (w(Math.min(d, ringCall)) + curveAt(footprints, ring, d)), 0)).toBeCloseTo(1, 9);
    expect(w(ringCall) / w(128 << 10)).toBeGreaterThan(1.8);
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
