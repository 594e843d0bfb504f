/**
 * Runtime pieces on their own: the arena's plan, the work splits, and the engine's synchronisation
 * primitives — the cooperative barrier, waits and wakes of the deterministic executor, the shared
 * queue, the control block — under the seeded scheduler (fast-check draws the scheduler seed: there the
 * seed IS the interleaving under test), and ThreadSync's barrier and the queue on real workers.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { alignedSliceOf, shardOf } from "../engine/runtime/split.ts";
import { ALIGN, ArenaPlanner, bytesByKind, createSharedMemory, REGION_KINDS, type RegionKind } from "../engine/memory/arena.ts";
import { epochOrderOf, publishEpochOrder } from "../engine/runtime/epoch-order.ts";
import type { DataLayout, RoleContext } from "../engine/runtime/context.ts";
import { epochOrder } from "../engine/data/order.ts";
import { Control, CONTROL_LINE_WORDS, planControl, StopRequested, WORD } from "../engine/runtime/control.ts";
import { CooperativeSync, interleave, type SchedulerState } from "../engine/runtime/deterministic.ts";
import { fillQueueWithIndices, planQueue, SharedQueue } from "../engine/runtime/queue.ts";
import { Rng } from "../engine/rng.ts";
import { runToEnd, ThreadSync, type RoleProgram } from "../engine/runtime/sync.ts";
import { RunError } from "../engine/errors.ts";
import type { SyncJob } from "./fixtures/sync-worker.ts";

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

/** A shared memory holding a control block (and whatever else `plan` reserves), as a run has. */
function sharedRun<T>(parties: number, plan: (planner: ArenaPlanner) => T = () => undefined as T) {
  const planner = new ArenaPlanner();
  const layout = planControl(planner, parties);
  const extra = plan(planner);
  const pages = Math.ceil(planner.finish().usedBytes / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  return { memory, layout, control: new Control(memory, layout, parties), extra };
}

/** The deterministic executor's state and one CooperativeSync per program, as DeterministicExecutor builds them. */
function cooperative(parties: number, memory: WebAssembly.Memory, control: Control) {
  const state: SchedulerState = { arrived: 0, generation: 0, progress: 0 };
  const syncs = Array.from({ length: parties }, () => new CooperativeSync(state, parties, control, memory));
  return { state, syncs, progress: () => state.progress };
}

/** Scheduler seeds: the interleaving under test (nothing to shrink in it but the seed itself). */
const schedulerSeed = fc.integer();

describe("cooperative barrier (deterministic executor)", () => {
  test("holds everyone until the last arrives, round after round, in every interleaving", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 }), schedulerSeed, (parties, rounds, seed) => {
        const { memory, control } = sharedRun(parties);
        const { state, syncs, progress } = cooperative(parties, memory, control);
        const log: number[] = [];
        function* program(id: number): RoleProgram<number> {
          for (let r = 0; r < rounds; r++) {
            log.push(r);
            yield* syncs[id]!.barrier();
          }
          return id;
        }
        const results = interleave(Array.from({ length: parties }, (_, i) => program(i)), Rng.derive(seed, "barrier"), progress);
        expect(results).toEqual(Array.from({ length: parties }, (_, i) => i));
        // Round r+1 never starts before every program finished round r.
        expect(log).toEqual(Array.from({ length: rounds * parties }, (_, i) => Math.floor(i / parties)));
        // Reusable: one generation per round, nobody left counted as arrived.
        expect(state.generation).toBe(rounds);
        expect(state.arrived).toBe(0);
      }),
    );
  });

  test("a barrier that can never fill is reported as a deadlock, not a hang", () => {
    const { memory, control } = sharedRun(3);
    const { syncs, progress } = cooperative(3, memory, control); // three parties, two programs
    function* waiter(id: number): RoleProgram<void> {
      yield* syncs[id]!.barrier();
    }
    expect(() => interleave([waiter(0), waiter(1)], Rng.derive(1, "t"), progress)).toThrow(/deadlock: programs 0, 1 all wait \(barrier\)/);
  });

  test("the stop flag releases programs blocked in a barrier, though it never fills", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), schedulerSeed, (parties, seed) => {
        const { memory, control } = sharedRun(parties);
        const { syncs, progress } = cooperative(parties, memory, control);
        let stopped = 0;
        function* waiter(id: number): RoleProgram<void> {
          try {
            yield* syncs[id]!.barrier();
          } catch (e) {
            if (e instanceof StopRequested) stopped++;
            return; // a program that saw the stop flag ends (the pool reports the peer's error)
          }
          throw new Error("left a barrier its failed peer never reached");
        }
        function* failing(): RoleProgram<void> {
          control.requestStop();
        }
        interleave([...Array.from({ length: parties - 1 }, (_, i) => waiter(i)), failing()], Rng.derive(seed, "stop"), progress);
        // Every waiter was released by the flag, none by the barrier filling.
        expect(stopped).toBe(parties - 1);
      }),
    );
  });

  test("a program that throws is reported with its worker index", () => {
    function* ok(): RoleProgram<void> {}
    function* bad(): RoleProgram<void> {
      throw new Error("boom");
    }
    expect(() => interleave([ok(), bad()], Rng.derive(1, "t"), () => 0)).toThrow(RunError);
    expect(() => interleave([ok(), bad()], Rng.derive(1, "t"), () => 0)).toThrow(/worker 1 failed during run: boom/);
  });
});

