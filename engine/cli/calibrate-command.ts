/**
 * `skein calibrate`: measure the simulated executor's cost table on this machine.
 *
 *  1. Kernels: every call a training step makes, timed and fitted per kernel (calibrate-kernels.ts).
 *  2. Training steps replayed on k threads at once, k = 1…cores (see step-replay.ts): speedup(k) is
 *     their total throughput over one thread's, and one thread's step time over the sum of its calls'
 *     isolated costs is the factor by which kernels run slower in a step than in a timing loop.
 *     Steps timed one by one give the spread of a call's time (the jitter that moves real threads of
 *     equal work out of phase), and two threads handing a turn back and forth through Atomics.wait
 *     and notify give the wake-up latency.
 *  3. Whole epochs of k worker threads, kernels timed: the seconds per kernel call spent outside them,
 *     and the CPU the process's other threads (compiler, garbage collector) spend per call meanwhile.
 */
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { writeFileAtomic } from "../checkpoint/atomic-file.ts";
import type { TrainConfig } from "../algorithms/config.ts";
import { defaultOptimizer } from "../optim/optimizer.ts";
import type { SimulatedExecutor } from "../runtime/simulated.ts";
import { TrainingSession } from "../session.ts";
import { loadDataset } from "../data/index.ts";
import { UserError } from "../errors.ts";
import { loadKernelModule } from "../kernels/load.ts";
import { checkCostTable, COSTS_FORMAT, kernelCostFunction, type CostTable } from "../runtime/costs.ts";
import { WORK } from "../runtime/kernel-work.ts";
import { curveAt } from "../runtime/cache-model.ts";
import { measureWakeSeconds, StepReplay } from "./step-replay.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";
import { calibrateKernels } from "./calibrate-kernels.ts";
import { calibrateMemory } from "./calibrate-memory.ts";
import { helperCpu, helperCpuSince } from "./calibrate-helpers.ts";

const CALIBRATE_FLAGS: FlagSpec[] = [
  { name: "out", type: "string", default: "costs.json", valueName: "FILE", help: "where to write the cost table (JSON)" },
  { name: "models", type: "string", default: "mlp:784-256-128-10,lenet", valueName: "LIST", help: "comma-separated model specs whose shapes to time" },
  { name: "data", type: "string", default: "digits", valueName: "SPEC", help: "the data the models read (for their input shape)" },
  { name: "quick", type: "bool", help: "fewer shapes and shorter timings (a table in a minute or two here instead of several, noisier)" },
  { name: "json", type: "bool", help: "print the table on stdout instead of the fit report" },
];

export const CALIBRATE_HELP = formatHelp(
  "skein calibrate [flags]",
  "Time every kernel over the shapes the models use and k programs computing at once, and write the cost table the simulated executor reads (--executor simulated --costs FILE).",
  CALIBRATE_FLAGS,
  "Example: skein calibrate --out runs/costs.json && skein train --executor simulated --costs runs/costs.json --workers 16",
);


/**
 * Checked before a minute or two of measuring, not after: --out must name a file in a folder this
 * process can write (made if missing, as the help's runs/costs.json needs in a fresh clone). The table
 * is written whole or not at all, so an interrupted calibration leaves an earlier table as it was.
 */
