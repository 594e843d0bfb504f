/**
 * The simulated executor: the deterministic executor's programs on virtual clocks.
 *
 *  - reproducible: same seed and cost model → bitwise the same weights and the same virtual times;
 *  - one program: the simulated executor is the deterministic one, bitwise;
 *  - causal: no clock runs backwards; a waiting program never resumes before the event that woke it,
 *    nor a barrier before its last arrival;
 *  - calibrated structure: GPipe and 1F1B with equal stage costs spend the schedule's bubble
 *    (D−1)/(M+D−1) idle, as the schedule simulator says;
 *  (The cost terms and the table's loader: test/simulated-costs.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { callSecondsFor, defaultCostTable, slowdown, type CostTable, type KernelCost } from "../engine/runtime/costs.ts";
import { isStreamingKernel } from "../engine/runtime/cache-model.ts";
import { WORK } from "../engine/runtime/kernel-work.ts";
import { SimulatedSync, SimulationState, simulate } from "../engine/runtime/simulated.ts";
import { Control, planControl } from "../engine/runtime/control.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { Rng } from "../engine/rng.ts";
import type { RoleProgram } from "../engine/runtime/sync.ts";
import { gpipe, oneFOneB } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate as simulateSchedule } from "../engine/algorithms/pipeline/simulate.ts";
import { summarizeStaleness } from "../engine/algorithms/async/staleness.ts";
import { SUITES } from "../engine/experiments/suites.ts";
import { algorithmNamed } from "../engine/algorithms/registry.ts";
import { simulatedBase } from "./simulated-fixtures.ts";
import { tempFolders } from "./tempdir.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const base = simulatedBase;
const tmp = tempFolders("skein-simulated-");

/** Every family, small: the configurations the properties draw from. */
const anyAlgorithm = fc.oneof(
  fc.record({ algo: fc.constant("sync"), workers: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ algo: fc.constant("hogwild"), workers: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ algo: fc.constant("lap"), workers: fc.constant(4), async: fc.record({ replicas: fc.constantFrom(2, 4), avgEvery: fc.integer({ min: 1, max: 3 }) }) }),
  fc.record({ algo: fc.constant("layerwise"), async: fc.record({ fwdThreads: fc.integer({ min: 1, max: 2 }), bwdThreads: fc.integer({ min: 1, max: 3 }), queue: fc.integer({ min: 1, max: 3 }) }) }),
  fc.record({ algo: fc.constantFrom("gpipe", "1f1b", "pipedream", "pipeoptim"), pipeline: fc.record({ stages: fc.integer({ min: 1, max: 3 }), microbatches: fc.integer({ min: 1, max: 4 }) }) }),
  fc.record({ algo: fc.constantFrom("pmsgd", "dmsgd", "decentlam"), workers: fc.integer({ min: 1, max: 4 }), gossip: fc.constant({ nodes: 4 }) }),
);

/** The program count the CLI would derive (layerwise: its threads; pipelines: their stages). */
function withWorkers(c: Partial<TrainConfig>): TrainConfig {
  const config = { ...base, ...c } as TrainConfig;
  if (c.algo === "layerwise") config.workers = (c.async!.fwdThreads ?? 1) + (c.async!.bwdThreads ?? 2);
  if (c.pipeline) config.workers = c.pipeline.stages!;
  return config;
}

