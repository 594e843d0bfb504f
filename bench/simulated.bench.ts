/**
 * The simulated executor against reality, on this machine:
 *
 *   npx bun bench/simulated.bench.ts [--workers 1,2] [--models mlp,lenet] [--algos sync,hogwild,...]
 *                                    [--repeats 3] [--epochs 2] [--costs FILE] [--full] [--profile]
 *                                    [--overhead-only | --no-overhead] [--against FILE]
 *
 * 1. Validation, with the cost table calibrated in the same run: `skein calibrate` (quick unless
 *    --full; or the table --costs names) on the models' shapes at the start, then per algorithm, model
 *    and P, one threaded session trained past its JIT compilation (WARM_EPOCHS epochs, as calibrate
 *    measures), then --repeats rounds of
 *      probe → --epochs epochs of that threaded session → probe → simulated session,
 *    where a probe replays the model's training step on 1 thread and on P threads at once (see
 *    engine/cli/step-replay.ts) and the round's table is the start table with the machine as the
 *    probes found it just then (kernels-in-context factor and the speedup of P threads). A round's
 *    threaded figure is the median of its --epochs timed epochs; the
 *    simulation runs the same configuration under the round's table. Printed: the medians over
 *    rounds, sim/threads with the start table (drift included), with the round's tables (the model's
 *    own error), the CPU the process's other threads (compiler, garbage collector, main) took per
 *    measured threaded epoch, and fastest against fastest (the quickest threaded epoch of all rounds against the
 *    simulation under the quickest probe's machine: on a shared host other load only ever slows
 *    either down), the mean staleness of both (asynchronous ones), and load averages.
 *    P is the program count: workers (sync, hogwild, dmsgd), stages (gpipe, pipedream), layerwise
 *    threads (1 forward + P−1 backward; P = 1 is skipped).
 *    --profile: also per kernel, the milliseconds a profiled threaded session spent in each kernel
 *    against the simulated ones (one round), and the busy time outside kernels.
 *    --against FILE: a second start table simulated in the same rounds against the same threaded
 *    epochs and probes (each table with the round's machine, its own kernels-in-context factor), so
 *    two tables are compared paired: its sim/thr start, now and best are printed after the first's.
 * 2. Overhead: wall seconds of a simulated epoch over a deterministic-executor epoch of the same
 *    configuration (same programs, same interleaving machinery), alternating, median of ratios.
 *
 * Run it under the shared lock, one model at a time (each under ~3 minutes on the 2-core machine):
 *   flock /tmp/skein-bench.lock npx bun bench/simulated.bench.ts --models mlp --no-overhead
 * On a machine with more cores (e.g. 16): --workers 4,8,16 gives the same table there (the start
 * calibration then measures contention up to the machine's cores).
 */
import { writeFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { overallStaleness, summarizeStaleness } from "../engine/algorithms/async/staleness.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { Network } from "../engine/model/network.ts";
import type { EpochOutcome } from "../engine/run-metrics.ts";
import { calibrate, WARM_EPOCHS } from "../engine/cli/calibrate-command.ts";
import { helperCpu, helperCpuSince } from "../engine/cli/calibrate-helpers.ts";
import { StepReplay } from "../engine/cli/step-replay.ts";
import { loadCostTable, type CostTable } from "../engine/runtime/costs.ts";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { benchArgs, intListFlag, numberFlag } from "./args.ts";

const SCRIPT = "simulated.bench";
const { values: flags } = benchArgs(SCRIPT, {
  options: {
    workers: { type: "string" },
    models: { type: "string" },
    algos: { type: "string" },
    repeats: { type: "string" },
    epochs: { type: "string" },
    costs: { type: "string" },
    full: { type: "boolean" },
    profile: { type: "boolean" },
    "overhead-only": { type: "boolean" },
    "no-overhead": { type: "boolean" },
    against: { type: "string" },
  },
});
const WORKERS = intListFlag(SCRIPT, "workers", flags.workers ?? "1,2");
const MODELS: Record<string, string> = { mlp: "mlp:784-256-128-10", lenet: "lenet" };
const models = (flags.models ?? "mlp,lenet").split(",");
for (const m of models) if (!MODELS[m]) fail(`--models ${m}: want mlp or lenet`);
const ALGOS = (flags.algos ?? "sync,hogwild,layerwise,gpipe,pipedream,dmsgd").split(",");
const REPEATS = numberFlag(SCRIPT, "repeats", flags.repeats, 3, { min: 1, integer: true });
const EPOCHS = numberFlag(SCRIPT, "epochs", flags.epochs, 2, { min: 1, integer: true });
/** Milliseconds of one probe trial (the step replay): long enough for tens of lenet steps. */
const PROBE_MS = 120;

function fail(message: string): never {
  console.error(`${SCRIPT}: ${message}`);
  process.exit(2);
}

/** The configuration of `algo` with P programs, or null where P does not fit it. */
function configOf(algo: string, model: string, P: number): TrainConfig | null {
  const base: TrainConfig = { algo, model: MODELS[model]!, data: "digits", epochs: 1 + EPOCHS, batch: 64, workers: P, executor: "threads", seed: 1, optimizer: defaultOptimizer("momentum") };
  switch (algo) {
    case "layerwise":
      return P < 2 ? null : { ...base, async: { fwdThreads: 1, bwdThreads: P - 1, queue: P } };
    case "gpipe":
    case "pipedream":
    case "1f1b":
      // A stage needs a layer with parameters: deeper pipelines than the model allows are skipped.
      return P > new Network(base.model, [1, 28, 28], 10).trainableLayers.length ? null : { ...base, pipeline: { stages: P, microbatches: 4 } };
    case "dmsgd":
    case "pmsgd":
    case "decentlam":
      return { ...base, gossip: { nodes: Math.max(8, P) } };
    default:
      return base;
  }
}

interface Epochs {
  seconds: number[];
  staleness: number | null;
  wall: number[];
  last: EpochOutcome;
  /** Mean CPU milliseconds per epoch of the process's threads other than the workers (NaN: no account). */
  helperMs: number;
}

/** Per epoch after the first: seconds, and the mean staleness when the algorithm records it. */
async function epochs(config: TrainConfig, profileKernels = false): Promise<Epochs> {
  const session = await TrainingSession.open(config, { profileKernels });
  try {
    await session.trainEpoch(); // warm-up: first touch of the arena (and the JIT, for a threaded one)
    return await measure(session, config.epochs - 1);
  } finally {
    session.close();
  }
}

/** `count` epochs of an open session: their seconds, wall seconds, the staleness of the last. */
async function measure(session: TrainingSession, count: number): Promise<Epochs> {
  const seconds: number[] = [];
  const wall: number[] = [];
  const outcomes: EpochOutcome[] = [];
  let helpers = 0;
  for (let e = 0; e < count; e++) {
    const started = performance.now();
    const before = helperCpu();
    const outcome = await session.trainEpoch();
    helpers += helperCpuSince(before, helperCpu())?.seconds ?? NaN;
    seconds.push(outcome.seconds);
    wall.push((performance.now() - started) / 1000);
    outcomes.push(outcome);
  }
  const report = outcomes.map((o) => o.staleness).filter((s) => s !== undefined);
  const staleness = report.length > 0 ? overallStaleness(summarizeStaleness(report[report.length - 1]!)).mean : null;
  return { seconds, staleness, wall, last: outcomes[outcomes.length - 1]!, helperMs: (helpers / count) * 1000 };
}

/**
 * A threaded session past its warm-up: its first epochs run while the engine still compiles the
 * programs on helper threads, which at P = cores take a core from the workers (in fresh mlp dmsgd
 * sessions 15–36 ms of helper CPU in each of the first three epochs, 2–10 ms later); the simulator
 * models a session whose code is compiled, as `skein calibrate` measures it (WARM_EPOCHS).
 */
async function warmThreads(config: TrainConfig, profileKernels = false): Promise<TrainingSession> {
  const session = await TrainingSession.open({ ...config, epochs: 10_000 }, { profileKernels });
  for (let e = 0; e < WARM_EPOCHS; e++) await session.trainEpoch();
  return session;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number | null, digits = 3) => (x === null ? "-" : x.toFixed(digits));
const load = () => loadavg()[0]!.toFixed(2);

/** Tables handed to simulated sessions live in files (the executor reads --costs FILE). */
const tableFiles: string[] = [];
function tableFile(table: CostTable): string {
  const path = join(tmpdir(), `skein-simulated-bench-${process.pid}-${tableFiles.length}.json`);
  writeFileSync(path, JSON.stringify(table));
  tableFiles.push(path);
  return path;
}
process.on("exit", () => tableFiles.forEach((p) => rmSync(p, { force: true })));

/**
 * The machine as it is now, for model `m` with P programs: the start table with its kernels-in-context
 * factor and its speedup of P threads as a replay of the model's step finds them. Short trials, many,
 * medians: on a shared host other load comes in bursts, and a burst in one long trial moves a mean by
 * tens of percent (a 120 ms one-thread trial in a burst made two threads look 2.3× as fast as one).
 */
async function probe(replay: StepReplay, m: number, P: number, start: CostTable): Promise<{ contextFactor: number; speedupP: number | null }> {
  const alone = replay.aloneSeconds(m, start);
  const here = replay.stepSeconds(m, PROBE_MS / 7, 7);
  lastStep = here;
  let speedupP: number | null = null;
  if (P > 1 && P <= start.machine.cores) {
    // One thread and P threads in turn, the median of the rates of each (at most P: see above).
    const one: number[] = [];
    const many: number[] = [];
    for (let t = 0; t < 3; t++) {
      one.push(await replay.throughput(1, PROBE_MS / 3, m));
      many.push(await replay.throughput(P, PROBE_MS / 3, m));
    }
    speedupP = Math.min(P, median(many) / median(one));
  }
  return { contextFactor: here / alone, speedupP };
}

/** The last probe's replayed step, seconds: what the second table's kernels-in-context factor is taken against. */
let lastStep = NaN;

/** A probe as the second table (--against) sees it: the same replayed step over its own kernels' costs. */
function probeFor(table: CostTable, replay: StepReplay, m: number, p: Awaited<ReturnType<typeof probe>>, step: number): Awaited<ReturnType<typeof probe>> {
  return { contextFactor: step / replay.aloneSeconds(m, table), speedupP: p.speedupP };
}

function roundTable(start: CostTable, P: number, a: Awaited<ReturnType<typeof probe>>, b: Awaited<ReturnType<typeof probe>>): CostTable {
  const speedup = [...start.machine.speedup];
  if (a.speedupP !== null && b.speedupP !== null) speedup[P - 1] = (a.speedupP + b.speedupP) / 2;
  return { ...start, contextFactor: (a.contextFactor + b.contextFactor) / 2, machine: { ...start.machine, speedup } };
}

/** Milliseconds per kernel over all programs of an epoch, and busy time outside kernels. */
function kernelTotals(e: Epochs): { byName: Record<string, number>; outside: number } {
  const byName: Record<string, number> = {};
  let outside = 0;
  for (const r of e.last.results) {
    for (const [k, ms] of Object.entries(r.kernelMsByName ?? {})) byName[k] = (byName[k] ?? 0) + ms;
    outside += r.elapsedMs - r.waitedMs - (r.kernelMs ?? 0);
  }
  return { byName, outside };
}

function printProfile(threads: Epochs, sim: Epochs): void {
  const t = kernelTotals(threads);
  const s = kernelTotals(sim);
  const names = Object.keys({ ...t.byName, ...s.byName }).sort((x, y) => (t.byName[y] ?? 0) - (t.byName[x] ?? 0));
  const shown = names.filter((n) => (t.byName[n] ?? 0) + (s.byName[n] ?? 0) > 0.5);
  console.log(`    per kernel, ms (threads profiled / simulated): ${shown.map((n) => `${n} ${fmt(t.byName[n] ?? 0, 1)}/${fmt(s.byName[n] ?? 0, 1)}`).join(", ")}; busy outside kernels ${fmt(t.outside, 1)}/${fmt(s.outside, 1)}`);
  const waits = (e: Epochs) => e.last.results.map((r) => fmt(r.waitedMs, 0)).join("+");
  console.log(`    waited ms per program: threads ${waits(threads)}, simulated ${waits(sim)}`);
}

if (!flags["overhead-only"]) {
  const { module } = await loadKernelModule();
  const specs = models.map((m) => MODELS[m]!);
  const cores = navigator.hardwareConcurrency;
  console.log(`Validation on ${cores} cores; load average ${load()} at the start`);
  const start = flags.costs
    ? loadCostTable(flags.costs)
    : await calibrate({ models: Object.values(MODELS), data: "digits", quick: !flags.full, say: () => {} }); // every kernel needs a shape
  console.log(`Start table: ${flags.costs ? flags.costs : `calibrated now (${flags.full ? "full" : "quick"})`}; speedup ${start.machine.speedup.join(", ")}, kernels in context ×${start.contextFactor.toFixed(3)}, ${(start.callSecondsAt ?? [start.callSeconds]).map((s) => (s * 1e6).toFixed(2)).join(" / ")} µs around each call (1…k threads; ${Object.entries(start.callSecondsByRole ?? {}).map(([r, at]) => `${r} ${at.map((s) => (s * 1e6).toFixed(2)).join(" / ")}`).join(", ")}), ${(start.runSeconds * 1e3).toFixed(2)} ms per epoch's call, helpers ${(start.helperLoad * 100).toFixed(1)}% of a core${start.compilerLoad !== undefined ? ` and the JIT compiler ${(start.compilerLoad * 100).toFixed(1)}%` : ""} in ${(start.helperSliceSeconds * 1e6).toFixed(0)} µs slices`);
  const startFile = tableFile(start);
  const against = flags.against ? loadCostTable(flags.against) : null;
  if (against) console.log(`Against: ${flags.against} (B), kernels in context ×${against.contextFactor.toFixed(3)}, speedup ${against.machine.speedup.join(", ")}`);
  const againstFile = against ? tableFile(against) : "";
  const replay = StepReplay.build(module, specs, [1, 28, 28], 10, Math.min(cores, Math.max(...WORKERS)));
  await replay.start();
  // The calling thread's kernels warm up too (its first probe ran a fifth slower: the first cell's
  // context factor came out 1.16-1.21 in four runs, later cells' 0.95-1.05).
  for (const m of models.keys()) replay.stepSeconds(m, 300, 1);
  console.log(`Rounds: probe, threads (median of ${EPOCHS} epochs of one session warmed ${WARM_EPOCHS} epochs), probe, simulated; medians of ${REPEATS} rounds. sim/thr start: the start table; now: each round's table; best: the fastest threaded epoch against the fastest probe's table`);
  console.log(`algo       model  P  threads s  sim s(now)  sim/thr start  sim/thr now  sim/thr best  ctx now  speedupP  staleness thr  staleness sim  helpers ms${against ? "  B: start    now   best" : ""}  load`);
  let within = 0;
  let withinBest = 0;
  const withinB = { start: 0, now: 0, best: 0 };
  let cells = 0;
  try {
    for (const [m, model] of models.entries()) {
      for (const algo of ALGOS) {
        for (const P of WORKERS) {
          const config = configOf(algo, model, P);
          if (!config) continue;
          const threads: number[] = [];
          const sims: number[] = [];
          const ratios: number[] = [];
          const stale: number[] = [];
          let simStaleness: number | null = null;
          const contexts: number[] = [];
          const speedups: number[] = [];
          const loads: string[] = [];
          const allEpochs: number[] = [];
          const best: Awaited<ReturnType<typeof probe>> = { contextFactor: Infinity, speedupP: null };
          const bestB: Awaited<ReturnType<typeof probe>> = { contextFactor: Infinity, speedupP: null };
          const ratiosB: number[] = [];
          const helperMs: number[] = [];
          const threaded = await warmThreads(config);
          for (let r = 0; r < REPEATS; r++) {
            loads.push(load());
            const before = await probe(replay, m, P, start);
            const stepBefore = lastStep;
            const t = await measure(threaded, EPOCHS);
            const after = await probe(replay, m, P, start);
            helperMs.push(t.helperMs);
            if (against) {
              const [b0, b1] = [probeFor(against, replay, m, before, stepBefore), probeFor(against, replay, m, after, lastStep)];
              for (const p of [b0, b1]) {
                bestB.contextFactor = Math.min(bestB.contextFactor, p.contextFactor);
                if (p.speedupP !== null) bestB.speedupP = Math.max(bestB.speedupP ?? 0, p.speedupP);
              }
              const sb = await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(roundTable(against, P, b0, b1)) } });
              ratiosB.push(median(sb.seconds) / median(t.seconds));
            }
            allEpochs.push(...t.seconds);
            for (const p of [before, after]) {
              best.contextFactor = Math.min(best.contextFactor, p.contextFactor);
              if (p.speedupP !== null) best.speedupP = Math.max(best.speedupP ?? 0, p.speedupP);
            }
            const table = roundTable(start, P, before, after);
            const s = await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(table) } });
            threads.push(median(t.seconds));
            sims.push(median(s.seconds));
            ratios.push(median(s.seconds) / median(t.seconds));
            if (t.staleness !== null) stale.push(t.staleness);
            simStaleness = s.staleness;
            contexts.push(table.contextFactor);
            if (P > 1) speedups.push(table.machine.speedup[Math.min(P, table.machine.speedup.length) - 1]!);
          }
          threaded.close();
          const fromStart = await epochs({ ...config, executor: "simulated", simulation: { costs: startFile } });
          // Fastest against fastest: the quickest threaded epoch of all rounds against the simulation
          // under the quickest probe's machine (other load only ever slows either down).
          const bestTable = roundTable(start, P, best, best);
          const fromBest = await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(bestTable) } });
          const bestRatio = median(fromBest.seconds) / Math.min(...allEpochs);
          if (Math.abs(bestRatio - 1) <= 0.15) withinBest++;
          const real = median(threads);
          const ratio = median(ratios);
          cells++;
          if (Math.abs(ratio - 1) <= 0.15) within++;
          let columnsB = "";
          if (against) {
            const startB = median((await epochs({ ...config, executor: "simulated", simulation: { costs: againstFile } })).seconds) / real;
            const bestRatioB = median((await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(roundTable(against, P, bestB, bestB)) } })).seconds) / Math.min(...allEpochs);
            const nowB = median(ratiosB);
            for (const [key, r] of [["start", startB], ["now", nowB], ["best", bestRatioB]] as const) if (Math.abs(r - 1) <= 0.15) withinB[key]++;
            columnsB = `  ${fmt(startB, 2).padStart(8)} ${fmt(nowB, 2).padStart(6)} ${fmt(bestRatioB, 2).padStart(6)}`;
          }
          const line = [
            algo.padEnd(10), model.padEnd(6), String(P).padStart(2), fmt(real).padStart(10), fmt(median(sims)).padStart(11),
            fmt(median(fromStart.seconds) / real, 2).padStart(14), fmt(ratio, 2).padStart(12), fmt(bestRatio, 2).padStart(13), fmt(median(contexts), 2).padStart(8),
            (speedups.length ? fmt(median(speedups), 2) : "-").padStart(9),
            fmt(stale.length ? median(stale) : null, 2).padStart(14), fmt(simStaleness, 2).padStart(14), fmt(median(helperMs), 1).padStart(10) + columnsB, `  ${loads.join(" ")}`,
          ];
          console.log(line.join(" "));
          if (flags.profile) {
            const before = await probe(replay, m, P, start);
            const stepBefore = lastStep;
            const warm = await warmThreads(config, true);
            const t = await measure(warm, EPOCHS).finally(() => warm.close());
            const after = await probe(replay, m, P, start);
            printProfile(t, await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(roundTable(start, P, before, after)) } }, true));
            if (against) {
              console.log("    B:");
              printProfile(t, await epochs({ ...config, executor: "simulated", simulation: { costs: tableFile(roundTable(against, P, probeFor(against, replay, m, before, stepBefore), probeFor(against, replay, m, after, lastStep))) } }, true));
            }
          }
        }
      }
    }
  } finally {
    replay.close();
  }
  console.log(`${within} of ${cells} cells within ±15% (sim/thr now), ${withinBest} (sim/thr best); load average ${load()} at the end`);
  if (against) console.log(`B (${flags.against}): ${withinB.start} of ${cells} within ±15% (start), ${withinB.now} (now), ${withinB.best} (best)`);
}

if (!flags["no-overhead"]) {
  console.log(`\nOverhead: wall seconds of a simulated epoch / a deterministic epoch (same config, alternating, median of ${REPEATS * EPOCHS} ratios)`);
  console.log("algo       model  P  deterministic s  simulated s  ratio");
  for (const [algo, P] of [["sync", 2], ["hogwild", 4], ["layerwise", 3], ["gpipe", 3], ["dmsgd", 8]] as const) {
    const config = configOf(algo, "mlp", P)!;
    const ratios: number[] = [];
    const det: number[] = [];
    const sim: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const d = await epochs({ ...config, executor: "deterministic" });
      const s = await epochs({ ...config, executor: "simulated" });
      det.push(...d.wall);
      sim.push(...s.wall);
      d.wall.forEach((w, i) => ratios.push(s.wall[i]! / w));
    }
    console.log([algo.padEnd(10), "mlp".padEnd(6), String(P).padStart(2), fmt(median(det)).padStart(16), fmt(median(sim)).padStart(12), fmt(median(ratios), 2).padStart(6)].join(" "));
  }
}
