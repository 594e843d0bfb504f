/**
 * The simulated executor's cost model, as data: what each kernel call costs in seconds as a function
 * of its arguments, how much k programs computing at once slow each other down, and what a message
 * costs on a network (network-model.ts). `skein calibrate` measures a table on this machine; a default
 * one ships with the project (costs-default.json), so simulated runs work out of the box.
 *
 * A kernel's cost is affine in one work measure of its arguments (flops for GEMM, convolutions and
 * attention, elements for everything else), plus for those the bytes of their operands:
 * seconds = fixed + perUnit · work + perByte · bytes. The streaming kernels (cache-model.ts) are
 * priced per byte of their call's footprint F instead, by F: fixed + F · warm.secondsPerByte(F) (a
 * call repeated on the same operands streams at the rate of the nearest cache holding them all, which
 * steps up where F leaves a cache level). The fit is per kernel, from the medians of repeated calls
 * over the shapes the models use; its relative error is kept in the table.
 */
import { UserError } from "../errors.ts";
import { readUserTextFile } from "../user-file.ts";
import { checkNetwork, NETWORK_PRESETS, resolveNetwork, type NetworkModel } from "./network-model.ts";
import DEFAULT_TABLE from "./costs-default.json";
import { GEMM_KERNELS, isStreamingKernel, STREAMING_KERNELS, type MemoryModel } from "./cache-model.ts";
import { checkWarmCurves, warmCostFunction, type WarmCurve } from "./warm-costs.ts";

export { warmCurves, type WarmCurve } from "./warm-costs.ts";
export { allReduceSeconds, NETWORK_PRESETS, resolveNetwork, trafficSeconds, type NetworkModel } from "./network-model.ts";
import { WORK } from "./kernel-work.ts";
import { isNumber } from "./json-check.ts";

export const COSTS_FORMAT = "skein-costs/1";

export interface KernelCost {
  /** Seconds per call whatever the size: call overhead, setup. */
  fixed: number;
  /** Seconds per unit of work (see WORK). */
  perUnit: number;
  /**
   * GEMMs, convolutions and attention: seconds per byte of their operands as well (a GEMM of a few rows streams
   * its weights from memory and is bound by bytes, not flops). Absent: 0.
   */
  perByte?: number;
  /** Kernels with further terms (WORK's `more`): seconds per unit of each, in that order. Absent: none. */
  perMore?: number[];
  /**
   * The streaming kernels only (required for them): seconds per byte of the call's footprint F by F,
   * in place of perUnit (0 for them): fixed + F · secondsPerByte(F). See warm-costs.ts.
   */
  warm?: WarmCurve;
  /** weighted_sum only (required there): its warm curve when it sums two inputs (a loop of its own). */
  warmTwoInputs?: WarmCurve;
  /** Relative root-mean-square error of the fit over the calibrated shapes. */
  fitError: number;
  /** Distinct shapes the fit saw. */
  shapes: number;
}

