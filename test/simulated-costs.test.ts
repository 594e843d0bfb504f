/**
 * The simulated executor's cost terms, from the table to the clock:
 *  - time outside the kernels, by role, and the executor's own call per epoch;
 *  - the process's helper threads as preemptions when programs fill the cores;
 *  - jitter: equal programs leave lockstep only with it, reproducibly;
 *  - the cost table loader refuses a malformed table with one line (exit 2 from the CLI);
 *  - calibration's fits.
 * (The executor's semantics, causality and schedules: test/simulated.test.ts.)
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { train, TrainingSession } from "../engine/train.ts";
import { checkCostTable, defaultCostTable, helperSecondsFor, loadCostTable, type CostTable } from "../engine/runtime/costs.ts";
import { WORK } from "../engine/runtime/kernel-work.ts";
import { SimulatedSync, SimulationState, simulate } from "../engine/runtime/simulated.ts";
import { Control, planControl } from "../engine/runtime/control.ts";
import { ArenaPlanner, createSharedMemory } from "../engine/memory/arena.ts";
import { Rng } from "../engine/rng.ts";
import type { RoleProgram } from "../engine/runtime/sync.ts";
import { fit } from "../engine/cli/cost-fit.ts";
import { overallStaleness, summarizeStaleness } from "../engine/algorithms/async/staleness.ts";
import { simulatedBase } from "./simulated-fixtures.ts";
import { tempFolders } from "./tempdir.ts";
import { sameBits, userErrorOf } from "./helpers.ts";

const base = simulatedBase;
const tmp = tempFolders("skein-simulated-");

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

  test("the JIT compiler's share is charged with them, except in a run that holds the compiler idle", () => {
    const table: CostTable = { ...defaultCostTable(), machine: { cores: 2, speedup: [1, 1.8] }, helperLoad: 0.1, compilerLoad: 0.04 };
    const measured = { table, machine: "measured" as const, network: { latencySeconds: 0, bytesPerSecond: null }, networkName: "shm" };
    expect(helperSecondsFor(measured, 2)).toBeCloseTo(0.07, 15);
    expect(helperSecondsFor({ ...measured, compilerIdle: false }, 2)).toBeCloseTo(0.07, 15);
    expect(helperSecondsFor({ ...measured, compilerIdle: true }, 2)).toBeCloseTo(0.05, 15);
    expect(helperSecondsFor({ ...measured, compilerIdle: false }, 1)).toBe(0); // a core is idle: it runs there
  });

  test("a simulated run charges the compiler as the engine schedules it: not to sync's 2 workers, which hold it idle; to Hogwild!'s", async () => {
    const dir = tmp();
    const seconds = async (algo: string, compilerLoad: number) => {
      const costs = join(dir, `compiler-${algo}-${compilerLoad}.json`);
      writeFileSync(costs, JSON.stringify({ ...defaultCostTable(), machine: { cores: 2, speedup: [1, 2] }, helperLoad: 0, compilerLoad, helperSliceSeconds: 5e-6 }));
      const session = await TrainingSession.open({ ...base, algo, workers: 2, simulation: { costs } });
      try {
        return (await session.trainEpoch()).seconds;
      } finally {
        session.close();
      }
    };
    expect(await seconds("sync", 0.2)).toBe(await seconds("sync", 0));
    expect(await seconds("hogwild", 0.2)).toBeGreaterThan(await seconds("hogwild", 0));
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
      // The helpers' timeslices would break the lockstep too, and so would the kernels' curves by
      // distance (the second worker finds W one call nearer than the first): this is about jitter alone.
      const t = defaultCostTable();
      const curvesFlat = Object.fromEntries(Object.entries(t.memory.coldCurves).map(([name, c]) => [name, c.map(() => 0)]));
      writeFileSync(costs, JSON.stringify({ ...t, jitter, helperLoad: 0, memory: { ...t.memory, coldCurves: curvesFlat } }));
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
    ["a compiler of a whole core", (t) => ((t.compilerLoad = 1), t), /compilerLoad: must be a number in \[0, 1\)/],
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
      const text = userErrorOf(() => loadCostTable(path));
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