describe("reproducible in virtual time", () => {
  test("same seed and cost table → bitwise the same weights and the same virtual times, every family", async () => {
    await fc.assert(
      fc.asyncProperty(anyAlgorithm, fc.integer({ min: 0, max: 1000 }), async (c, seed) => {
        const config = withWorkers({ ...c, seed });
        const epochs: number[][] = [[], []];
        const a = await trainAndRead(config, { onEpoch: (m) => epochs[0]!.push(m.trainSeconds, m.elapsedSeconds) });
        const b = await trainAndRead(config, { onEpoch: (m) => epochs[1]!.push(m.trainSeconds, m.elapsedSeconds) });
        expect(sameBits(a.params, b.params)).toBe(true);
        expect(epochs[1]).toEqual(epochs[0]!);
        expect(a.summary.trainSeconds).toBeGreaterThan(0);
        expect(a.summary.simulated).toBe(true);
      }),
      { numRuns: 12 },
    );
  });

  test("one program: the simulated executor is the deterministic one, bitwise", async () => {
    const onePrograms = fc.oneof(
      fc.record({ algo: fc.constantFrom("sync", "hogwild", "lap", "lpp"), workers: fc.constant(1) }),
      fc.record({ algo: fc.constantFrom("gpipe", "1f1b", "pipedream"), pipeline: fc.record({ stages: fc.constant(1), microbatches: fc.integer({ min: 1, max: 4 }) }) }),
      fc.record({ algo: fc.constantFrom("pmsgd", "dmsgd", "decentlam"), workers: fc.constant(1), gossip: fc.record({ nodes: fc.integer({ min: 1, max: 4 }) }) }),
    );
    await fc.assert(
      fc.asyncProperty(onePrograms, fc.integer({ min: 0, max: 1000 }), async (c, seed) => {
        const config = withWorkers({ ...c, seed, epochs: 2 });
        const simulated = await trainAndRead(config);
        const deterministic = await trainAndRead({ ...config, executor: "deterministic" });
        expect(sameBits(simulated.params, deterministic.params)).toBe(true);
      }),
      { numRuns: 8 },
    );
  });

  test("the network costs time, never numerics: sync over 10 GbE is slower than in shared memory, with the same weights", async () => {
    const config = { ...base, workers: 4 };
    const shm = await trainAndRead(config);
    const ethernet = await trainAndRead({ ...config, simulation: { network: "10gbe" } });
    expect(sameBits(ethernet.params, shm.params)).toBe(true);
    // 4 workers, 8 steps: 8 ring all-reduces of the model, 2·3 messages each, 25 µs apiece at least.
    expect(ethernet.summary.trainSeconds - shm.summary.trainSeconds).toBeGreaterThan(8 * 6 * 25e-6);
  });

  test("a simulated trace is in virtual microseconds: every span lies inside the run's virtual time", async () => {
    const dir = tmp();
    const summary = await train({ ...base, algo: "hogwild", workers: 3 }, { out: dir });
    const { traceEvents } = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8")) as { traceEvents: { ph: string; ts?: number; dur?: number; tid: number }[] };
    const spans = traceEvents.filter((e) => e.ph === "X");
    expect(new Set(spans.map((e) => e.tid)).size).toBe(3);
    for (const e of spans) {
      expect(e.ts!).toBeGreaterThanOrEqual(0);
      expect(e.ts! + e.dur!).toBeLessThanOrEqual(summary.seconds * 1e6 * (1 + 1e-9));
    }
  });
});

/** Programs that compute, wake counters, wait on each other's counters and meet at barriers. */
interface Plan {
  rounds: { compute: number; wakes: boolean; waits: boolean }[];
}