export interface CostTable {
  format: typeof COSTS_FORMAT;
  /** Where and when it was measured: free text. */
  measuredOn: string;
  machine: {
    /** Cores the machine has (beyond that, programs share them in turn). */
    cores: number;
    /** speedup[k−1]: throughput of k programs computing at once over one alone (speedup[0] = 1). */
    speedup: number[];
  };
  /** Seconds a blocked program needs to resume once released (a futex wake-up on real threads). */
  wakeSeconds: number;
  /**
   * Whole training epochs of one program against the kernels' own costs (both fitted together):
   * kernels inside a training step run `contextFactor` times slower than alone in a timing loop (colder
   * caches, the machine's other load), and each call costs `callSeconds` of TypeScript around it
   * (batch bookkeeping, pointer arithmetic, counters, queues).
   */
  contextFactor: number;
  callSeconds: number;
  /**
   * callSecondsAt[k − 1]: seconds around each call when k programs run at once (k = 1…), measured on
   * threaded epochs with their kernels timed: with more threads the code between kernels runs slower
   * too (shared counters and queues bounce between cores). Absent, or beyond its length: callSeconds,
   * slowed like a kernel.
   */
  callSecondsAt?: number[];
  /**
   * Per role program (by name), seconds around each call when k programs run at once, as
   * callSecondsAt: roles whose programs do more of their own JavaScript between kernels (a gossip
   * node builds its batch, its mixing's pointer and weight tables, its message) measured on their
   * own. Absent, or a role not in it: callSecondsAt.
   */
  callSecondsByRole?: Record<string, number[]>;
  /**
   * Seconds one call of the executor costs beyond its programs (handing the call to the worker
   * threads and collecting their results; an epoch is one call).
   */
  runSeconds: number;
  /**
   * Cores' worth of CPU the process spends outside its programs' threads while they train: the
   * JavaScript engine's garbage collector, the main thread, and (in a table without compilerLoad)
   * its JIT compiler (measured: 3–5% of a core, about the same per second at 1 and 2 workers, not
   * per kernel call). Where a core is idle that time runs there; where every core computes it is
   * taken from the programs, a timeslice of `helperSliceSeconds` at a time, from whichever program is
   * on the core when the slice comes due, and programs that meet at a barrier all wait for that one.
   */
  helperLoad: number;
  /**
   * The JIT compiler threads' share, kept apart from helperLoad (absent in tables from before the
   * split: 0, helperLoad holds it). Charged like helperLoad, except in a run whose programs wait for
   * each other: the engine then runs the compiler at idle priority (runtime/compiler-threads.ts),
   * and it takes only the moments the programs sleep in a wait.
   */
  compilerLoad?: number;
  /** Mean length of one helper timeslice, seconds (> 0). */
  helperSliceSeconds: number;
  /**
   * Relative spread (standard deviation over mean) of a kernel call's time in a run; absent: 0.
   * Real threads of equal work drift apart in phase by it, and the phase decides how many peer
   * updates fall between a read of the weights and the write (staleness); with none, equal programs
   * stay in lockstep. Drawn per call from a generator seeded by the run's seed and the program.
   */
  jitter?: number;
  /**
   * Seconds per byte streamed by the working set it comes from (see cache-model.ts): what a call
   * pays beyond its calibrated cost for operands its program has not touched for a while.
   */
  memory: MemoryModel;
  kernels: Record<string, KernelCost>;
  networks: Record<string, NetworkModel>;
}

export const MACHINES = ["measured", "ideal"] as const;
export type MachineName = (typeof MACHINES)[number];

/** A simulated run's choices as configured (plain JSON, saved with checkpoints). */
export interface SimulationConfig {
  /** A cost table file; absent: the default table. */
  costs?: string;
  machine?: MachineName;
  /** shm, 10gbe, 100gbe, another name in the table, or a JSON file. */
  network?: string;
}

/** What a simulated run is told: the table, the machine and the network. */
export interface SimulationModel {
  table: CostTable;
  machine: MachineName;
  network: NetworkModel;
  networkName: string;
  /** The run's JIT compiler is held at idle priority (compiler-threads.ts, idleCompilerFor): its load is not charged. */
  compilerIdle?: boolean;
}

/** What a simulated run's summary says about its model. */
export interface SimulationSummary {
  costs: string;
  machine: MachineName;
  cores: number;
  network: string;
}

export function describeSimulation(model: SimulationModel, costs: string | undefined): SimulationSummary {
  return { costs: costs ?? "default", machine: model.machine, cores: model.machine === "ideal" ? 0 : model.table.machine.cores, network: model.networkName };
}

/** The default table shipped with the project. */
export function defaultCostTable(): CostTable {
  return checkCostTable(DEFAULT_TABLE, "the default cost table");
}

/** A table from a file, or a UserError naming the file and what is wrong with it. */
export function loadCostTable(path: string): CostTable {
  const text = readUserTextFile(path, `--costs ${path}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--costs ${path}: not JSON (${(e instanceof Error ? e.message : String(e)).split("\n")[0]})`);
  }
  return checkCostTable(json, `--costs ${path}`);
}