describe("waitChange and wake (deterministic executor)", () => {
  test("a waiter resumes only after the word it read has been woken, and sees every wake", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 4 }), schedulerSeed, (wakes, pointsBetween, seed) => {
        const { memory, control, extra: word } = sharedRun(2, (p) => p.reserve("control", "word", 4));
        const { syncs, progress } = cooperative(2, memory, control);
        const view = new Int32Array(memory.buffer, word, 1);
        const events: string[] = [];
        function* waker(): RoleProgram<void> {
          for (let i = 0; i < wakes; i++) {
            for (let p = 0; p < pointsBetween; p++) yield* syncs[0]!.point();
            events.push(`wake ${i + 1}`);
            syncs[0]!.wake(word);
          }
        }
        function* waiter(): RoleProgram<void> {
          let seen = 0;
          while (seen < wakes) {
            yield* syncs[1]!.waitChange(word, seen, "the word");
            seen = Atomics.load(view, 0);
            events.push(`saw ${seen}`);
          }
        }
        interleave([waker(), waiter()], Rng.derive(seed, "wake"), progress);
        expect(Atomics.load(view, 0)).toBe(wakes);
        // Each "saw n" comes after "wake n" and the values seen only grow, ending at `wakes`.
        const seen = events.filter((e) => e.startsWith("saw")).map((e) => Number(e.split(" ")[1]));
        for (const n of seen) expect(events.indexOf(`saw ${n}`)).toBeGreaterThan(events.indexOf(`wake ${n}`));
        expect(seen).toEqual([...seen].sort((a, b) => a - b));
        expect(seen.at(-1)).toBe(wakes);
      }),
    );
  });
});