function prepareOut(out: string): void {
  if (existsSync(out) && statSync(out).isDirectory()) throw new UserError(`--out ${out}: is a folder; name the table's file`);
  const folder = dirname(resolve(out));
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK);
  } catch (e) {
    throw new UserError(`--out ${out}: cannot write in ${folder} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export async function calibrateCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("calibrate", argv, CALIBRATE_FLAGS);
  if (flags.help) {
    process.stdout.write(CALIBRATE_HELP);
    return 0;
  }
  const v = flags.values;
  const quick = Boolean(v.quick);
  const models = String(v.models).split(",").filter((m) => m.length > 0);
  if (models.length === 0) throw new UserError("--models: give at least one model spec");
  const out = String(v.out);
  prepareOut(out);
  const say = (line: string) => (v.json ? process.stderr.write(line + "\n") : process.stdout.write(line + "\n"));
  const table = await calibrate({ models, data: String(v.data), quick, say });
  const text = JSON.stringify(table, null, 2) + "\n";
  await writeFileAtomic(out, text, { durable: false });
  if (v.json) process.stdout.write(text);
  else say(`wrote ${v.out}`);
  return 0;
}

export async function calibrate(o: { models: string[]; data: string; quick: boolean; say: (line: string) => void }): Promise<CostTable> {
  const { module, variant } = await loadKernelModule();
  const dataset = await loadDataset(o.data);
  const kernels = await calibrateKernels(o);
  o.say("calibrate: streaming by working-set size (axpy round a ring of vectors), and the streaming kernels and GEMMs from memory");
  const memory = calibrateMemory(module, { quick: o.quick, sampleBytes: dataset.shape.reduce((a, b) => a * b, 1) });
  o.say(`  ${memory.footprints.map((f, i) => `${f >= 1 << 20 ? `${f / (1 << 20)} MiB` : `${f / 1024} KiB`} ${(1e-9 / memory.secondsPerByte[i]!).toFixed(0)} GB/s`).join(", ")}`);
  o.say(`  from memory, beyond in cache, ps per byte: ${Object.entries(memory.coldSecondsPerByte).map(([name, s]) => `${name} ${(s * 1e12).toFixed(1)}`).join(", ")}`);
  for (const [name, curve] of Object.entries(memory.coldCurves))
    o.say(`  ${name} beyond in cache by distance, ps per byte: ${curve.map((s, i) => `${memory.footprints[i]! / (1 << 20)} MiB ${(s * 1e12).toFixed(1)}`).filter((_, i) => memory.footprints[i]! >= 1 << 20).join(", ")}`);

  const cores = Math.max(1, Math.min(navigator.hardwareConcurrency, 64));
  const kernelsOnly: CostTable = {
    format: COSTS_FORMAT,
    measuredOn: `${new Date().toISOString()}: ${cores} cores (load average ${loadavg()[0]!.toFixed(1)} at the start), ${variant} kernels, Bun ${Bun.version}, ${process.platform}/${process.arch}`,
    machine: { cores, speedup: [1] },
    wakeSeconds: 0,
    contextFactor: 1,
    callSeconds: 0,
    helperLoad: 0,
    helperSliceSeconds: 1e-3,
    runSeconds: 0,
    memory,
    kernels,
    networks: {},
  };
  o.say("calibrate: training steps replayed on k threads at once");
  const replay = StepReplay.build(module, o.models, dataset.shape, dataset.classes, cores);
  let contextFactor: number;
  try {
    await replay.start();
    kernelsOnly.machine.speedup = await replay.speedup(cores, o.quick ? 150 : 400);
    report(kernelsOnly, o.say);
    contextFactor = await kernelsInContext(kernelsOnly, replay, o.quick ? 150 : 400, o.say);
    kernelsOnly.jitter = callJitter(kernelsOnly, replay, o.quick ? 100 : 300, o.say);
    kernelsOnly.wakeSeconds = await measureWakeSeconds(o.quick ? 500 : 2000);
    o.say(`  a sleeping thread resumes ${(kernelsOnly.wakeSeconds * 1e6).toFixed(1)} µs after the notify (ping-pong of two threads)`);
  } finally {
    replay.close();
  }
  o.say("calibrate: whole epochs of k worker threads, their kernels timed: the time around each call");
  const threads = await fitCallSeconds({ ...kernelsOnly, contextFactor }, o);
  const table = { ...kernelsOnly, contextFactor, callSeconds: threads.callSecondsAt[0]!, ...threads };
  return checkCostTable(table, "calibrate");
}

/**
 * Kernels in a training step run slower than alone in a timing loop: per model, one thread's replayed
 * step over the sum of its calls' isolated costs; the table keeps the mean over the models.
 */
async function kernelsInContext(table: CostTable, replay: StepReplay, ms: number, say: (line: string) => void): Promise<number> {
  const ratios: number[] = [];
  for (const [m, { model }] of replay.perModel.entries()) {
    const alone = replay.aloneSeconds(m, table);
    const step = replay.stepSeconds(m, ms);
    ratios.push(step / alone);
    say(`  ${model.padEnd(30)} step ${(step * 1e3).toFixed(3)} ms  kernels alone ${(alone * 1e3).toFixed(3)} ms  ×${(step / alone).toFixed(3)}`);
  }
  const factor = ratios.reduce((a, r) => a + r, 0) / ratios.length;
  say(`  kernels in context: ×${factor.toFixed(3)}`);
  return factor;
}

/** The relative spread of a kernel call's time: the median over the models (see StepReplay.callJitter). */
function callJitter(table: CostTable, replay: StepReplay, steps: number, say: (line: string) => void): number {
  const cost = ([name, args]: [string, number[]]) => kernelCostFunction(table, name)(args);
  const spreads = replay.perModel.map((_, m) => replay.callJitter(m, steps, cost)).sort((x, y) => x - y);
  // At most 0.5: a spread beyond it is other load on the machine, not the kernels.
  const jitter = Math.min(0.5, Math.round(spreads[(spreads.length - 1) >> 1]! * 1000) / 1000);
  say(`  a kernel call's time spreads by ${(jitter * 100).toFixed(1)}% (per model: ${spreads.map((x) => (x * 100).toFixed(1) + "%").join(", ")})`);
  return jitter;
}

/**
 * Roles whose programs do enough JavaScript of their own between kernels to be measured on their own
 * (callSecondsByRole; every other role gets sync's figures): Hogwild! claims its batches and reads
 * and records every layer's version for its staleness (2.2–2.8 µs per call on one thread against
 * sync's 0.5–0.7); a gossip node builds its batch's index list, its mixing's pointer and weight
 * tables and its message per node and round (1.1–1.2 µs on one thread, 2.3–5.6 on two).
 */
const OWN_ROLES = ["hogwild", "dmsgd"];

/** Epochs a fresh threaded session trains before any is measured: its JavaScript is compiled by then. */
export const WARM_EPOCHS = 3;

/**
 * Time outside the kernels: k programs of sync train whole epochs on k threads with their kernels timed (the
 * threaded executor's code: batch bookkeeping, counters, the orchestrator's call), and their busy time
 * outside the kernels (elapsed − waited − in kernels) over the calls the epoch makes (counted by
 * simulating the same epoch) is the time around each call; per k, the median over the runs. Each
 * run's figure is the smallest over its epochs (other load only ever adds to it). Measured directly,
 * not as what is left of an epoch after the kernels' fitted costs, so errors of those fits do not land
 * here; and per k, since with more threads the code between kernels slows down too (shared counters
 * and queues move between the cores' caches).
 *
 * The roles in OWN_ROLES get figures of their own the same way (callSecondsByRole). The same epochs
 * give what a call of the executor costs beyond its programs: the epoch's seconds on the main thread
 * less its longest program's.
 *
 * With k = cores, further epochs, not profiled, give the CPU time of the process's threads other than
 * the workers (calibrate-helpers.ts) per second of the epoch (it came out about the same per second
 * at 1 and 2 workers, not per kernel call): the median over those epochs (a garbage collection falls
 * in some epochs and not others), and the mean length of their timeslices. (Timing each call
 * allocates, and a profiled session's helpers collect that garbage too.) The first WARM_EPOCHS epochs
 * are not measured: there the engine is still compiling the programs (in fresh mlp sessions the
 * helpers took 9–28 ms in each of the first three epochs, 2–10 ms later).
 */
export async function fitCallSeconds(table: CostTable, o: { models: string[]; data: string; quick: boolean; say: (line: string) => void }): Promise<ThreadFit> {
  const costs = join(tmpdir(), `skein-calibrate-${process.pid}.json`);
  writeFileSync(costs, JSON.stringify({ ...table, helperLoad: 0, helperSliceSeconds: 1e-3, runSeconds: 0 }));
  const perK: number[] = [];
  const byRole: Record<string, number[]> = {};
  const runs: number[] = [];
  const helperLoads: number[] = [];
  const compilerLoads: number[] = [];
  let helperSeconds = 0;
  let helperSlices = 0;
  try {
    for (let k = 1; k <= table.machine.cores; k++) {
      const fits: { algo: string; what: string; outside: number; calls: number }[] = [];
      for (const model of o.models) {
        for (const algo of ["sync", ...OWN_ROLES]) {
          const config: TrainConfig = { algo, model, data: o.data, epochs: 1, batch: 64, workers: k, executor: "threads", seed: 1, optimizer: defaultOptimizer("momentum"), ...(algo === "dmsgd" ? { gossip: { nodes: 8 } } : {}) };
          const simulated = await TrainingSession.open({ ...config, executor: "simulated", simulation: { costs, machine: "ideal" } });
          let calls: number;
          try {
            await simulated.trainEpoch();
            const ex = simulated.executor as SimulatedExecutor;
            const before = ex.kernelCalls;
            await simulated.trainEpoch();
            calls = ex.kernelCalls - before;
          } finally {
            simulated.close();
          }
          const real = await TrainingSession.open(config, { profileKernels: true });
          let outside = Infinity;
          try {
            for (let i = 0; i < WARM_EPOCHS + (o.quick ? 2 : 5); i++) {
              const e = await real.trainEpoch();
              if (i < WARM_EPOCHS) continue;
              const ms = e.results.reduce((a, r) => a + r.elapsedMs - r.waitedMs - (r.kernelMs ?? 0), 0);
              outside = Math.min(outside, ms / 1000);
              runs.push(Math.max(0, e.seconds - Math.max(...e.results.map((r) => r.elapsedMs)) / 1000));
            }
          } finally {
            real.close();
          }
          fits.push({ algo, what: `${algo} ${model}`, outside, calls });
          if (k < table.machine.cores || OWN_ROLES.includes(algo)) continue;
          // The helpers, where they cost (every core computing), in a session not profiled: timing
          // each call allocates, and its garbage would be collected on their account.
          const plain = await TrainingSession.open(config);
          try {
            for (let i = 0; i < WARM_EPOCHS + (o.quick ? 3 : 6); i++) {
              const before = helperCpu();
              const started = performance.now();
              await plain.trainEpoch();
              const wall = (performance.now() - started) / 1000;
              const helpers = helperCpuSince(before, helperCpu());
              if (i < WARM_EPOCHS || !helpers) continue;
              helperLoads.push((helpers.seconds - helpers.compilerSeconds) / wall);
              compilerLoads.push(helpers.compilerSeconds / wall);
              helperSeconds += helpers.seconds;
              helperSlices += helpers.slices;
            }
          } finally {
            plain.close();
          }
        }
      }
      perK.push(median(fits.filter((r) => !OWN_ROLES.includes(r.algo)).map((r) => Math.max(0, r.outside / r.calls))));
      for (const role of OWN_ROLES) (byRole[role] ??= []).push(median(fits.filter((r) => r.algo === role).map((r) => Math.max(0, r.outside / r.calls))));
      for (const r of fits) o.say(`  ${k} thread${k > 1 ? "s" : ""}: ${r.what.padEnd(30)} ${(r.outside * 1e3).toFixed(2)} ms busy outside kernels per epoch, ${r.calls} calls: ${((r.outside / r.calls) * 1e6).toFixed(2)} µs each`);
    }
  } finally {
    rmSync(costs, { force: true });
  }
  o.say(`  ${perK.map((s, i) => `${(s * 1e6).toFixed(2)} µs around each call at ${i + 1} thread${i > 0 ? "s" : ""}`).join(", ")}`);
  for (const [role, at] of Object.entries(byRole)) o.say(`  ${role}: ${at.map((s, i) => `${(s * 1e6).toFixed(2)} µs at ${i + 1} thread${i > 0 ? "s" : ""}`).join(", ")}`);
  const runSeconds = median(runs);
  o.say(`  an epoch's call to the threads costs ${(runSeconds * 1e3).toFixed(2)} ms beyond its programs (median of ${runs.length})`);
  // Where threads keep no account (not Linux): no helper time, as the simulator had before the term.
  const helperLoad = helperLoads.length > 0 ? Math.min(0.99, median(helperLoads)) : 0;
  const compilerLoad = compilerLoads.length > 0 ? Math.min(0.99, median(compilerLoads)) : 0;
  const helperSliceSeconds = helperSlices > 0 ? helperSeconds / helperSlices : 1e-3;
  o.say(
    helperLoads.length > 0
      ? `  the process's other threads while ${table.machine.cores} workers train: garbage collector and main ${(helperLoad * 100).toFixed(1)}% of a core, JIT compiler ${(compilerLoad * 100).toFixed(1)}% (medians of ${helperLoads.length} epochs), in slices of ${(helperSliceSeconds * 1e6).toFixed(0)} µs`
      : "  no per-thread CPU account on this system: the helper threads' time is taken as 0",
  );
  return { callSecondsAt: perK, callSecondsByRole: byRole, runSeconds, helperLoad, compilerLoad, helperSliceSeconds };
}

export interface ThreadFit {
  callSecondsAt: number[];
  callSecondsByRole: Record<string, number[]>;
  runSeconds: number;
  helperLoad: number;
  compilerLoad: number;
  helperSliceSeconds: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function report(table: CostTable, say: (line: string) => void): void {
  say("kernel                      unit      shapes  fixed µs   per unit (+ per byte)         fit error   (streaming kernels: GB/s at footprints 16 KiB/256 KiB/4 MiB/16 MiB)");
  for (const [name, c] of Object.entries(table.kernels)) {
    const unit = WORK[name]!.unit;
    // A streaming kernel's rate by its footprint: GB/s of its operands at 16 KiB, 256 KiB, 4 and 16 MiB.
    const warm = c.warm ? [16 << 10, 256 << 10, 4 << 20, 16 << 20].map((f) => (1e-9 / curveAt(c.warm!.footprints, c.warm!.secondsPerByte, f)).toFixed(0)).join("/") + " GB/s" : null;
    const rate = warm ?? (unit === "flops" ? `${(1e-9 / c.perUnit).toFixed(1)} GFLOP/s` : `${(c.perUnit * 1e9).toFixed(3)} ns/elem`);
    const bytes = (c.perByte ? ` + ${(1e-9 / c.perByte).toFixed(1)} GB/s` : "") + (c.perMore ?? []).map((x, i) => ` + ${(x * 1e9).toFixed(3)} ns/${WORK[name]!.more![i]!.what}`).join("");
    say(`${name.padEnd(28)}${unit.padEnd(10)}${String(c.shapes).padStart(6)}  ${(c.fixed * 1e6).toFixed(2).padStart(8)}   ${(rate + bytes).padEnd(30)}${(c.fitError * 100).toFixed(1).padStart(6)}%`);
  }
  say(`contention: speedup of k programs at once = ${table.machine.speedup.join(", ")} (k = 1…${table.machine.cores})`);
}

