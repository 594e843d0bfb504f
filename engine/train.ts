/**
 * A training run from configuration to summary: open a session (kernels, data, arena, workers), run
 * its epochs, evaluate after each, log metrics, checkpoint, and summarise.
 *
 * This file owns the run's lifecycle; what one epoch does lives in engine/algorithms/ (one file per
 * algorithm, listed in the registry), and per-step coordination never passes through here.
 */
import { dirname, join } from "node:path";
import { asyncOptionsOf, type TrainConfig } from "./algorithms/config.ts";
import { DivergedError, StoppedError, UserError } from "./errors.ts";
import { RunFolder, type RunStatus } from "./run-folder.ts";
import type { FaultPlan } from "./runtime/fault.ts";
import { traceEvents, type SpanLog, type TraceEvent } from "./runtime/trace.ts";
import { summarizeStaleness } from "./algorithms/async/staleness.ts";
import { CHECKPOINT_FILE, loadCheckpoint, type LoadedCheckpoint } from "./checkpoint/checkpoint.ts";
import { stopRequested, TrainingSession, type SessionOptions } from "./session.ts";
import { flopCores, flopSummary } from "./run-flops.ts";
import { CeilingProbe, probeAfter, probeMs } from "./kernels/ceiling.ts";
import { arenaReport, controlOverhead, kernelShares, measuredBeta, runStaleness, type EpochMetrics, type EpochOutcome, type Progress, type Summary } from "./run-metrics.ts";

export type { TrainConfig } from "./algorithms/config.ts";
export type { EpochMetrics, Progress, Summary } from "./run-metrics.ts";
export { divergenceAdvice, requestStop, TrainingSession } from "./session.ts";

export interface TrainOptions {
  /** Run folder: metrics.jsonl, summary.json, checkpoint.safetensors, trace.json. */
  out?: string;
  /** Replace a run already in `out` (otherwise such a folder is refused, unless resuming it). */
  overwrite?: boolean;
  /** A checkpoint (or run folder holding one) to continue from. */
  resume?: LoadedCheckpoint;
  /** Called once every input has been checked and the workers are up. */
  onStart?: () => void;
  onProgress?: (p: Progress) => void;
  onEpoch?: (m: EpochMetrics) => void;
  /** Tests only: make a worker fail. */
  fault?: FaultPlan;
  /** Threads executor: how long a call on the workers may show no progress before the run is declared stuck. */
  watchdogMs?: number;
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
  /** A run that spans processes (engine/run-processes.ts sets it): this process's place and executor. */
  distributed?: SessionOptions["distributed"];
}

