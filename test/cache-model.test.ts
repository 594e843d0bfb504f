/**
 * The simulator's cache model (engine/runtime/cache-model.ts): a call pays for operands its program
 * has not touched for a while, by reuse distance over the arena's regions.
 *
 *  - the pointer positions it follows are the kernel ABI's, for every export;
 *  - an operand touched just before costs nothing extra; one touched before other regions costs more
 *    the more bytes were touched in between, up to the kernel's cost from memory, never less than 0;
 *  - each program has its own cache; weighted_sum's inputs are followed through its pointer table;
 *  - a flat curve charges nothing;
 *  - a gossip run whose replicas outgrow the cache costs more virtual time under the measured curve
 *    than under a flat one, with the same weights (time, never numerics).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheTracker, POINTER_ARGS, secondsPerByteAt, type MemoryModel } from "../engine/runtime/cache-model.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { defaultCostTable, WORK, NEVER_CHARGED } from "../engine/runtime/costs.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import type { TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const MiB = 1 << 20;
/** Cache up to 1 MiB (1 ps per byte), memory beyond 8 MiB (9 ps per byte). */
const curve: MemoryModel = { footprints: [MiB, 8 * MiB], secondsPerByte: [1e-12, 9e-12], coldSecondsPerByte: { copy: 16e-12 } };

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
    const t = new CacheTracker(curve, plan, 1, memory);
    const n = MiB / 8; // floats: half a MiB per operand
    // First touch: both operands from memory.
    expect(t.extraSeconds(0, "copy", [a, b, n], 4 * n)).toBeCloseTo(2 * (MiB / 2) * 16e-12 * ((9e-12 - secondsPerByteAt(curve, MiB)) / 8e-12), 15);
    // Again at once: in cache.
    expect(t.extraSeconds(0, "copy", [a, b, n], 4 * n)).toBe(0);
    // After 16 MiB of other work: from memory again; axpy (not measured cold) pays the curve's span.
    t.extraSeconds(0, "fill_zero", [big, 4 * MiB], 16 * MiB);
    expect(t.extraSeconds(0, "axpy", [a, b, n, 1], 4 * n)).toBeCloseTo(2 * (MiB / 2) * 8e-12 * ((9e-12 - 1e-12) / 8e-12), 15);
  });

  test("extra cost never negative and grows with the bytes touched in between; each program has its own cache", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), (k1, k2) => {
        const { plan, at, memory } = arena([MiB / 4, MiB / 4, 16 * MiB]);
        const [a, b, big] = at as [number, number, number];
        const cost = (between: number, program: number) => {
          const t = new CacheTracker(curve, plan, 2, memory);
          t.extraSeconds(program, "copy", [a, b, MiB / 16], MiB / 4);
          t.extraSeconds(0, "fill_zero", [big, between / 4], between); // program 0's work in between
          return t.extraSeconds(program, "copy", [a, b, MiB / 16], MiB / 4);
        };
        const [lo, hi] = [Math.min(k1, k2), Math.max(k1, k2)].map((k) => (k * MiB) / 2);
        expect(cost(lo!, 0)).toBeGreaterThanOrEqual(0);
        expect(cost(hi!, 0)).toBeGreaterThanOrEqual(cost(lo!, 0));
        expect(cost(hi!, 1)).toBe(0); // program 1 touched nothing in between
      }),
    );
  });

  test("weighted_sum's inputs are followed through its pointer table; the data set and control words are not tracked", () => {
    const { plan, at, table, data, memory } = arena([MiB / 2, MiB / 2, 16 * MiB]);
    const [a, b, big] = at as [number, number, number];
    const t = new CacheTracker(curve, plan, 1, memory);
    new Int32Array(memory.buffer, table, 2).set([a, b]);
    t.extraSeconds(0, "copy", [a, b, MiB / 8], MiB / 2);
    // a and b were just touched: only the output `big` is far (first touch)
    const mixed = t.extraSeconds(0, "weighted_sum", [big, table, table + 8, 2, MiB / 8], MiB / 2);
    const alone = new CacheTracker(curve, plan, 1, memory).extraSeconds(0, "fill_zero", [big, MiB / 8], MiB / 2);
    expect(mixed).toBeGreaterThan(0);
    expect(mixed).toBeLessThan(3 * alone);
    expect(new CacheTracker(curve, plan, 1, memory).extraSeconds(0, "scale", [data, 1024, 1], 4096)).toBe(0);
  });

  test("a flat curve charges nothing", () => {
    const { plan, at, memory } = arena([MiB, 16 * MiB]);
    const flat: MemoryModel = { footprints: [MiB, 8 * MiB], secondsPerByte: [2e-12, 2e-12], coldSecondsPerByte: { copy: 1e-11 } };
    const t = new CacheTracker(flat, plan, 1, memory);
    expect(t.extraSeconds(0, "copy", [at[0]!, at[1]!, MiB / 4], MiB)).toBe(0);
  });

  test("gossip replicas beyond the cache cost virtual time under the measured curve, never numerics", async () => {
    const dir = mkdtempSync(join(tmpdir(), "skein-cache-"));
    const measured = defaultCostTable();
    const flat = { ...measured, memory: { ...measured.memory, secondsPerByte: measured.memory.secondsPerByte.map(() => measured.memory.secondsPerByte[0]!) } };
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
});