describe("shared queue (deterministic executor)", () => {
  test("every item pushed is popped exactly once, in order per producer, tickets 0..n−1, never over capacity", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 }), schedulerSeed, (producers, consumers, capacity, perProducer, seed) => {
        const parties = producers + consumers;
        const { memory, control, extra: layout } = sharedRun(parties, (p) => planQueue(p, "q", capacity));
        const { syncs, progress } = cooperative(parties, memory, control);
        const total = producers * perProducer;
        const got: { item: number; ticket: number }[] = [];
        let claimed = 0;
        let overCapacity = 0;
        function* producer(p: number): RoleProgram<void> {
          const queue = new SharedQueue(memory, layout, syncs[p]!);
          for (let i = 0; i < perProducer; i++) {
            yield* queue.push(p * 1000 + i);
            if (queue.length > capacity) overCapacity++;
          }
        }
        function* consumer(c: number): RoleProgram<void> {
          const queue = new SharedQueue(memory, layout, syncs[producers + c]!);
          while (claimed < total) {
            claimed++;
            got.push(yield* queue.pop());
          }
        }
        const programs = [...Array.from({ length: producers }, (_, p) => producer(p)), ...Array.from({ length: consumers }, (_, c) => consumer(c))];
        interleave(programs, Rng.derive(seed, "queue"), progress);
        expect(overCapacity).toBe(0);
        expect(got.map((g) => g.ticket).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
        const byTicket = [...got].sort((a, b) => a.ticket - b.ticket).map((g) => g.item);
        for (let p = 0; p < producers; p++) {
          expect(byTicket.filter((x) => Math.floor(x / 1000) === p)).toEqual(Array.from({ length: perProducer }, (_, i) => p * 1000 + i));
        }
      }),
    );
  });

  test("a full queue holds its producer until a consumer makes room", () => {
    const { memory, control, extra: layout } = sharedRun(2, (p) => planQueue(p, "q", 2));
    const { syncs, progress } = cooperative(2, memory, control);
    const events: string[] = [];
    function* producer(): RoleProgram<void> {
      const queue = new SharedQueue(memory, layout, syncs[0]!);
      for (let i = 0; i < 3; i++) {
        yield* queue.push(i);
        events.push(`pushed ${i}`);
      }
    }
    function* consumer(): RoleProgram<void> {
      const queue = new SharedQueue(memory, layout, syncs[1]!);
      // let the producer run into the full queue first
      for (let i = 0; i < 20; i++) yield* syncs[1]!.point();
      events.push("popping");
      for (let i = 0; i < 3; i++) yield* queue.pop();
    }
    interleave([producer(), consumer()], Rng.derive(3, "full"), progress);
    expect(events.indexOf("pushed 2")).toBeGreaterThan(events.indexOf("popping"));
  });

  test("a free list starts full, holding 0..n−1", () => {
    const { memory, control, extra: layout } = sharedRun(1, (p) => planQueue(p, "q", 5));
    const { syncs } = cooperative(1, memory, control);
    fillQueueWithIndices(memory, layout, 5);
    const queue = new SharedQueue(memory, layout, syncs[0]!);
    expect(queue.length).toBe(5);
    expect(Array.from({ length: 5 }, () => runToEnd(queue.pop()))).toEqual([0, 1, 2, 3, 4].map((i) => ({ item: i, ticket: i })));
  });
});

describe("control block", () => {
  test("the stop flag and the counters are the same words for every view of the memory", () => {
    const { memory, layout, control: a } = sharedRun(2);
    const b = new Control(memory, layout, 2);
    expect(b.stopRequested).toBe(false);
    a.add(WORD.claimNext, 5);
    a.add(WORD.claimNext, 7);
    expect(b.read(WORD.claimNext)).toBe(12);
    b.reset(WORD.claimNext);
    expect(a.read(WORD.claimNext)).toBe(0);
    a.report(0, 1.5, 5);
    a.report(1, 2.5, 7);
    expect(b.samplesDone()).toBe(12);
    expect(b.lossSum()).toBe(4);
    b.resetProgress();
    expect(a.samplesDone()).toBe(0);
    a.requestStop();
    expect(b.stopRequested).toBe(true);
  });
});

describe("control block layout", () => {
  test("every shared word has a cache line of its own, and so does each worker's progress", () => {
    const words = Object.entries(WORD).filter(([name]) => name !== "count").map(([, w]) => w).sort((x, y) => x - y);
    for (let i = 1; i < words.length; i++) expect(words[i]! - words[i - 1]!).toBeGreaterThanOrEqual(CONTROL_LINE_WORDS);
    expect(WORD.count).toBeGreaterThan(words.at(-1)!);
    const { memory, layout, control } = sharedRun(3);
    expect(layout.words % 64).toBe(0);
    expect(layout.progress % 64).toBe(0);
    // A worker's report writes only its own 64-byte line.
    const bytes = new Uint8Array(memory.buffer, layout.progress, 3 * 64);
    control.report(1, 3.25, 9);
    bytes.forEach((v, i) => {
      if (v !== 0) expect(Math.floor(i / 64)).toBe(1);
    });
  });
});

