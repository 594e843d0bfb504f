/**
 * Runtime pieces on their own: the arena's plan, the work splits, and the deterministic executor's
 * barrier and deadlock detection.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { alignedSliceOf, shardOf } from "../engine/runtime/split.ts";
import { ALIGN, ArenaPlanner, bytesByKind, REGION_KINDS, type RegionKind } from "../engine/memory/arena.ts";
import { Control, planControl } from "../engine/runtime/control.ts";
import { interleave } from "../engine/runtime/deterministic.ts";
import { Rng } from "../engine/rng.ts";
import type { Blocked, RoleProgram } from "../engine/runtime/sync.ts";

describe("arena plan", () => {
  test("regions are aligned, disjoint, above the null line, and add up", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...REGION_KINDS), fc.integer({ min: 0, max: 100_000 })), { maxLength: 40 }), (asks) => {
        const planner = new ArenaPlanner();
        for (const [kind, bytes] of asks) planner.reserve(kind as RegionKind, "r", bytes);
        const plan = planner.finish();
        let end = ALIGN; // pointer 0 means "absent": nothing lives in the first cache line
        for (const r of plan.regions) {
          expect(r.offset % ALIGN).toBe(0);
          expect(r.offset).toBeGreaterThanOrEqual(end);
          expect(r.bytes).toBeGreaterThanOrEqual(r.requested);
          expect(r.bytes - r.requested).toBeLessThan(ALIGN);
          end = r.offset + r.bytes;
        }
        expect(plan.usedBytes).toBe(end);
        const byKind = bytesByKind(plan);
        expect(Object.values(byKind).reduce((a, b) => a + b, 0)).toBe(end - ALIGN);
      }),
    );
  });
});

describe("work splits", () => {
  test("shardOf covers 0..count exactly once, sizes differ by at most one", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 64 }), (count, parts) => {
        let next = 0;
        const sizes: number[] = [];
        for (let p = 0; p < parts; p++) {
          const { lo, hi } = shardOf(count, parts, p);
          expect(lo).toBe(next);
          next = hi;
          sizes.push(hi - lo);
        }
        expect(next).toBe(count);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }),
    );
  });

  test("alignedSliceOf covers the vector with 64-byte aligned slices", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 64 }), (floats, parts) => {
        let next = 0;
        for (let p = 0; p < parts; p++) {
          const { lo, hi } = alignedSliceOf(floats, parts, p);
          expect(lo).toBe(next);
          if (hi > lo) expect(lo % 16).toBe(0); // empty trailing slices may sit at the end
          next = hi;
        }
        expect(next).toBe(floats);
      }),
    );
  });
});

describe("deterministic executor", () => {
  /** Cooperative barrier over plain fields, as the executor's programs see it. */
  function* barrier(state: { arrived: number; generation: number; arrivals: number }, parties: number): Generator<Blocked, void, void> {
    const generation = state.generation;
    state.arrivals++;
    if (++state.arrived === parties) {
      state.arrived = 0;
      state.generation++;
      return;
    }
    while (state.generation === generation) yield { waitingFor: "barrier" };
  }

  test("a barrier holds everyone until the last arrives, in every interleaving", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), fc.integer(), (parties, rounds, seed) => {
        const state = { arrived: 0, generation: 0, arrivals: 0 };
        const log: string[] = [];
        function* program(id: number): RoleProgram<number> {
          for (let r = 0; r < rounds; r++) {
            log.push(`${r}`);
            yield* barrier(state, parties);
          }
          return id;
        }
        const results = interleave(Array.from({ length: parties }, (_, i) => program(i)), Rng.derive(seed, "t"), () => state.arrivals);
        expect(results).toEqual(Array.from({ length: parties }, (_, i) => i));
        // Round r+1 never starts before every program finished round r.
        for (let r = 0; r < rounds; r++) expect(log.slice(r * parties, (r + 1) * parties)).toEqual(Array(parties).fill(`${r}`));
      }),
    );
  });

  test("a barrier that can never fill is reported as a deadlock, not a hang", () => {
    const state = { arrived: 0, generation: 0, arrivals: 0 };
    function* waiter(): RoleProgram<void> {
      yield* barrier(state, 3); // three parties, two programs
    }
    expect(() => interleave([waiter(), waiter()], Rng.derive(1, "t"), () => state.arrivals)).toThrow(/deadlock/);
  });

  test("a program that throws is reported with its worker index", () => {
    function* ok(): RoleProgram<void> {}
    function* bad(): RoleProgram<void> {
      throw new Error("boom");
    }
    expect(() => interleave([ok(), bad()], Rng.derive(1, "t"), () => 0)).toThrow(/worker 1 failed during run: boom/);
  });
});

describe("control block", () => {
  test("stop flag is visible through the shared words", () => {
    const planner = new ArenaPlanner();
    const layout = planControl(planner, 2);
    const pages = Math.ceil(planner.finish().usedBytes / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const a = new Control(memory, layout, 2);
    const b = new Control(memory, layout, 2);
    expect(b.stopRequested).toBe(false);
    a.requestStop();
    expect(b.stopRequested).toBe(true);
  });
});
