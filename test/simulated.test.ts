/**
 * The simulated executor: the deterministic executor's programs on virtual clocks.
 *
 *  - reproducible: same seed and cost model → bitwise the same weights and the same virtual times;
 *  - one program: the simulated executor is the deterministic one, bitwise;
 *  - causal: no clock runs backwards; a waiting program never resumes before the event that woke it,
 *    nor a barrier before its last arrival;
 *  - calibrated structure: GPipe and 1F1B with equal stage costs spend the schedule's bubble
 *    (D−1)/(M+D−1) idle, as the schedule simulator says;
 *  - the cost table loader refuses a malformed table with one line (exit 2 from the CLI).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { UserError } from "../engine/errors.ts";
import { callSecondsFor, checkCostTable, defaultCostTable, helperSecondsFor, loadCostTable, slowdown, type CostTable } from "../engine/runtime/costs.ts";
import { WORK } from "../engine/runtime/kernel-work.ts";
import { SimulatedSync, SimulationState, simulate } from "../engine/runtime/simulated.ts";
import { Control, planControl } from "../engine/runtime/control.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { Rng } from "../engine/rng.ts";
import type { RoleProgram } from "../engine/runtime/sync.ts";
import { gpipe, oneFOneB } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate as simulateSchedule } from "../engine/algorithms/pipeline/simulate.ts";
import { fit } from "../engine/cli/cost-fit.ts";
import { overallStaleness, summarizeStaleness } from "../engine/algorithms/async/staleness.ts";
import { SUITES } from "../engine/experiments/suites.ts";
import { algorithmNamed } from "../engine/algorithms/registry.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-24-16-10",
  data: "synthetic:256",
  epochs: 1,
  batch: 32,
  workers: 1,
  executor: "simulated",
  seed: 3,
  optimizer: defaultOptimizer("momentum"),
};

const tmp = () => mkdtempSync(join(tmpdir(), "skein-simulated-"));

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
        const planner = new ArenaPlanner();
        const controlLayout = planControl(planner, 2);
        const word = planner.reserve("control", "shared", 4);
        const memory = createSharedMemory(planner.finish());
        const control = new Control(memory, controlLayout, 2);
        const model = { table: { ...defaultCostTable(), wakeSeconds: 0 }, machine: "ideal" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
        const state = new SimulationState(2);
        const [writerSync, readerSync] = [0, 1].map((i) => new SimulatedSync(state, i, 2, control, model, memory));
        const shared = new Int32Array(memory.buffer, word, 1);
        const writeTimes: number[] = [];
        const seen: { at: number; value: number }[] = [];
        function* writer(): RoleProgram<void> {
          for (const c of writes) {
            writerSync!.compute(c);
            yield* writerSync!.virtualPoint();
            shared[0]!++;
            writeTimes.push(writerSync!.now);
          }
        }
        function* reader(): RoleProgram<void> {
          for (const [j, d] of reads.entries()) {
            readerSync!.compute(j === 0 ? d + 0.5 : d);
            yield* readerSync!.virtualPoint();
            seen.push({ at: readerSync!.now, value: shared[0]! });
          }
        }
        simulate([writer(), reader()], state, model, Rng.derive(seed, "test"), "test", new Float64Array(2));
        for (const { at, value } of seen) expect(`read at ${at}: ${value}`).toBe(`read at ${at}: ${writeTimes.filter((t) => t < at).length}`);
      }),
      { numRuns: 300 },
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

describe("time outside the kernels, by role, and the executor's own call", () => {
  const dir = tmp();
  const run = async (algo: string, extra: Partial<CostTable>) => {
    const path = join(dir, `costs-${algo}-${JSON.stringify(extra).replace(/\W/g, "")}.json`);
    writeFileSync(path, JSON.stringify({ ...defaultCostTable(), jitter: 0, callSeconds: 0, callSecondsAt: [0, 0], callSecondsByRole: {}, runSeconds: 0, helperLoad: 0, ...extra }));
    const session = await TrainingSession.open({ ...base, algo, workers: 2, ...(algo === "dmsgd" ? { gossip: { nodes: 4 } } : {}), simulation: { costs: path } });
    try {
      const calls = (session.executor as unknown as { kernelCalls: number }).kernelCalls;
      const e = await session.trainEpoch();
      const busy = e.results.reduce((a, r) => a + r.elapsedMs - r.waitedMs, 0) / 1000;
      return { seconds: e.seconds, busy, calls: (session.executor as unknown as { kernelCalls: number }).kernelCalls - calls, params: session.params().slice() };
    } finally {
      session.close();
    }
  };

  test("a role measured on its own pays its own figure around each call; other roles the general one", async () => {
    const free = await run("dmsgd", {});
    const own = await run("dmsgd", { callSecondsByRole: { dmsgd: [1e-3, 1e-3] } });
    expect(own.calls).toBe(free.calls);
    // (to a µs: the order the programs' steps interleave in moves what the cache model charges)
    expect(own.busy - free.busy).toBeCloseTo(own.calls * 1e-3, 5);
    expect(sameBits(own.params, free.params)).toBe(true);
    // sync is not dmsgd: the same times as without the entry.
    expect(await run("sync", { callSecondsByRole: { dmsgd: [1e-3, 1e-3] } })).toEqual(await run("sync", {}));
  });

  test("every call of the executor (an epoch) costs its runSeconds beyond its programs, and never numerics", async () => {
    const free = await run("sync", {});
    const paid = await run("sync", { runSeconds: 0.25 });
    expect(paid.seconds - free.seconds).toBeCloseTo(0.25, 12);
    expect(paid.busy).toBeCloseTo(free.busy, 12);
    expect(sameBits(paid.params, free.params)).toBe(true);
  });
});

describe("the process's helper threads", () => {
  test("they cost only where every core computes, a share of the helpers' load per program", () => {
    const table: CostTable = { ...defaultCostTable(), machine: { cores: 2, speedup: [1, 1.8] }, helperLoad: 0.1 };
    const measured = { table, machine: "measured" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
    expect(helperSecondsFor(measured, 1)).toBe(0); // a core is idle: they run there
    expect(helperSecondsFor(measured, 2)).toBeCloseTo(0.05, 15);
    expect(helperSecondsFor(measured, 8)).toBeCloseTo(0.1 / 8, 15);
    expect(helperSecondsFor({ ...measured, machine: "ideal" }, 8)).toBe(0);
  });

  test("on a machine whose every core computes they take their load from the programs a slice at a time, and barrier-coupled programs all wait for the one they preempt; with a core idle they cost nothing", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 2 }), fc.double({ min: 0.01, max: 0.09, noNaN: true }), (seed, programs, load) => {
        // Steps of 1 ms between barriers, slices of 0.1 ms, helpers of a few percent of a core (as
        // measured: 3–5%), so that at most one slice falls in a step; two cores that do not slow each other.
        const table: CostTable = { ...defaultCostTable(), machine: { cores: 2, speedup: [1, 2] }, wakeSeconds: 0, helperLoad: load, helperSliceSeconds: 1e-4 };
        const model = { table, machine: "measured" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
        const planner = new ArenaPlanner();
        const controlLayout = planControl(planner, programs);
        const memory = createSharedMemory(planner.finish());
        const control = new Control(memory, controlLayout, programs);
        const state = new SimulationState(programs);
        const syncs = Array.from({ length: programs }, (_, w) => new SimulatedSync(state, w, programs, control, model, memory));
        const steps = 200;
        function* program(w: number): RoleProgram<void> {
          for (let i = 0; i < steps; i++) {
            syncs[w]!.compute(1e-3);
            yield* syncs[w]!.barrier();
          }
        }
        const ended = new Float64Array(programs);
        simulate(syncs.map((_, w) => program(w)), state, model, Rng.derive(seed, "test"), "test", ended);
        const makespan = Math.max(...ended);
        const work = steps * 1e-3;
        if (programs === 1) return expect(makespan).toBeCloseTo(work, 12); // the helpers have the idle core
        // 2 programs: `load` of a core per second of their computing comes out of them, in all about
        // load × work; each slice holds up both at the next barrier, so the run takes about that much
        // longer (spread evenly over both programs it would take half as much).
        const extra = (makespan - work) / (load * work);
        expect(extra).toBeGreaterThan(0.9); // less only by the slice not yet due at the end
        expect(extra).toBeLessThan(1 + 1e-9);
      }),
      { numRuns: 40 },
    );
  });

  test("they cost time, never numerics: the same weights with and without them, and the same times for the same seed", async () => {
    const dir = tmp();
    const run = async (helperLoad: number) => {
      const costs = join(dir, `helpers-${helperLoad}.json`);
      // Slices short enough that some fall due in this short epoch.
      writeFileSync(costs, JSON.stringify({ ...defaultCostTable(), machine: { cores: 2, speedup: [1, 2] }, helperLoad, helperSliceSeconds: 5e-6 }));
      const session = await TrainingSession.open({ ...base, algo: "dmsgd", workers: 2, gossip: { nodes: 4 }, simulation: { costs } });
      try {
        const e = await session.trainEpoch();
        return { seconds: e.seconds, params: session.params().slice() };
      } finally {
        session.close();
      }
    };
    const free = await run(0);
    const paid = await run(0.2);
    expect(paid.seconds).toBeGreaterThan(free.seconds);
    expect(sameBits(paid.params, free.params)).toBe(true);
    expect(await run(0.2)).toEqual(paid);
  });
});

describe("jitter", () => {
  test("equal programs leave lockstep only with jitter: Hogwild!'s staleness at P = 2 is 1/2 without, more with (as real threads measure), and the same seed gives the same times", async () => {
    const dir = tmp();
    const run = async (jitter: number) => {
      const costs = join(dir, `jitter-${jitter}.json`);
      // The helpers' timeslices would break the lockstep too: this is about jitter alone.
      writeFileSync(costs, JSON.stringify({ ...defaultCostTable(), jitter, helperLoad: 0 }));
      const session = await TrainingSession.open({ ...base, algo: "hogwild", model: "mlp:784-256-128-10", data: "synthetic:2048", workers: 2, simulation: { costs } });
      try {
        const e = await session.trainEpoch();
        return { seconds: e.seconds, staleness: overallStaleness(summarizeStaleness(e.staleness!)).mean };
      } finally {
        session.close();
      }
    };
    const still = await run(0);
    // In lockstep each layer's update finds the peer's update of it after every other read: 0, 1, 0, 1, …
    expect(still.staleness).toBeCloseTo(0.5, 2);
    const jittered = await run(0.05);
    expect(jittered.staleness).toBeGreaterThan(0.55);
    expect(await run(0.05)).toEqual(jittered);
  });
});

/** A table where only the GEMMs of dense layers cost: forward f, weight gradient b per call, nothing else, and exactly that (no jitter). */
function equalStageTable(f: number, b: number): CostTable {
  const t = defaultCostTable();
  const kernels = Object.fromEntries(Object.keys(WORK).map((name) => [name, { fixed: 0, perUnit: 0, fitError: 0, shapes: 1 }]));
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

describe("the cost table", () => {
  const good = () => JSON.parse(JSON.stringify(defaultCostTable())) as Record<string, any>;
  const broken: [string, (t: Record<string, any>) => unknown, RegExp][] = [
    ["wrong format", (t) => ((t.format = "skein-costs/0"), t), /format must be "skein-costs\/1"/],
    ["a kernel missing", (t) => (delete t.kernels.gemm_nn, t), /kernels\.gemm_nn: missing/],
    ["a negative cost", (t) => ((t.kernels.axpy.perUnit = -1), t), /kernels\.axpy\.perUnit: must be a number ≥ 0/],
    ["a cost that is a string", (t) => ((t.kernels.copy.fixed = "1"), t), /kernels\.copy\.fixed/],
    ["an unknown kernel", (t) => ((t.kernels.gemm_xx = { fixed: 0, perUnit: 0 }), t), /kernels\.gemm_xx: no such kernel/],
    ["speedup not starting at 1", (t) => ((t.machine.speedup = [2, 3]), t), /machine\.speedup\[0\]: must be 1/],
    ["no cores", (t) => ((t.machine.cores = 0), t), /machine\.cores/],
    ["a jitter of 1 or more", (t) => ((t.jitter = 1), t), /jitter: must be a number in \[0, 1\)/],
    ["a bad network", (t) => ((t.networks = { slow: { latencySeconds: 1, bytesPerSecond: 0 } }), t), /networks\.slow: bytesPerSecond/],
    ["further terms of the wrong count", (t) => ((t.kernels.winograd_forward.perMore = [1e-9, 1e-9]), t), /kernels\.winograd_forward\.perMore: must be 1 number/],
    ["a negative time around calls", (t) => ((t.callSecondsAt = [1e-6, -1]), t), /callSecondsAt: must be a non-empty list of numbers ≥ 0/],
    ["no memory model", (t) => (delete t.memory, t), /memory: missing/],
    ["no helper threads' load", (t) => (delete t.helperLoad, t), /helperLoad: must be a number in \[0, 1\) \(a table from before the helper threads' term\? run skein calibrate again\)/],
    ["helpers of a whole core or more", (t) => ((t.helperLoad = 1), t), /helperLoad: must be a number in \[0, 1\)/],
    ["no helper timeslice", (t) => (delete t.helperSliceSeconds, t), /helperSliceSeconds: must be a number > 0/],
    ["no cost of the executor's call", (t) => (delete t.runSeconds, t), /runSeconds: must be a number ≥ 0 \(a table from before the executor's per-call term\? run skein calibrate again\)/],
    ["a role's time around calls that is no list", (t) => ((t.callSecondsByRole = { dmsgd: 1e-6 }), t), /callSecondsByRole\.dmsgd: must be a non-empty list of numbers ≥ 0/],
    ["a memory curve that falls", (t) => ((t.memory.secondsPerByte = t.memory.secondsPerByte.map((_: number, i: number) => 1 / (i + 1))), t), /memory\.secondsPerByte: must be one non-decreasing/],
    ["no cost for the gather from memory", (t) => (delete t.memory.coldSecondsPerByte.gather_batch, t), /memory\.coldSecondsPerByte\.gather_batch: missing/],
    ["no data-set size for the gather", (t) => (delete t.memory.gatherFootprint, t), /memory\.gatherFootprint: must be/],
    ["a cold cost for no kernel", (t) => ((t.memory.coldSecondsPerByte.gemm_xx = 1e-12), t), /memory\.coldSecondsPerByte\.gemm_xx: no such kernel/],
    ["not an object", () => [1, 2], /not a JSON object/],
  ];
  for (const [what, breakIt, message] of broken) {
    test(`refuses ${what} with one line naming the file`, () => {
      const dir = tmp();
      const path = join(dir, "costs.json");
      writeFileSync(path, JSON.stringify(breakIt(good())));
      let error: unknown;
      try {
        loadCostTable(path);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UserError);
      const text = (error as Error).message;
      expect(text.split("\n")).toHaveLength(1);
      expect(text).toStartWith(`--costs ${path}: `);
      expect(text).toMatch(message);
    });
  }

  test("the default table is well formed and costs every kernel", () => {
    const t = defaultCostTable();
    expect(checkCostTable(t, "default")).toBeDefined();
    for (const name of Object.keys(WORK)) expect(t.kernels[name]).toBeDefined();
  });

  test("the CLI: a malformed table or network exits 2 with one line, before any work", () => {
    const dir = tmp();
    const path = join(dir, "costs.json");
    writeFileSync(path, "{ not json");
    const MAIN = join(import.meta.dir, "../engine/cli/main.ts");
    const skein = (...args: string[]) => Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, SKEIN_DEBUG: "" } });
    for (const args of [
      ["--costs", path],
      ["--network", join(dir, "missing.json")],
    ]) {
      const r = skein("train", "--executor", "simulated", "--data", "synthetic:64", "--epochs", "1", ...args);
      expect(r.exitCode).toBe(2);
      const err = r.stderr.toString().trim();
      expect(err.split("\n")).toHaveLength(1);
      expect(err).toContain(args[0]!);
    }
    const wrongExecutor = skein("train", "--executor", "deterministic", "--machine", "ideal", "--data", "synthetic:64");
    expect(wrongExecutor.exitCode).toBe(2);
    expect(wrongExecutor.stderr.toString()).toContain("--machine applies to --executor simulated");
  });
});

describe("calibration", () => {
  test("the fit recovers an affine cost exactly, and reports its relative error", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-7, max: 1e-4, noNaN: true }),
        fc.double({ min: 1e-12, max: 1e-8, noNaN: true }),
        // Sizes a power of two apart at least, as the calibrated shapes are (nearly equal sizes make
        // the intercept unidentifiable, for any fit).
        fc.uniqueArray(fc.integer({ min: 0, max: 23 }), { minLength: 2, maxLength: 12 }).map((exponents) => exponents.map((e) => 2 ** e)),
        (fixed, perUnit, works) => {
          const c = fit(works.map((work) => ({ work, seconds: fixed + perUnit * work })));
          expect(c.fixed).toBeCloseTo(fixed, 12);
          expect(c.perUnit / perUnit).toBeCloseTo(1, 6);
          expect(c.fitError).toBeLessThan(1e-6);
        },
      ),
    );
    // With a bytes term (GEMMs): flops-bound and bytes-bound calls together are recovered too.
    const shapes = [[1, 784, 256], [8, 784, 256], [64, 784, 256], [256, 128, 10], [1, 128, 128], [32, 256, 128]];
    const points = shapes.map(([m, k, n]) => {
      const work = 2 * m! * k! * n!;
      const bytes = 4 * (m! * k! + k! * n! + m! * n!);
      return { work, bytes, seconds: 1e-6 + work / 40e9 + bytes / 10e9 };
    });
    const c = fit(points);
    expect(c.perUnit * 40e9).toBeCloseTo(1, 6);
    expect(c.perByte! * 10e9).toBeCloseTo(1, 6);
    expect(c.fitError).toBeLessThan(1e-6);
    // With further terms (Winograd: per-frequency GEMM flops, tile-transform bytes, weight-transform
    // values), each recovered from the shapes of the three residual stages.
    const winograd = [[1, 16, 28, 16], [4, 16, 28, 16], [64, 16, 28, 16], [1, 32, 14, 32], [16, 32, 14, 32], [1, 64, 7, 64], [4, 64, 7, 64], [64, 64, 7, 64]].map(([n, ci, side, co]) => {
      const tiles = n! * Math.ceil(side! / 2) ** 2;
      const work = 32 * tiles * ci! * co!;
      const bytes = 64 * tiles * (ci! + co!);
      const weights = 16 * ci! * co!;
      return { work, bytes, more: [weights], seconds: 2e-6 + work / 50e9 + bytes / 30e9 + weights * 2e-9 };
    });
    const w = fit(winograd);
    expect(w.perUnit * 50e9).toBeCloseTo(1, 6);
    expect(w.perByte! * 30e9).toBeCloseTo(1, 6);
    expect(w.perMore![0]! / 2e-9).toBeCloseTo(1, 6);
    expect(w.fitError).toBeLessThan(1e-6);
    // Noise shows as error: ±10% alternating around a line is a 10% relative RMS error, near enough.
    const noisy = fit([1, 2, 3, 4, 5, 6].map((w, i) => ({ work: w * 1e6, seconds: w * 1e-3 * (i % 2 ? 1.1 : 0.9) })));
    expect(noisy.fitError).toBeGreaterThan(0.05);
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
