/**
 * A training run from configuration to summary: open a session (kernels, data, arena, workers), run
 * its epochs, evaluate after each, log metrics, checkpoint, and summarise.
 *
 * This file owns the run's lifecycle; what one epoch does lives in engine/algorithms/ (one file per
 * algorithm, listed in the registry), and per-step coordination never passes through here.
 */
import { mkdir, appendFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { asyncOptionsOf, type TrainConfig } from "./algorithms/config.ts";
import { UserError } from "./errors.ts";
import type { FaultPlan } from "./runtime/fault.ts";
import { traceEvents, type SpanLog, type TraceEvent } from "./runtime/trace.ts";
import { summarizeStaleness } from "./algorithms/async/staleness.ts";
import { CHECKPOINT_FILE, loadCheckpoint, type LoadedCheckpoint } from "./checkpoint/checkpoint.ts";
import { TrainingSession } from "./session.ts";
import { arenaReport, controlOverhead, measuredBeta, runStaleness, type EpochMetrics, type EpochOutcome, type Progress, type Summary } from "./run-metrics.ts";

export type { TrainConfig } from "./algorithms/config.ts";
export type { EpochMetrics, Progress, Summary } from "./run-metrics.ts";
export { TrainingSession } from "./session.ts";

export interface TrainOptions {
  /** Run folder: metrics.jsonl, summary.json, checkpoint.safetensors. */
  out?: string;
  /** A checkpoint (or run folder holding one) to continue from. */
  resume?: LoadedCheckpoint;
  /** Called once every input has been checked and the workers are up. */
  onStart?: () => void;
  onProgress?: (p: Progress) => void;
  onEpoch?: (m: EpochMetrics) => void;
  /** Tests only: make a worker fail. */
  fault?: FaultPlan;
  /** Deterministic executor: the interleaving's seed (default: the run's seed). */
  schedulerSeed?: number;
  /** Record spans per worker; train() writes them to trace.json in the run folder (default: when `out` is set). */
  trace?: boolean;
  /** Time kernel calls: the summary then reports the fraction of busy time spent outside kernels. */
  profileKernels?: boolean;
  /** Tests only: keep Σ of every applied gradient per replica (async algorithms), see TrainingSession.ledger. */
  audit?: boolean;
  /** Read the final parameters (tests compare runs bitwise). */
  onFinish?: (params: Float32Array) => void;
}

export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<Summary> {
  const started = performance.now();
  const session = await TrainingSession.open(config, { ...options, trace: options.trace ?? Boolean(options.out) });
  const traceEvents: TraceEvent[] = [];
  const namedTracks = new Set<number>();
  const out = options.out ?? null;
  let trainSeconds = 0;
  let samplesTrained = 0;
  let updates = 0;
  let last: EpochMetrics | null = null;
  const epochResults: EpochOutcome[] = [];
  try {
    // Inputs are all checked by now (data, model, checkpoint, workers started): only now write.
    if (out) await prepareRunFolder(out, Boolean(options.resume));
    options.onStart?.();
    while (session.epochsDone < config.epochs) {
      const epoch = await session.trainEpoch(options.onProgress);
      trainSeconds += epoch.seconds;
      samplesTrained += epoch.samples;
      updates += epoch.updates;
      epochResults.push(epoch);
      epoch.results.forEach((r, w) => {
        if (!r.trace) return;
        traceEvents.push(...toTraceEvents(r.trace, w, session.plan.trackName?.(w) ?? `worker ${w}`, !namedTracks.has(w)));
        namedTracks.add(w);
      });
      last = {
        epoch: session.epochsDone,
        steps: session.epochsDone * session.stepsPerEpoch,
        trainLoss: epoch.trainLoss,
        ...(await session.evaluate()),
        trainSeconds: epoch.seconds,
        samplesPerSec: epoch.samples / epoch.seconds,
        updatesPerSec: epoch.updates / epoch.seconds,
        elapsedSeconds: session.executor.clock?.totalSeconds ?? (performance.now() - started) / 1000,
        busy: epoch.busy,
        ...(epoch.results.some((r) => r.inconsistency !== undefined) ? { inconsistency: epoch.results.map((r) => r.inconsistency ?? 0) } : {}),
        ...(epoch.staleness ? { staleness: summarizeStaleness(epoch.staleness) } : {}),
        ...(await session.epochMetrics()),
      };
      options.onEpoch?.(last);
      if (out) {
        await appendFile(join(out, "metrics.jsonl"), JSON.stringify(last) + "\n");
        await session.checkpoint(join(out, CHECKPOINT_FILE));
      }
    }
    const final = last ?? { trainLoss: NaN, ...(await session.evaluate()), ...(await session.epochMetrics()) };
    options.onFinish?.(session.params());
    const staleness = runStaleness(epochResults);
    const stages = session.plan.summary?.().stages;
    const summary: Summary = {
      algo: config.algo,
      model: config.model,
      data: session.dataset.source,
      epochs: config.epochs,
      workers: session.setup.workers,
      batch: config.batch,
      optimizer: config.optimizer.kind,
      lr: config.optimizer.lr,
      seed: config.seed,
      kernels: session.kernels,
      seconds: session.executor.clock?.totalSeconds ?? (performance.now() - started) / 1000,
      ...(session.simulation ? { simulated: true, simulation: session.simulation, wallSeconds: (performance.now() - started) / 1000 } : {}),
      trainSeconds,
      samplesPerSec: trainSeconds > 0 ? samplesTrained / trainSeconds : 0,
      updatesPerSec: trainSeconds > 0 ? updates / trainSeconds : 0,
      ...(staleness ? { staleness } : {}),
      ...(config.algo === "layerwise" && config.executor === "threads" ? { beta: measuredBeta(epochResults, asyncOptionsOf(config)) } : {}),
      ...(options.profileKernels ? { controlOverhead: controlOverhead(epochResults) } : {}),
      trainLoss: final.trainLoss,
      testLoss: final.testLoss,
      testAccuracy: final.testAccuracy,
      ...(final.consensusDistance !== undefined ? { consensusDistance: final.consensusDistance } : {}),
      ...(final.nodeTestAccuracy !== undefined ? { nodeTestAccuracy: final.nodeTestAccuracy } : {}),
      ...(final.bytesPerNodeStep !== undefined ? { bytesPerNodeStep: final.bytesPerNodeStep } : {}),
      ...(last?.inconsistency ? { inconsistency: last.inconsistency } : {}),
      ...(stages ? { stages } : {}),
      parameters: session.net.parameterCount,
      peakRssBytes: session.peakRssBytes(),
      arena: arenaReport(session.setup.plan, session.memory),
      out,
    };
    if (out) {
      await Bun.write(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
      if (traceEvents.length > 0) await Bun.write(join(out, "trace.json"), JSON.stringify({ traceEvents, displayTimeUnit: "ms" }));
    }
    return summary;
  } finally {
    session.close();
  }
}

/** One program's spans as trace events; its track name only once per run. */
function toTraceEvents(log: SpanLog, worker: number, track: string, first: boolean): TraceEvent[] {
  const events = traceEvents(log, worker, track);
  return first ? events : events.filter((e) => e.ph !== "M");
}

async function prepareRunFolder(out: string, resuming: boolean): Promise<void> {
  try {
    await mkdir(out, { recursive: true });
    if (!resuming) await rm(join(out, "metrics.jsonl"), { force: true });
  } catch (e) {
    throw new UserError(`--out ${out}: cannot create the run folder (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** `--resume DIR` accepts the run folder or the checkpoint file itself. */
export async function openResume(path: string): Promise<LoadedCheckpoint> {
  const file = path.endsWith(".safetensors") ? path : join(path, CHECKPOINT_FILE);
  return loadCheckpoint(file);
}