describe("ThreadSync and the queue on real workers", () => {
  /** Runs one job per worker and resolves when all report back; a worker's error fails the test. */
  async function onWorkers(jobs: SyncJob[]): Promise<void> {
    const workers = jobs.map(() => new Worker(new URL("./fixtures/sync-worker.ts", import.meta.url)));
    try {
      const done = workers.map(
        (w, i) =>
          new Promise<void>((resolve, reject) => {
            w.onmessage = (e: MessageEvent<{ ok: boolean; message?: string }>) => (e.data.ok ? resolve() : reject(new Error(`worker ${i}: ${e.data.message}`)));
            w.onerror = (e) => reject(new Error(`worker ${i}: ${e.message}`));
          }),
      );
      workers.forEach((w, i) => w.postMessage(jobs[i]));
      await Promise.all(done);
    } finally {
      for (const w of workers) w.terminate();
    }
  }

  function threadRun(parties: number, rounds: number, capacity: number, total: number) {
    return sharedRun(parties, (p) => ({
      queue: planQueue(p, "q", capacity),
      arrivals: p.reserve("control", "arrivals", (rounds + 1) * 4),
      violations: p.reserve("control", "violations", 4),
      claimed: p.reserve("control", "claimed", 4),
      byTicket: p.reserve("control", "byTicket", total * 4),
    }));
  }

  test("the barrier holds every thread until the last arrives, 200 rounds", async () => {
    const parties = 3, rounds = 200;
    const { memory, layout, extra } = threadRun(parties, rounds, 1, 1);
    const job = (id: number): SyncJob => ({ kind: "barrier", memory, control: layout, parties, id, rounds, perProducer: 0, total: 0, ...extra });
    await onWorkers(Array.from({ length: parties }, (_, id) => job(id)));
    expect(new Int32Array(memory.buffer, extra.violations, 1)[0]).toBe(0);
    expect(Array.from(new Int32Array(memory.buffer, extra.arrivals, rounds))).toEqual(new Array(rounds).fill(parties));
  });

  test("two producers, two consumers: every item popped once, per-producer order kept, tickets 0..n−1", async () => {
    const producers = 2, consumers = 2, perProducer = 300, capacity = 3;
    const parties = producers + consumers, total = producers * perProducer;
    const { memory, layout, extra } = threadRun(parties, 0, capacity, total);
    const job = (kind: SyncJob["kind"], id: number): SyncJob => ({ kind, memory, control: layout, parties, id, rounds: 0, perProducer, total, ...extra });
    await onWorkers([...Array.from({ length: producers }, (_, p) => job("producer", p)), ...Array.from({ length: consumers }, (_, c) => job("consumer", c))]);
    expect(new Int32Array(memory.buffer, extra.violations, 1)[0]).toBe(0);
    const byTicket = Array.from(new Int32Array(memory.buffer, extra.byTicket, total), (v) => v - 1);
    expect([...byTicket].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i));
    for (let p = 0; p < producers; p++) {
      const mine = byTicket.filter((x) => Math.floor(x / perProducer) === p);
      expect(mine).toEqual(Array.from({ length: perProducer }, (_, i) => p * perProducer + i));
    }
  });

  test("a barrier no peer reaches ends in an error after the timeout; the stop flag ends it at once", () => {
    const { memory, control } = sharedRun(2);
    expect(() => runToEnd(new ThreadSync(control, 2, memory, 100).barrier())).toThrow(/did not reach the barrier within 0.1 s/);
    control.requestStop();
    expect(() => runToEnd(new ThreadSync(control, 2, memory, 60_000).barrier())).toThrow(StopRequested);
  });
});

describe("the epoch order the session publishes", () => {
  test("a program reads the published order only for the epoch it is marked with, and draws any other itself", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), (count, seed, published, asked) => {
        const planner = new ArenaPlanner();
        const layout = planControl(planner, 1);
        const order = planner.reserve("data", "order", count * 4);
        const memory = createSharedMemory(planner.finish());
        const control = new Control(memory, layout, 1);
        const data = { order, trainCount: count } as DataLayout;
        publishEpochOrder(memory, data, control, seed, published);
        const ctx = { memory, control, setup: { data, seed } } as unknown as RoleContext;
        const got = epochOrderOf(ctx, asked);
        expect([...got]).toEqual([...epochOrder(count, seed, asked)]);
        // The published epoch is read from the arena; any other is a fresh array.
        expect(got.buffer === memory.buffer).toBe(asked === published);
      }),
      { numRuns: 60 },
    );
  });
});
