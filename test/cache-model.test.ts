/**
 * The simulator's cache model (engine/runtime/cache-model.ts): a call pays for operands its program
 * has not touched for a while, by reuse distance over the arena's regions.
 *
 *  - the pointer positions it follows are the kernel ABI's, for every export;
 *  - an operand touched just before costs nothing extra; one touched before other regions costs more
 *    the more bytes were touched in between, up to the kernel's cost from memory, never less than 0;
 *  - the programs share one cache (the last level, shared by the cores); weighted_sum's inputs are followed through its pointer table;
 *  - an evicted GEMM operand pays by the GEMM's own curve at its distance, for that matrix's bytes alone;
 *  - an evicted input of a mixing step (weighted_sum) pays by that kernel's own curve, as a GEMM's does;
 *  - a streaming kernel's operand pays its warm rate's rise by the bytes its own program touched
 *    since (the core's own caches), not another program's;
 *  - a flat curve charges nothing;
 *  - the gather's rows come from an epoch ago: their distance is the data set plus everything the
 *    program has touched; they pay the gather's own cost from memory for the missed fraction;
 *  - a gossip run whose replicas outgrow the cache costs more virtual time under the measured curve
 *    than under a flat one, with the same weights (time, never numerics).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheTracker, POINTER_ARGS, ringCallFootprint, secondsPerByteAt, type MemoryModel } from "../engine/runtime/cache-model.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { defaultCostTable } from "../engine/runtime/costs.ts";
import { NEVER_CHARGED, WORK } from "../engine/runtime/kernel-work.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";
import { TrainingSession } from "../engine/train.ts";

const MiB = 1 << 20;
/** Cache up to 1 MiB (1 ps per byte), memory beyond 8 MiB (9 ps per byte). */
const curve: MemoryModel = { footprints: [MiB, 8 * MiB], secondsPerByte: [1e-12, 9e-12], coldSecondsPerByte: { copy: 16e-12, gather_batch: 400e-12 }, coldCurves: {}, gatherFootprint: MiB / 2 };

/** Regions a, b, c (parameters, gradients, optimizer state) of the given sizes, and a pointer table. */
function arena(sizes: number[]) {
  const planner = new ArenaPlanner();
  const kinds = ["parameters", "gradients", "optimizerState"] as const;
  const at = sizes.map((s, i) => planner.reserve(kinds[i % 3]!, `r${i}`, s));
  const table = planner.reserve("control", "table", 16);
  const data = planner.reserve("data", "samples", 4096);
  const plan = planner.finish();
  return { plan, at, table, data, memory: createSharedMemory(plan) };
}