/** Two simulated programs on an ideal machine with free wakes, and one i32 word of shared memory between them. */
function twoPrograms() {
  const planner = new ArenaPlanner();
  const controlLayout = planControl(planner, 2);
  const word = planner.reserve("control", "shared", 4);
  const memory = createSharedMemory(planner.finish());
  const control = new Control(memory, controlLayout, 2);
  const model = { table: { ...defaultCostTable(), wakeSeconds: 0 }, machine: "ideal" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
  const state = new SimulationState(2);
  const syncs = [0, 1].map((i) => new SimulatedSync(state, i, 2, control, model, memory)) as [SimulatedSync, SimulatedSync];
  return { word, memory, model, state, syncs };
}

describe("causality", () => {
  test("no clock runs backwards; no wait resumes before its waker's event, no barrier before its last arrival", () => {
    const roundOf = fc.record({ compute: fc.double({ min: 0, max: 1, noNaN: true }), wakes: fc.boolean(), waits: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(fc.array(roundOf, { minLength: 3, maxLength: 3 }), { minLength: 2, maxLength: 5 }).map((programs) => programs.map((rounds): Plan => ({ rounds }))),
        fc.integer({ min: 0, max: 1e6 }),
        fc.constantFrom("ideal" as const, "measured" as const),
        (plans, seed, machine) => {
          const P = plans.length;
          const planner = new ArenaPlanner();
          const controlLayout = planControl(planner, P);
          const counters = planner.reserve("control", "counters", P * 4);
          const memory = createSharedMemory(planner.finish());
          const control = new Control(memory, controlLayout, P);
          const model = { table: defaultCostTable(), machine, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
          const state = new SimulationState(P);
          const syncs = plans.map((_, i) => new SimulatedSync(state, i, P, control, model, memory));
          const words = new Int32Array(memory.buffer, counters, P);
          /** Per counter: the virtual time at which it reached each value. */
          const reached: number[][] = plans.map(() => [0]);
          const violations: string[] = [];
          const arrivals: number[][] = [];
          function* program(i: number): RoleProgram<void> {
            const sync = syncs[i]!;
            for (let r = 0; r < 3; r++) {
              const round = plans[i]!.rounds[r]!;
              sync.compute(round.compute);
              if (round.wakes || r === 2) {
                sync.wake(counters + i * 4);
                reached[i]!.push(sync.now);
              }
              // Wait for the previous program's wakes of rounds 0..r (it makes them before barrier r, and
              // program 0 never waits, so there is no cycle).
              if (round.waits && i > 0) {
                const need = plans[i - 1]!.rounds.slice(0, r + 1).filter((q, j) => q.wakes || j === 2).length;
                for (let seen = Atomics.load(words, i - 1); seen < need; seen = Atomics.load(words, i - 1)) yield* sync.waitChange(counters + (i - 1) * 4, seen, "peer");
                sync.observe(counters + (i - 1) * 4);
                if (need > 0 && !(sync.now >= reached[i - 1]![need]!)) violations.push(`program ${i} resumed at ${sync.now} before its waker's wake at ${reached[i - 1]![need]}`);
              }
              (arrivals[r] ??= []).push(sync.now);
              yield* sync.barrier();
              if (sync.now < Math.max(...arrivals[r]!)) violations.push(`program ${i} left barrier ${r} at ${sync.now} before an arrival at ${Math.max(...arrivals[r]!)}`);
            }
          }
          /** Every step of every program: its clock never decreases. */
          function* watched(i: number): RoleProgram<void> {
            const inner = program(i);
            let last = state.clocks[i]!;
            for (;;) {
              const step = inner.next();
              if (state.clocks[i]! < last) violations.push(`program ${i}'s clock went back from ${last} to ${state.clocks[i]}`);
              last = state.clocks[i]!;
              if (step.done) return;
              yield step.value;
            }
          }
          simulate(plans.map((_, i) => watched(i)), state, model, Rng.derive(seed, "test"), "test", new Float64Array(P));
          expect(violations).toEqual([]);
          // Every program leaves the last barrier at its release (the latest arrival), those that slept
          // there a wake-up later.
          const release = Math.max(...arrivals[2]!);
          for (const t of state.clocks) expect(Math.min(Math.abs(t - release), Math.abs(t - release - model.table.wakeSeconds))).toBeLessThan(1e-12);
        },
      ),
      { numRuns: 200 },
    );
  });

  test("a write after computation lands at the writer's virtual time: a reader whose clock is behind it sees the old value", () => {
    // The writer computes for c_i, then writes; the reader computes for d_j, then reads. Writes happen at
    // whole times and reads at half times, so no read and write tie: a read must see exactly the writes
    // made before its time, however far the writer's steps ran ahead of the reader's clock.
    const costs = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(costs, costs, fc.integer({ min: 0, max: 1e6 }), (writes, reads, seed) => {
        const { word, memory, model, state, syncs } = twoPrograms();
        const [writerSync, readerSync] = syncs;
        const shared = new Int32Array(memory.buffer, word, 1);
        const writeTimes: number[] = [];
        const seen: { at: number; value: number }[] = [];
        function* writer(): RoleProgram<void> {
          for (const c of writes) {
            writerSync.compute(c);
            yield* writerSync.virtualPoint();
            shared[0]!++;
            writeTimes.push(writerSync.now);
          }
        }
        function* reader(): RoleProgram<void> {
          for (const [j, d] of reads.entries()) {
            readerSync.compute(j === 0 ? d + 0.5 : d);
            yield* readerSync.virtualPoint();
            seen.push({ at: readerSync.now, value: shared[0]! });
          }
        }
        simulate([writer(), reader()], state, model, Rng.derive(seed, "test"), "test", new Float64Array(2));
        for (const { at, value } of seen) expect(`read at ${at}: ${value}`).toBe(`read at ${at}: ${writeTimes.filter((t) => t < at).length}`);
      }),
      { numRuns: 300 },
    );
  });

  test("a flag set by a wake and stored back to 0 between rounds releases each round's waiter at that round's wake", () => {
    // Sync's block lines: the owner computes, then wakes the flag 0 → 1; a waiter resumes at the wake's
    // time (or its own clock, if later); between two barriers the flag is stored back to 0.
    const costs = fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(costs, fc.integer({ min: 0, max: 1e6 }), (rounds, seed) => {
        const { word, memory, model, state, syncs } = twoPrograms();
        const [ownerSync, waiterSync] = syncs;
        const flag = new Int32Array(memory.buffer, word, 1);
        const woken: number[] = [];
        const resumed: { at: number; own: number }[] = [];
        function* owner(): RoleProgram<void> {
          for (const [c] of rounds) {
            ownerSync.compute(c);
            ownerSync.wake(word);
            woken.push(ownerSync.now);
            yield* ownerSync.barrier();
            Atomics.store(flag, 0, 0);
            yield* ownerSync.barrier();
          }
        }
        function* waiter(): RoleProgram<void> {
          for (const [, d] of rounds) {
            waiterSync.compute(d);
            const own = waiterSync.now;
            yield* waiterSync.waitChange(word, 0, "the flag");
            resumed.push({ at: waiterSync.now, own });
            yield* waiterSync.barrier();
            yield* waiterSync.barrier();
          }
        }
        simulate([owner(), waiter()], state, model, Rng.derive(seed, "test"), "test", new Float64Array(2));
        resumed.forEach(({ at, own }, r) => expect(`round ${r}: ${at}`).toBe(`round ${r}: ${Math.max(own, woken[r]!)}`));
      }),
      { numRuns: 200 },
    );
  });

  test("contention: k programs computing at once each run k / speedup(k) slower; beyond the cores they take turns", () => {
    const table: CostTable = { ...defaultCostTable(), machine: { cores: 2, speedup: [1, 1.25] } };
    const measured = { table, machine: "measured" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
    expect(slowdown(measured, 1)).toBe(1);
    expect(slowdown(measured, 2)).toBeCloseTo(2 / 1.25, 12);
    expect(slowdown(measured, 8)).toBeCloseTo(8 / 1.25, 12);
    expect(slowdown({ ...measured, machine: "ideal" }, 8)).toBe(1);
  });

  test("the time around each call is the measured one for the programs computing at once, and costs time, never numerics", async () => {
    const table: CostTable = { ...defaultCostTable(), machine: { cores: 2, speedup: [1, 1.5] }, callSeconds: 1e-6, callSecondsAt: [1e-6, 3e-6] };
    const measured = { table, machine: "measured" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
    expect(callSecondsFor(measured, 1)).toBe(1e-6);
    expect(callSecondsFor(measured, 2)).toBe(3e-6);
    expect(callSecondsFor(measured, 8)).toBeCloseTo(3e-6 * 4, 15); // beyond the cores: in turn
    expect(callSecondsFor({ ...measured, machine: "ideal" }, 8)).toBe(1e-6);
    expect(callSecondsFor({ ...measured, table: { ...table, callSecondsAt: undefined } }, 2)).toBeCloseTo(1e-6 * (2 / 1.5), 15);
    // A role measured on its own has its own figures; any other role the general ones.
    const byRole = { ...measured, table: { ...table, callSecondsByRole: { dmsgd: [2e-6, 5e-6] } } };
    expect(callSecondsFor(byRole, 2, "dmsgd")).toBe(5e-6);
    expect(callSecondsFor(byRole, 1, "dmsgd")).toBe(2e-6);
    expect(callSecondsFor(byRole, 2, "sync")).toBe(3e-6);
    expect(callSecondsFor(byRole, 2)).toBe(3e-6);
    // Every call pays its program 1 ms of busy time more, whatever the interleaving; the weights stay.
    const dir = tmp();
    const run = async (at: number[]) => {
      const path = join(dir, `costs-${at.join("-")}.json`);
      writeFileSync(path, JSON.stringify({ ...defaultCostTable(), jitter: 0, callSeconds: 0, callSecondsAt: at, callSecondsByRole: {} }));
      const session = await TrainingSession.open({ ...base, algo: "hogwild", workers: 2, simulation: { costs: path } });
      try {
        const calls = (session.executor as unknown as { kernelCalls: number }).kernelCalls;
        const e = await session.trainEpoch();
        const busy = e.results.reduce((a, r) => a + r.elapsedMs - r.waitedMs, 0) / 1000;
        return { busy, calls: (session.executor as unknown as { kernelCalls: number }).kernelCalls - calls, params: session.params().slice() };
      } finally {
        session.close();
      }
    };
    const free = await run([0, 0]);
    const paid = await run([1e-3, 1e-3]);
    expect(paid.calls).toBe(free.calls);
    expect(paid.busy - free.busy).toBeCloseTo(paid.calls * 1e-3, 6);
    expect(sameBits(paid.params, free.params)).toBe(true);
  });
});

/** A table where only the GEMMs of dense layers cost: forward f, weight gradient b per call, nothing else, and exactly that (no jitter). */
function equalStageTable(f: number, b: number): CostTable {
  const t = defaultCostTable();
  // Free: the streaming kernels too, whose cost is per byte by footprint.
  const free = { footprints: [1], secondsPerByte: [0] };
  const kernels = Object.fromEntries(
    Object.keys(WORK).map((name) => [name, { fixed: 0, perUnit: 0, fitError: 0, shapes: 1, ...(isStreamingKernel(name) ? { warm: free } : {}), ...(name === "weighted_sum" ? { warmTwoInputs: free } : {}) }]),
  ) as Record<string, KernelCost>;
  kernels.gemm_nn = { fixed: f, perUnit: 0, fitError: 0, shapes: 1 };
  kernels.gemm_tn = { fixed: b, perUnit: 0, fitError: 0, shapes: 1 };
  return { ...t, wakeSeconds: 0, callSeconds: 0, contextFactor: 1, jitter: 0, runSeconds: 0, helperLoad: 0, kernels };
}

describe("staleness in virtual time", () => {
  test("layerwise, 1 forward and 1 backward thread: a layer is stale exactly when the forward reads it before the backward's update of it", async () => {
    // Four dense layers; a forward GEMM costs f, a weight-gradient GEMM b > f, nothing else costs. In
    // steady state both threads start a batch together at T (the forward waits for the slot the
    // backward frees): the forward reads dense layer d at T + d·f, the backward writes it after the
    // gradients of layers 3..d, at T + (4 − d)·b. Stale iff d·f < (4 − d)·b: layers 0, 1 and 2 (2f < 2b),
    // not layer 3 (3f > b). A simulator that shows the update from the start of the backward's step,
    // T + (3 − d)·b, would make layer 2 fresh (2f > b).
    const dir = tmp();
    const [f, b] = [1e-3, 1.7e-3];
    const costs = join(dir, "forward-backward.json");
    writeFileSync(costs, JSON.stringify(equalStageTable(f, b)));
    const config: TrainConfig = { ...base, algo: "layerwise", model: "mlp:784-16-16-16-10", data: "synthetic:320", batch: 16, workers: 2, async: { fwdThreads: 1, bwdThreads: 1, queue: 2 }, simulation: { costs, machine: "ideal" } };
    const session = await TrainingSession.open(config);
    try {
      const e = await session.trainEpoch();
      const perLayer = summarizeStaleness(e.staleness!).map((l) => l.mean);
      const batches = e.staleness!.layers[0]!.applied;
      expect(batches).toBeGreaterThan(10);
      const stale = (batches - 1) / batches; // the first batch has no update before it
      for (const [d, mean] of perLayer.entries()) expect(`dense ${d}: ${mean.toFixed(3)}`).toBe(`dense ${d}: ${(d * f < (4 - d) * b ? stale : 0).toFixed(3)}`);
    } finally {
      session.close();
    }
  });
});

describe("pipelines in virtual time", () => {
  test("GPipe and 1F1B with equal stage costs idle the schedule's bubble (D−1)/(M+D−1), to 1%", async () => {
    const dir = tmp();
    const [f, b] = [1e-3, 2e-3];
    const costs = join(dir, "equal-stages.json");
    writeFileSync(costs, JSON.stringify(equalStageTable(f, b)));
    for (const [algo, schedule] of [["gpipe", gpipe], ["1f1b", oneFOneB]] as const) {
      for (const D of [2, 3, 4]) {
        for (const M of [1, 2, 4, 8]) {
          // One dense layer per stage: D layers of equal forward and backward cost.
          const model = `mlp:784-${Array.from({ length: D - 1 }, () => 16).join("-")}-10`;
          const batches = 4;
          const config: TrainConfig = { ...base, algo, model, data: `synthetic:${batches * 8 * M}`, batch: 8 * M, workers: D, pipeline: { stages: D, microbatches: M }, simulation: { costs, machine: "ideal" } };
          const summary = await train(config);
          const busyPerStage = batches * M * (f + b);
          const bubble = 1 - busyPerStage / summary.trainSeconds;
          const expected = (D - 1) / (M + D - 1);
          expect(Math.abs(bubble - expected)).toBeLessThan(0.01);
          expect(Math.abs(bubble - simulateSchedule(schedule(D, M), { f, b }).bubbleFraction)).toBeLessThan(0.01);
        }
      }
    }
  });
});

describe("the scaling suite", () => {
  test("every run is simulated, its algorithm accepts it, and its program count is what the algorithm derives", () => {
    for (const mode of ["quick", "full"] as const) {
      for (const { label, config } of SUITES.scaling[mode].runs) {
        expect(config.executor).toBe("simulated");
        const algorithm = algorithmNamed(config.algo);
        algorithm.check?.({ ...config, seed: 1 });
        const programs = algorithm.programs({ ...config, seed: 1 });
        expect(`${label}: ${programs}`).toBe(`${label}: ${config.workers}`);
      }
    }
  });
});