/** The table if it is well formed; otherwise one line saying where it is not. */
export function checkCostTable(json: unknown, where: string): CostTable {
  const fail = (what: string): never => {
    throw new UserError(`${where}: ${what}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("not a JSON object");
  const t = json as Record<string, unknown>;
  if (t.format !== COSTS_FORMAT) fail(`format must be "${COSTS_FORMAT}" (got ${JSON.stringify(t.format)})`);
  const machine = t.machine as Record<string, unknown> | undefined;
  if (typeof machine !== "object" || machine === null) fail("machine: missing");
  if (!Number.isInteger(machine!.cores) || (machine!.cores as number) < 1) fail("machine.cores: must be a positive integer");
  const speedup = machine!.speedup;
  if (!Array.isArray(speedup) || speedup.length < 1 || !speedup.every((s) => isNumber(s) && s > 0)) fail("machine.speedup: must be a non-empty list of positive numbers");
  if ((speedup as number[])[0] !== 1) fail("machine.speedup[0]: must be 1 (one program alone)");
  if (!isNumber(t.wakeSeconds) || t.wakeSeconds < 0) fail("wakeSeconds: must be a number ≥ 0");
  if (!isNumber(t.callSeconds) || t.callSeconds < 0) fail("callSeconds: must be a number ≥ 0");
  if (!isNumber(t.contextFactor) || t.contextFactor <= 0) fail("contextFactor: must be a number > 0");
  if (t.callSecondsAt !== undefined && (!Array.isArray(t.callSecondsAt) || t.callSecondsAt.length < 1 || !t.callSecondsAt.every((x) => isNumber(x) && x >= 0)))
    fail("callSecondsAt: must be a non-empty list of numbers ≥ 0");
  if (!isNumber(t.helperLoad) || t.helperLoad < 0 || t.helperLoad >= 1) fail("helperLoad: must be a number in [0, 1) (a table from before the helper threads' term? run skein calibrate again)");
  if (t.compilerLoad !== undefined && (!isNumber(t.compilerLoad) || t.compilerLoad < 0 || t.compilerLoad >= 1)) fail("compilerLoad: must be a number in [0, 1)");
  if (!isNumber(t.helperSliceSeconds) || t.helperSliceSeconds <= 0) fail("helperSliceSeconds: must be a number > 0 (a table from before the helper threads' term? run skein calibrate again)");
  const byRole = t.callSecondsByRole;
  if (byRole !== undefined && (typeof byRole !== "object" || byRole === null || Array.isArray(byRole))) fail("callSecondsByRole: must be an object of lists by role name");
  for (const [role, at] of Object.entries((byRole ?? {}) as Record<string, unknown>)) {
    if (!Array.isArray(at) || at.length < 1 || !at.every((x) => isNumber(x) && x >= 0)) fail(`callSecondsByRole.${role}: must be a non-empty list of numbers ≥ 0`);
  }
  if (!isNumber(t.runSeconds) || t.runSeconds < 0) fail("runSeconds: must be a number ≥ 0 (a table from before the executor's per-call term? run skein calibrate again)");
  if (t.jitter !== undefined && (!isNumber(t.jitter) || t.jitter < 0 || t.jitter >= 1)) fail("jitter: must be a number in [0, 1)");
  checkMemory(t.memory, fail);
  const kernels = t.kernels as Record<string, unknown> | undefined;
  if (typeof kernels !== "object" || kernels === null) fail("kernels: missing");
  for (const name of Object.keys(WORK)) {
    const c = kernels![name] as Record<string, unknown> | undefined;
    if (typeof c !== "object" || c === null) fail(`kernels.${name}: missing (a table from before the kernel existed? run skein calibrate again)`);
    for (const field of ["fixed", "perUnit"] as const) {
      if (!isNumber(c![field]) || (c![field] as number) < 0) fail(`kernels.${name}.${field}: must be a number ≥ 0 (got ${JSON.stringify(c![field])})`);
    }
    if (c!.perByte !== undefined && (!isNumber(c!.perByte) || c!.perByte < 0)) fail(`kernels.${name}.perByte: must be a number ≥ 0 (got ${JSON.stringify(c!.perByte)})`);
    checkWarmCurves(name, c!, fail);
    const more = WORK[name]!.more?.length ?? 0;
    if (c!.perMore !== undefined && (!Array.isArray(c!.perMore) || c!.perMore.length !== more || !c!.perMore.every((x) => isNumber(x) && x >= 0)))
      fail(`kernels.${name}.perMore: must be ${more} number(s) ≥ 0 (${(WORK[name]!.more ?? []).map((m) => m.what).join(", ") || "this kernel has no further terms"})`);
  }
  for (const name of Object.keys(kernels!)) if (!(name in WORK)) fail(`kernels.${name}: no such kernel`);
  const networks = (t.networks ?? {}) as Record<string, unknown>;
  if (typeof networks !== "object" || networks === null || Array.isArray(networks)) fail("networks: must be an object");
  for (const [name, n] of Object.entries(networks)) checkNetwork(n, `${where}: networks.${name}`);
  return { ...(t as unknown as CostTable), networks: { ...NETWORK_PRESETS, ...(networks as Record<string, NetworkModel>) } };
}

function checkMemory(json: unknown, fail: (what: string) => never): void {
  const m = json as Record<string, unknown> | null | undefined;
  if (typeof m !== "object" || m === null) fail("memory: missing (a table from before the cache model? run skein calibrate again)");
  const { footprints, secondsPerByte } = m as Record<string, unknown>;
  if (!Array.isArray(footprints) || footprints.length < 1 || !footprints.every((f, i) => isNumber(f) && f > 0 && (i === 0 || f > footprints[i - 1])))
    fail("memory.footprints: must be a non-empty list of increasing positive byte counts");
  if (!Array.isArray(secondsPerByte) || secondsPerByte.length !== (footprints as number[]).length || !secondsPerByte.every((s, i) => isNumber(s) && s >= 0 && (i === 0 || s >= secondsPerByte[i - 1])))
    fail("memory.secondsPerByte: must be one non-decreasing number ≥ 0 per footprint");
  const cold = (m as Record<string, unknown>).coldSecondsPerByte;
  if (typeof cold !== "object" || cold === null || Array.isArray(cold)) fail("memory.coldSecondsPerByte: must be an object of seconds per byte by kernel");
  for (const [name, v] of Object.entries(cold as Record<string, unknown>)) {
    if (!(name in WORK)) fail(`memory.coldSecondsPerByte.${name}: no such kernel`);
    if (!isNumber(v) || v < 0) fail(`memory.coldSecondsPerByte.${name}: must be a number ≥ 0`);
  }
  // The gather's rows from memory: a table from before that term lacks both (calibrate again, or
  // bench/merge-kernel-costs.ts --gather).
  if (!("gather_batch" in (cold as Record<string, unknown>))) fail("memory.coldSecondsPerByte.gather_batch: missing (the gather's cost for rows from memory; run skein calibrate again)");
  // The GEMMs' and streaming kernels' own curves: without them an evicted weight matrix or replica
  // pays the axpy curve's missed share, which stays near 0 up to 16 MiB where a GEMM already pays
  // nearly memory's cost and a mixing step most of it.
  const curves = (m as Record<string, unknown>).coldCurves;
  if (typeof curves !== "object" || curves === null || Array.isArray(curves)) fail("memory.coldCurves: missing (the GEMMs' cost by how far their operands are; run skein calibrate again)");
  for (const gemm of GEMM_KERNELS)
    if (!(gemm in (curves as Record<string, unknown>))) fail(`memory.coldCurves.${gemm}: missing (the GEMMs' cost by how far their operands are; run skein calibrate again)`);
  for (const name of STREAMING_KERNELS)
    if (!(name in (curves as Record<string, unknown>))) fail(`memory.coldCurves.${name}: missing (the streaming kernels' cost by how far their operands are; run skein calibrate again)`);
  for (const [name, c] of Object.entries(curves as Record<string, unknown>)) {
    if (!(name in WORK)) fail(`memory.coldCurves.${name}: no such kernel`);
    if (!Array.isArray(c) || c.length !== (footprints as number[]).length || !c.every((s, i) => isNumber(s) && s >= 0 && (i === 0 || s >= c[i - 1])))
      fail(`memory.coldCurves.${name}: must be one non-decreasing number ≥ 0 per footprint`);
  }
  const gatherFootprint = (m as Record<string, unknown>).gatherFootprint;
  if (!isNumber(gatherFootprint) || gatherFootprint <= 0) fail("memory.gatherFootprint: must be the positive byte count of the data set the gather was timed on");
}

/** What to build a model from: a table (file or default), a machine, a network. */
export function simulationModel(o: SimulationConfig): SimulationModel {
  const table = o.costs ? loadCostTable(o.costs) : defaultCostTable();
  const networkName = o.network ?? "shm";
  return { table, machine: o.machine ?? "measured", network: resolveNetwork(table, networkName), networkName };
}

/** Seconds of one call of `name` as a function of its arguments. */
export function kernelCostFunction(table: Pick<CostTable, "kernels" | "contextFactor" | "callSeconds">, name: string): (args: unknown[]) => number {
  const w = WORK[name];
  const c = table.kernels[name];
  if (!w || !c) return () => 0;
  const fixed = c.fixed * table.contextFactor + table.callSeconds;
  const perUnit = c.perUnit * table.contextFactor;
  const perByte = (c.perByte ?? 0) * table.contextFactor;
  const bytes = w.bytes;
  const more = (w.more ?? []).map((m, i) => ({ of: m.of, per: (c.perMore?.[i] ?? 0) * table.contextFactor })).filter((m) => m.per > 0);
  // Per byte of the call's footprint, by that footprint (see KernelCost.warm).
  if (c.warm && isStreamingKernel(name)) return warmCostFunction(name, c.warm, c.warmTwoInputs, fixed, table.contextFactor);
  const base: (args: number[]) => number =
    !bytes || perByte === 0 ? (args) => fixed + perUnit * w.work(args) : (args) => fixed + perUnit * w.work(args) + perByte * bytes(args);
  if (more.length === 0) return base as (args: unknown[]) => number;
  return (args) => {
    let s = base(args as number[]);
    for (const m of more) s += m.per * m.of(args as number[]);
    return s;
  };
}

/**
 * Seconds around one kernel call (outside the kernel) when `k` programs of role `role` compute at
 * once: measured for the role (callSecondsByRole) or in general (callSecondsAt) where the table has
 * it, else callSeconds slowed as a kernel would be.
 */
export function callSecondsFor(model: SimulationModel, k: number, role?: string): number {
  const at = (role !== undefined ? model.table.callSecondsByRole?.[role] : undefined) ?? model.table.callSecondsAt;
  if (model.machine !== "ideal" && at && k >= 1) {
    if (k <= at.length) return at[k - 1]!;
    // Beyond the measured counts: the last measured figure, and the cores shared in turn beyond them.
    return at[at.length - 1]! * Math.max(1, k / model.table.machine.cores);
  }
  return model.table.callSeconds * slowdown(model, k);
}

/**
 * Helper-thread seconds that come due per second a program computes, when `k` programs compute at
 * once: none while a core is idle (the helpers run there) or on an ideal machine, else the helpers'
 * load shared by the k programs (in a wall-clock second the k of them compute k seconds); the
 * compiler's share only where the run does not hold it idle.
 */
export function helperSecondsFor(model: SimulationModel, k: number): number {
  if (model.machine === "ideal" || k < model.table.machine.cores) return 0;
  return (model.table.helperLoad + (model.compilerIdle ? 0 : (model.table.compilerLoad ?? 0))) / k;
}

/**
 * The most bytes one operand of a call of `name` streams: 4 bytes per element of its work, or the
 * bytes measure of a kernel counted in flops (cache-model.ts caps each operand's bytes by it).
 */
export function streamedBytesFunction(name: string): (args: number[]) => number {
  const w = WORK[name];
  if (!w) return () => 0;
  if (w.unit === "elements") return (args) => 4 * w.work(args);
  return w.bytes ?? (() => 0);
}

/**
 * How much slower each of k programs computing at once runs than one alone: k / speedup(k) while k
 * fits the cores, then the cores are shared in turn (k / speedup(cores)). An ideal machine: 1.
 */
export function slowdown(model: SimulationModel, k: number): number {
  if (model.machine === "ideal" || k <= 1) return 1;
  const { cores, speedup } = model.table.machine;
  const used = Math.min(k, cores);
  // Beyond the measured counts, assume the last measured efficiency per program.
  const last = speedup.length;
  const s = used <= last ? speedup[used - 1]! : (speedup[last - 1]! / last) * used;
  return k / s;
}