describe("cache model", () => {
  test("the pointer positions are the kernel ABI's, for every export", () => {
    const abi = readFileSync(join(import.meta.dir, "../engine/kernels/abi.ts"), "utf8");
    const body = abi.slice(abi.indexOf("export interface KernelExports"));
    const declared: Record<string, number[]> = {};
    for (const m of body.matchAll(/^\s+([a-z_0-9]+)\(([^)]*)\):\s*[a-z]+;/gms)) {
      const args = m[2]!.split(",").map((s) => s.trim()).filter(Boolean);
      declared[m[1]!] = args.flatMap((a, i) => (/:\s*Ptr$/.test(a) ? [i] : []));
    }
    expect(Object.keys(declared).sort()).toEqual([...Object.keys(WORK), ...Object.keys(NEVER_CHARGED)].sort());
    expect(Object.fromEntries(Object.entries(POINTER_ARGS).map(([k, v]) => [k, [...v]]))).toEqual(declared);
  });

  test("an operand pays by how many bytes were touched since it was: nothing when just touched, the kernel's cost from memory when far", () => {
    const { plan, at, memory } = arena([MiB / 2, MiB / 2, 16 * MiB]);
    const [a, b, big] = at as [number, number, number];
    const t = new CacheTracker(curve, plan, memory);
    const n = MiB / 8; // floats: half a MiB per operand
    // First touch: both operands from memory.
    expect(t.extraSeconds("copy", [a, b, n], 4 * n)).toBeCloseTo(2 * (MiB / 2) * 16e-12 * ((9e-12 - secondsPerByteAt(curve, MiB)) / 8e-12), 15);
    // Again at once: in cache.
    expect(t.extraSeconds("copy", [a, b, n], 4 * n)).toBe(0);
    // After 16 MiB of other work: from memory again; axpy (not measured cold) pays the curve's span.
    t.extraSeconds("fill_zero", [big, 4 * MiB], 16 * MiB);
    expect(t.extraSeconds("axpy", [a, b, n, 1], 4 * n)).toBeCloseTo(2 * (MiB / 2) * 8e-12 * ((9e-12 - 1e-12) / 8e-12), 15);
  });

  test("an evicted GEMM operand pays by the GEMM's own curve at its distance, for its own bytes, not the call's", () => {
    // Regions: A (activations, just touched), W (a 784×256 weight matrix), C (the output), and 16 MiB between.
    const planner = new ArenaPlanner();
    const [M, K, N] = [64, 784, 256];
    const w = planner.reserve("parameters", "w", 4 * K * N + 4096);
    const x = planner.reserve("activations", "x", 4 * M * K);
    const y = planner.reserve("activations", "y", 4 * M * N);
    const big = planner.reserve("scratch", "big", 16 * MiB);
    const mid = planner.reserve("optimizerState", "mid", 2 * MiB);
    const plan = planner.finish();
    const memory = createSharedMemory(plan);
    // The GEMM's own curve: nothing at 1 MiB, 50 ps per byte from 8 MiB on (where axpy's rises only a little).
    const gemmCurve = [0, 50e-12];
    const model: MemoryModel = { ...curve, coldCurves: { gemm_nn: gemmCurve } };
    const args = [y, x, w, M, K, N, 0, 0];
    const callBytes = WORK.gemm_nn!.bytes!(args);
    const evictW = (t: CacheTracker) => {
      t.extraSeconds("gemm_nn", args, callBytes);
      t.extraSeconds("fill_zero", [big, 4 * MiB], 16 * MiB); // the other nodes' vectors push W out
      t.extraSeconds("copy", [x, y, M * N], 4 * M * N); // the activations are fresh again
      return t.extraSeconds("gemm_nn", args, callBytes);
    };
    // W alone is far: its K·N floats (not the call's bytes, nor its region's spare tail) at the curve's
    // value beyond 8 MiB, less its value at the call's own working set (where the GEMM was fitted).
    const own = 4 * (M * N + M * K + K * N);
    const near = 50e-12 * (Math.log(own / MiB) / Math.log(8));
    expect(evictW(new CacheTracker(model, plan, memory))).toBeCloseTo(4 * K * N * (50e-12 - near), 15);
    // 2 MiB touched in between instead: the curve in between, at W's distance (x, y, the 2 MiB and W's region).
    const t = new CacheTracker(model, plan, memory);
    t.extraSeconds("gemm_nn", args, callBytes);
    t.extraSeconds("fill_zero", [mid, MiB / 2], 2 * MiB);
    t.extraSeconds("copy", [x, y, M * N], 4 * M * N);
    const d = 4 * M * K + 4 * M * N + 2 * MiB + 4 * K * N + 4096;
    expect(t.extraSeconds("gemm_nn", args, callBytes)).toBeCloseTo(4 * K * N * 50e-12 * (Math.log(d / own) / Math.log(8)), 15);
    // Without a curve of its own, the GEMM pays the shared curve's missed share at its span.
    const missed = (9e-12 - secondsPerByteAt(curve, own)) / 8e-12;
    expect(evictW(new CacheTracker(curve, plan, memory))).toBeCloseTo(4 * K * N * 8e-12 * missed, 15);
  });

  test("an evicted input of a mixing step pays by weighted_sum's own curve at its distance, not the axpy curve's share", () => {
    // Inputs a, b (half a MiB each, through the pointer table), output c; 16 MiB or 2 MiB between calls.
    const { plan, at, table, memory } = arena([MiB / 2, MiB / 2, MiB / 2, 16 * MiB, 2 * MiB]);
    const [a, b, c, big, mid] = at as [number, number, number, number, number];
    new Int32Array(memory.buffer, table, 2).set([a, b]);
    const n = MiB / 8;
    const args = [c, table, table + 8, 2, n];
    // The mixing step's own curve: nothing at 1 MiB, 60 ps per byte from 8 MiB on.
    const model: MemoryModel = { ...curve, coldCurves: { weighted_sum: [0, 60e-12] } };
    const mixAfter = (t: CacheTracker, between: number) => {
      t.extraSeconds("weighted_sum", args, 4 * n);
      t.extraSeconds("fill_zero", [between, MiB / 4], MiB);
      return t.extraSeconds("weighted_sum", args, 4 * n);
    };
    const own = 3 * (MiB / 2); // the call's working set, where its cost was fitted
    const near = 60e-12 * (Math.log(own / MiB) / Math.log(8));
    // All three operands beyond 8 MiB: each its half MiB at the curve's far value, less its value at own.
    expect(mixAfter(new CacheTracker(model, plan, memory), big)).toBeCloseTo(3 * (MiB / 2) * (60e-12 - near), 15);
    // 2 MiB in between: each at the curve at its own distance (the regions touched since, itself
    // included). The call made c, a, b most recent in argument order: c is nearest, b furthest.
    const atDistance = (d: number) => 60e-12 * (Math.log(d / MiB) / Math.log(8)) - near;
    const distances = [2.5 * MiB, 3 * MiB, 3.5 * MiB];
    expect(mixAfter(new CacheTracker(model, plan, memory), mid)).toBeCloseTo((MiB / 2) * distances.reduce((s, d) => s + atDistance(d), 0), 15);
    // Without a curve of its own it pays the axpy curve's missed share at the span: far less here.
    const shared = mixAfter(new CacheTracker(curve, plan, memory), big);
    expect(shared).toBeCloseTo(3 * (MiB / 2) * 8e-12 * ((9e-12 - secondsPerByteAt(curve, own)) / 8e-12), 15);
  });

  test("extra cost never negative and grows with the bytes touched in between, by whichever program", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), (k1, k2) => {
        const { plan, at, memory } = arena([MiB / 4, MiB / 4, 16 * MiB]);
        const [a, b, big] = at as [number, number, number];
        // The bytes in between are another program's work: the cache is the one both use.
        const cost = (between: number) => {
          const t = new CacheTracker(curve, plan, memory);
          t.extraSeconds("copy", [a, b, MiB / 16], MiB / 4);
          t.extraSeconds("fill_zero", [big, between / 4], between);
          return t.extraSeconds("copy", [a, b, MiB / 16], MiB / 4);
        };
        const [lo, hi] = [Math.min(k1, k2), Math.max(k1, k2)].map((k) => (k * MiB) / 2);
        expect(cost(lo!)).toBeGreaterThanOrEqual(0);
        expect(cost(hi!)).toBeGreaterThanOrEqual(cost(lo!));
      }),
    );
  });

  test("weighted_sum's inputs are followed through its pointer table; the data set and control words are not tracked", () => {
    const { plan, at, table, data, memory } = arena([MiB / 2, MiB / 2, 16 * MiB]);
    const [a, b, big] = at as [number, number, number];
    const t = new CacheTracker(curve, plan, memory);
    new Int32Array(memory.buffer, table, 2).set([a, b]);
    t.extraSeconds("copy", [a, b, MiB / 8], MiB / 2);
    // a and b were just touched: only the output `big` is far (first touch)
    const mixed = t.extraSeconds("weighted_sum", [big, table, table + 8, 2, MiB / 8], MiB / 2);
    const alone = new CacheTracker(curve, plan, memory).extraSeconds("fill_zero", [big, MiB / 8], MiB / 2);
    expect(mixed).toBeGreaterThan(0);
    expect(mixed).toBeLessThan(3 * alone);
    expect(new CacheTracker(curve, plan, memory).extraSeconds("scale", [data, 1024, 1], 4096)).toBe(0);
  });

  test("the gather pays for rows from an epoch ago: data set plus the run's footprint, by the gather's own cost from memory", () => {
    // A data set of `dataMiB`, and regions of `touchedMiB` in all touched before.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 64 }), (dataMiB, touchedMiB, rows) => {
        const planner = new ArenaPlanner();
        const regions = Array.from({ length: touchedMiB }, (_, i) => planner.reserve("parameters", `p${i}`, MiB));
        const samples = planner.reserve("data", "samples", dataMiB * MiB);
        const labels = planner.reserve("data", "labels", 4096);
        const out = planner.reserve("activations", "batch", 64 * 784 * 4);
        const plan = planner.finish();
        const memory = createSharedMemory(plan);
        const t = new CacheTracker(curve, plan, memory);
        const gather = () => t.gatherSeconds([out, 0, samples, labels, 0, rows, 784, 1, 0]);
        const missed = (d: number) => Math.max(0, Math.min(1, (secondsPerByteAt(curve, d) - secondsPerByteAt(curve, MiB / 2)) / 8e-12));
        // Nothing touched yet: only the data set lies between two reads of a row.
        const first = gather();
        expect(first).toBeCloseTo(rows * 784 * 400e-12 * missed(dataMiB * MiB), 18);
        for (const r of regions) t.extraSeconds("scale", [r, MiB / 4, 1], MiB);
        expect(gather()).toBeCloseTo(rows * 784 * 400e-12 * missed((dataMiB + touchedMiB) * MiB), 18);
        // More touched never makes a gather cheaper.
        expect(gather()).toBeGreaterThanOrEqual(first);
      }),
    );
    // A data set and program beyond the curve's last size: every row from memory; a gather of rows
    // outside any data region (a token window, say) pays nothing beyond its fit.
    const { plan, at, data, memory } = arena([4 * MiB, 4 * MiB, 4 * MiB]);
    const [t, u] = [0, 1].map(() => new CacheTracker(curve, plan, memory)) as [CacheTracker, CacheTracker];
    for (const r of at) for (const c of [t, u]) c.extraSeconds("scale", [r, MiB, 1], 4 * MiB);
    const rowsFrom = (c: CacheTracker, samples: number) => c.extraSeconds("gather_batch", [at[0]!, 0, samples, 0, at[1]!, 64, 784, 1, 0], 64 * 784 * 4);
    // The same operands (output, indices) either way; the rows from the data set add 64 · 784 bytes from memory.
    expect(rowsFrom(t, data) - rowsFrom(u, 0)).toBeCloseTo(64 * 784 * 400e-12, 18);
    expect(t.gatherSeconds([at[0]!, 0, at[2]!, 0, at[1]!, 64, 784, 1, 0])).toBe(0);
  });

  test("the core's own caches see only its program's bytes: the warm rate's rise by distance counts what the program itself touched since", () => {
    // copy of two 128 KiB vectors whose warm rate doubles beyond 1 MiB; 3 MiB touched in between,
    // by the same program or by another (on another core). The curve by distance (the shared last
    // level) is flat here, so all that is charged is the rise across the core's own caches.
    const { plan, at, memory } = arena([MiB / 8, MiB / 8, 3 * MiB]);
    const [a, b, big] = at as [number, number, number];
    const warm = { copy: { footprints: [MiB, 2 * MiB], secondsPerByte: [8e-12, 16e-12] } };
    const model: MemoryModel = { ...curve, coldCurves: { copy: [0, 0], fill_zero: [0, 0] } };
    const again = (between: number) => {
      const t = new CacheTracker(model, plan, memory, warm);
      t.extraSeconds("copy", [b, a, MiB / 32], MiB / 8, 0);
      t.extraSeconds("fill_zero", [big, (3 * MiB) / 4], 3 * MiB, between);
      return t.extraSeconds("copy", [b, a, MiB / 32], MiB / 8, 0);
    };
    // Its own 3 MiB: each operand from beyond the core's 1 MiB, at the rate at its distance, capped at
    // the ring's call (1.88 MB), less the warm rate at its own 256 KiB that the kernel cost charged.
    const cap = ringCallFootprint("copy");
    const rate = (d: number) => 8e-12 + 8e-12 * Math.log2(Math.min(d, cap) / MiB);
    expect(again(0)).toBeCloseTo((MiB / 8) * 2 * (rate(cap) - 8e-12), 18);
    // Another program's 3 MiB: its core's caches still hold the operands; nothing to pay.
    expect(again(1)).toBe(0);
  });

  test("a flat curve charges nothing", () => {
    const { plan, at, memory } = arena([MiB, 16 * MiB]);
    const flat: MemoryModel = { footprints: [MiB, 8 * MiB], secondsPerByte: [2e-12, 2e-12], coldSecondsPerByte: { copy: 1e-11 }, coldCurves: {}, gatherFootprint: MiB };
    const t = new CacheTracker(flat, plan, memory);
    expect(t.extraSeconds("copy", [at[0]!, at[1]!, MiB / 4], MiB)).toBe(0);
  });

  test("gossip replicas beyond the cache cost virtual time under the measured curve, never numerics", async () => {
    const dir = mkdtempSync(join(tmpdir(), "skein-cache-"));
    const measured = defaultCostTable();
    // Flat: the shared curve and every kernel's own curve (the GEMMs', the streaming kernels') charge nothing by distance.
    const noCurves = Object.fromEntries(Object.entries(measured.memory.coldCurves).map(([name, c]) => [name, c.map(() => 0)]));
    const flat = { ...measured, memory: { ...measured.memory, secondsPerByte: measured.memory.secondsPerByte.map(() => measured.memory.secondsPerByte[0]!), coldCurves: noCurves } };
    const files = [measured, flat].map((table, i) => {
      const path = join(dir, `costs${i}.json`);
      writeFileSync(path, JSON.stringify(table));
      return path;
    });
    const config: TrainConfig = {
      algo: "dmsgd", model: "mlp:784-256-128-10", data: "synthetic:1024", epochs: 1, batch: 32, workers: 1,
      executor: "simulated", seed: 5, optimizer: defaultOptimizer("momentum"), gossip: { nodes: 8 },
    };
    const far = await trainAndRead({ ...config, simulation: { costs: files[0]! } });
    const near = await trainAndRead({ ...config, simulation: { costs: files[1]! } });
    expect(far.summary.trainSeconds).toBeGreaterThan(near.summary.trainSeconds * 1.01);
    expect(sameBits(far.params, near.params)).toBe(true);
  });

  test("the programs share the cache: two gossip workers pay for all eight replicas, as one worker does", async () => {
    // A curve whose step lies between one worker's half of the replicas and all of them (mlp: 0.94 MB a
    // vector, three per node): kept per program, P = 2 would see about half the distances, under the step.
    const dir = mkdtempSync(join(tmpdir(), "skein-cache-"));
    const base = defaultCostTable();
    // The step is weighted_sum's own curve; every other kernel's curve is flat (one value per footprint).
    const curvesFlat = Object.fromEntries(Object.keys(base.memory.coldCurves).map((name) => [name, [0, 0]]));
    const step = { ...base, jitter: 0, memory: { ...base.memory, footprints: [14 * MiB, 20 * MiB], secondsPerByte: [1e-11, 1e-11], coldCurves: { ...curvesFlat, weighted_sum: [0, 40e-12] } } };
    const flat = { ...step, memory: { ...step.memory, coldCurves: curvesFlat } };
    const mixingMs = async (table: object, workers: number) => {
      const path = join(dir, `costs-${workers}-${table === flat ? "flat" : "step"}.json`);
      writeFileSync(path, JSON.stringify(table));
      const session = await TrainingSession.open(
        {
          algo: "dmsgd", model: "mlp:784-256-128-10", data: "synthetic:1024", epochs: 2, batch: 32, workers,
          executor: "simulated", seed: 5, optimizer: defaultOptimizer("momentum"), gossip: { nodes: 8 },
          simulation: { costs: path, machine: "ideal" },
        },
        { profileKernels: true },
      );
      try {
        await session.trainEpoch();
        const outcome = await session.trainEpoch();
        return outcome.results.reduce((a, r) => a + (r.kernelMsByName?.weighted_sum ?? 0), 0);
      } finally {
        session.close();
      }
    };
    const extra1 = (await mixingMs(step, 1)) - (await mixingMs(flat, 1));
    const extra2 = (await mixingMs(step, 2)) - (await mixingMs(flat, 2));
    expect(extra1).toBeGreaterThan(0);
    expect(extra2).toBeGreaterThan(0.8 * extra1);
  });
});