export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<Summary> {
  const started = performance.now();
  const session = await TrainingSession.open(config, { ...options, trace: options.trace ?? Boolean(options.out) });
  const namedTracks = new Set<number>();
  const out = options.out ?? null;
  let folder: RunFolder | null = null;
  let trainSeconds = 0;
  let samplesTrained = 0;
  let updates = 0;
  let last: EpochMetrics | null = null;
  const epochResults: EpochOutcome[] = [];
  const summarize = (status: RunStatus, final: Partial<EpochMetrics> | null): Summary => {
    const staleness = runStaleness(epochResults);
    const stages = session.plan.summary?.().stages;
    return {
      algo: config.algo,
      model: config.model,
      data: session.dataset.source,
      epochs: config.epochs,
      workers: session.setup.programs,
      batch: config.batch,
      optimizer: config.optimizer.kind,
      lr: config.optimizer.lr,
      seed: config.seed,
      kernels: session.kernels,
      status,
      epochsDone: session.epochsDone,
      seconds: session.executor.clock?.totalSeconds ?? (performance.now() - started) / 1000,
      ...(session.simulation ? { simulated: true, simulation: session.simulation, wallSeconds: (performance.now() - started) / 1000 } : {}),
      trainSeconds,
      samplesPerSec: trainSeconds > 0 ? samplesTrained / trainSeconds : 0,
      updatesPerSec: trainSeconds > 0 ? updates / trainSeconds : 0,
      ...(staleness ? { staleness } : {}),
      // Algorithms of forward and backward threads (layerwise, layup): β measured on real threads.
      ...(session.algorithm.flags.includes("fwd-threads") && config.executor === "threads" ? { beta: measuredBeta(epochResults, asyncOptionsOf(config)) } : {}),
      ...(options.profileKernels ? { controlOverhead: controlOverhead(epochResults), kernelShares: kernelShares(epochResults) } : {}),
      trainLoss: final?.trainLoss ?? NaN,
      testLoss: final?.testLoss ?? NaN,
      testAccuracy: final?.testAccuracy ?? NaN,
      // Language models (gpt on text): testLoss is nats per character; the same in bits beside it.
      ...(session.net.positions > 1 && final?.testLoss !== undefined ? { testBitsPerChar: final.testLoss / Math.LN2 } : {}),
      ...(final?.consensusDistance !== undefined ? { consensusDistance: final.consensusDistance } : {}),
      ...(final?.nodeTestAccuracy !== undefined ? { nodeTestAccuracy: final.nodeTestAccuracy } : {}),
      ...(final?.bytesPerNodeStep !== undefined ? { bytesPerNodeStep: final.bytesPerNodeStep } : {}),
      ...(last?.inconsistency ? { inconsistency: last.inconsistency } : {}),
      ...(stages ? { stages } : {}),
      parameters: session.net.parameterCount,
      ...(options.distributed?.summary ? { processes: options.distributed.summary(epochResults.length * session.stepsPerEpoch) } : {}),
      peakRssBytes: session.peakRssBytes(),
      arena: arenaReport(session.setup.plan, session.memory),
      out,
    };
  };
  try {
    // Inputs are all checked by now (data, model, checkpoint, workers started): only now write.
    if (out) {
      const resume = options.resume && { from: dirname(options.resume.path), epochsDone: options.resume.state.epochsDone };
      folder = await RunFolder.open({ out, resume, overwrite: options.overwrite });
      await folder.writeSummary(summarize("running", null));
    }
    options.onStart?.();
    // The multiply-add ceiling in this run's conditions, short windows between epochs (not in a
    // simulated run, whose seconds are virtual).
    const ceiling = session.executor.clock ? null : await CeilingProbe.open();
    const firstEpoch = session.epochsDone;
    while (session.epochsDone < config.epochs) {
      throwIfStopped();
      const epoch = await session.trainEpoch(options.onProgress);
      if (probeAfter(session.epochsDone - 1 - firstEpoch, config.epochs - firstEpoch)) ceiling?.sample(probeMs(epoch.seconds));
      trainSeconds += epoch.seconds;
      samplesTrained += epoch.samples;
      updates += epoch.updates;
      epochResults.push(epoch);
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
      if (folder) {
        // Metrics line first (a resume drops lines past the checkpoint), then this epoch's trace, the
        // checkpoint, and the summary that points at it.
        await folder.appendMetrics(last);
        const events: TraceEvent[] = [];
        epoch.results.forEach((r, w) => {
          if (!r.trace) return;
          const track = session.plan.trackName?.(w) ?? `worker ${w}`;
          events.push(...toTraceEvents(r.trace, w, r.process ? `${r.process}: ${track}` : track, !namedTracks.has(w)));
          namedTracks.add(w);
        });
        folder.appendTrace(session.epochsDone, events, Date.now() * 1000);
        await session.checkpoint(folder.checkpointPath());
        await folder.writeSummary(summarize("running", last));
      }
      // Only one epoch's spans are kept: the trace streams to the run folder.
      for (const r of epoch.results) delete r.trace;
    }
    const final = last ?? { trainLoss: NaN, ...(await session.evaluate()), ...(await session.epochMetrics()) };
    options.onFinish?.(session.params());
    const flops = trainSeconds > 0 ? await flopSummary(session.net, samplesTrained / trainSeconds, flopCores(config.executor, session.setup.programs, session.simulation), ceiling?.gflopsPerCore()) : undefined;
    const summary: Summary = { ...summarize("completed", final), ...(flops ? { flops } : {}) };
    if (folder) await folder.writeSummary(summary);
    return summary;
  } catch (caught) {
    // Workers told to stop by a signal fail with "stopped"; the cause to report is the signal.
    const stop = stopRequested();
    const e = stop && !(caught instanceof UserError) ? stop : caught;
    if (folder) {
      const status: RunStatus = e instanceof DivergedError ? "diverged" : e instanceof StoppedError ? "stopped" : "failed";
      const reason = e instanceof Error ? e.message.split("\n")[0]! : String(e);
      // The folder must say why it ends here; a second failure (disk full) must not hide the first.
      await folder.writeSummary({ ...summarize(status, last), failedEpoch: session.epochsDone + 1, reason }).catch(() => {});
    }
    throw e;
  } finally {
    folder?.close();
    session.close();
  }
}

function throwIfStopped(): void {
  const stop = stopRequested();
  if (stop) throw stop;
}

/** One program's spans as trace events; its track name only once per run. */
function toTraceEvents(log: SpanLog, worker: number, track: string, first: boolean): TraceEvent[] {
  const events = traceEvents(log, worker, track);
  return first ? events : events.filter((e) => e.ph !== "M");
}

/** `--resume DIR` accepts the run folder or the checkpoint file itself. */
export async function openResume(path: string): Promise<LoadedCheckpoint> {
  const file = path.endsWith(".safetensors") ? path : join(path, CHECKPOINT_FILE);
  return loadCheckpoint(file);
}
