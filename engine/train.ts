/**
 * A training run from configuration to summary: load kernels and data, plan the arena, start the
 * workers, run epochs (each one a role program per worker), evaluate, log metrics, checkpoint.
 *
 * This file owns the run's lifecycle; the algorithm itself (what one epoch does) lives in
 * engine/algorithms/, and per-step coordination never passes through here.
 */
import { mkdir, appendFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadDataset, type Dataset } from "./data/index.ts";
import { RunError, UserError } from "./errors.ts";
import { loadKernelModule } from "./kernels/load.ts";
import { ArenaPlanner, bytesByKind, createSharedMemory, f32, type ArenaPlan } from "./memory/arena.ts";
import { Network } from "./model/network.ts";
import { shapeSize } from "./model/layers.ts";
import { parseModelSpec } from "./model/spec.ts";
import type { OptimizerConfig } from "./optim/optimizer.ts";
import { Rng } from "./rng.ts";
import { Control, planControl, WORD } from "./runtime/control.ts";
import { copyData, planData, planWorkerBuffers, type RunSetup } from "./runtime/context.ts";
import type { FaultPlan } from "./runtime/fault.ts";
import { WorkerPool } from "./runtime/pool.ts";
import { DeterministicExecutor } from "./runtime/deterministic.ts";
import type { Executor, ExecutorName } from "./runtime/executor.ts";
import { planOptimizerState, planSync, shardOf, stepsPerEpoch, type EpochResult } from "./algorithms/sync.ts";
import type { EvaluationResult } from "./algorithms/evaluate.ts";
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from "./checkpoint/checkpoint.ts";

export const ALGORITHMS = ["sync"] as const;
export type AlgorithmName = (typeof ALGORITHMS)[number];

export interface TrainConfig {
  algo: AlgorithmName;
  model: string;
  data: string;
  epochs: number;
  /** Global batch: the samples of one optimizer step, split across workers. */
  batch: number;
  workers: number;
  /** threads: real workers; deterministic: one thread, seeded interleaving (bitwise reproducible). */
  executor: ExecutorName;
  seed: number;
  optimizer: OptimizerConfig;
}

export interface TrainOptions {
  /** Run folder: metrics.jsonl, summary.json, checkpoint.safetensors. */
  out?: string;
  /** A checkpoint (or run folder holding one) to continue from. */
  resume?: LoadedCheckpoint;
  onProgress?: (p: Progress) => void;
  onEpoch?: (m: EpochMetrics) => void;
  /** Tests only. */
  fault?: FaultPlan;
  /** Read the final parameters (tests compare runs bitwise). */
  onFinish?: (params: Float32Array) => void;
}

export interface Progress {
  epoch: number; // 1-based
  epochs: number;
  epochFraction: number;
  samplesPerSec: number;
  loss: number;
  etaSec: number;
}

export interface EpochMetrics {
  epoch: number;
  steps: number;
  trainLoss: number;
  testLoss: number;
  testAccuracy: number;
  trainSeconds: number;
  samplesPerSec: number;
  elapsedSeconds: number;
}

export interface Summary {
  algo: string;
  model: string;
  data: string;
  epochs: number;
  workers: number;
  batch: number;
  optimizer: string;
  lr: number;
  seed: number;
  kernels: string;
  seconds: number;
  trainSeconds: number;
  samplesPerSec: number;
  trainLoss: number;
  testLoss: number;
  testAccuracy: number;
  parameters: number;
  peakRssBytes: number;
  arena: { bytes: number; neededBytes: number; overhead: number; byRegion: Record<string, number> };
  out: string | null;
}

const PROGRESS_INTERVAL_MS = 200;

export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<Summary> {
  const started = performance.now();
  const [{ module, variant }, dataset] = await Promise.all([loadKernelModule(), loadDataset(config.data)]);
  const net = buildNetwork(config.model, dataset);

  const planner = new ArenaPlanner();
  const setup = planRun(planner, config, net, dataset);
  const memory = createSharedMemory(setup.plan);
  const control = new Control(memory, setup.control, config.workers);
  copyData(memory, setup.data, dataset);
  const vectors = { params: setup.params, optimizerState: setup.optimizerState };
  let epochsDone = 0;
  if (options.resume) {
    options.resume.restore(net, memory, vectors);
    epochsDone = options.resume.state.epochsDone;
  } else {
    net.initialize(f32(memory, setup.params, net.paramFloats), Rng.derive(config.seed, "init"));
  }

  // Nothing is written until every input has been checked above.
  const out = options.out ?? null;
  if (out) await prepareRunFolder(out, Boolean(options.resume));

  let peakRss = process.memoryUsage().rss;
  const pool = await startExecutor(config, module, memory, setup, control, options.fault ?? null);
  const history: EpochMetrics[] = [];
  let trainSeconds = 0;
  const steps = stepsPerEpoch(dataset.train.count, config.batch);
  try {
    for (let epoch = epochsDone; epoch < config.epochs; epoch++) {
      const epochStart = performance.now();
      control.reset(WORD.samplesDone);
      control.workerLoss.fill(0);
      const watch = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        const seconds = (performance.now() - epochStart) / 1000;
        const samples = control.read(WORD.samplesDone);
        const rate = samples / Math.max(seconds, 1e-9);
        const lossSum = control.workerLoss.reduce((a, b) => a + b, 0);
        const remaining = (config.epochs - epoch) * dataset.train.count - samples;
        options.onProgress?.({
          epoch: epoch + 1,
          epochs: config.epochs,
          epochFraction: samples / dataset.train.count,
          samplesPerSec: rate,
          loss: samples > 0 ? lossSum / samples : NaN,
          etaSec: rate > 0 ? remaining / rate : NaN,
        });
      }, PROGRESS_INTERVAL_MS);
      let results: EpochResult[];
      try {
        results = await pool.run<EpochResult>("sync.epoch", () => ({ epoch }));
      } finally {
        clearInterval(watch);
      }
      const epochSeconds = (performance.now() - epochStart) / 1000;
      trainSeconds += epochSeconds;
      const lossSum = results.reduce((a, r) => a + r.lossSum, 0);
      const samples = results.reduce((a, r) => a + r.samples, 0);
      const evaluation = await evaluate(pool, setup);
      const metrics: EpochMetrics = {
        epoch: epoch + 1,
        steps: (epoch + 1) * steps,
        trainLoss: lossSum / samples,
        testLoss: evaluation.lossSum / evaluation.count,
        testAccuracy: evaluation.correct / evaluation.count,
        trainSeconds: epochSeconds,
        samplesPerSec: samples / epochSeconds,
        elapsedSeconds: (performance.now() - started) / 1000,
      };
      if (!Number.isFinite(metrics.trainLoss)) throw new RunError(`training diverged in epoch ${epoch + 1} (loss ${metrics.trainLoss}): lower --lr`);
      history.push(metrics);
      options.onEpoch?.(metrics);
      if (out) {
        await appendFile(join(out, "metrics.jsonl"), JSON.stringify(metrics) + "\n");
        await saveCheckpoint(join(out, CHECKPOINT_FILE), net, memory, vectors, { config, epochsDone: epoch + 1, stepsDone: (epoch + 1) * steps });
      }
    }
  } finally {
    pool.terminate();
  }
  options.onFinish?.(f32(memory, setup.params, net.paramFloats).slice());

  const last = history[history.length - 1];
  const evaluation = last ? null : await evaluateOnce(config, setup, module, memory, control);
  const samplesTrained = history.length * dataset.train.count;
  peakRss = Math.max(peakRss, process.memoryUsage().rss, (process.resourceUsage?.().maxRSS ?? 0) * 1024);
  const summary: Summary = {
    algo: config.algo,
    model: config.model,
    data: dataset.source,
    epochs: config.epochs,
    workers: config.workers,
    batch: config.batch,
    optimizer: config.optimizer.kind,
    lr: config.optimizer.lr,
    seed: config.seed,
    kernels: variant,
    seconds: (performance.now() - started) / 1000,
    trainSeconds,
    samplesPerSec: trainSeconds > 0 ? samplesTrained / trainSeconds : 0,
    trainLoss: last?.trainLoss ?? NaN,
    testLoss: last?.testLoss ?? evaluation!.lossSum / evaluation!.count,
    testAccuracy: last?.testAccuracy ?? evaluation!.correct / evaluation!.count,
    parameters: net.params.reduce((a, l) => a + l.tensors.reduce((b, t) => b + t.floats, 0), 0),
    peakRssBytes: peakRss,
    arena: arenaReport(setup.plan, memory),
    out,
  };
  if (out) await Bun.write(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  return summary;
}

/** The network for a model spec on this data, or a UserError saying why they do not fit. */
export function buildNetwork(model: string, dataset: Dataset): Network {
  const spec = parseModelSpec(model);
  const sample = shapeSize(dataset.shape);
  if (spec.inputFloats !== undefined && spec.inputFloats !== sample) {
    throw new UserError(
      `data ${dataset.source} has ${dataset.shape.join("×")} = ${sample}-value samples but model ${model} expects ${spec.inputFloats} inputs`,
    );
  }
  return new Network(model, dataset.shape, dataset.classes);
}

/** The whole arena of a sync run: control, data, parameters, optimizer state, per-worker gradients and buffers. */
function planRun(planner: ArenaPlanner, config: TrainConfig, net: Network, dataset: Dataset): RunSetup {
  const control = planControl(planner, config.workers);
  const data = planData(planner, dataset);
  const params = planner.floats("parameters", "params", net.paramFloats);
  const optimizerState = planOptimizerState(planner, net, config.optimizer);
  const layout = planSync(planner, net, config.workers);
  const rows = Math.ceil(config.batch / config.workers);
  const perWorker = Array.from({ length: config.workers }, (_, w) => planWorkerBuffers(planner, net, w, rows));
  return {
    algo: config.algo,
    model: config.model,
    inputShape: [...dataset.shape],
    classes: dataset.classes,
    workers: config.workers,
    seed: config.seed,
    batch: config.batch,
    optimizer: config.optimizer,
    plan: planner.finish(),
    control,
    data,
    perWorker,
    params,
    optimizerState,
    layout: layout as unknown as Record<string, unknown>,
  };
}

async function startExecutor(
  config: TrainConfig,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  setup: RunSetup,
  control: Control,
  fault: FaultPlan | null,
): Promise<Executor> {
  if (config.executor === "deterministic") return new DeterministicExecutor(module, memory, setup, control, config.seed, fault);
  return WorkerPool.start(config.workers, module, memory, setup, control, fault);
}

async function evaluate(pool: Executor, setup: RunSetup): Promise<EvaluationResult> {
  const n = setup.data.testCount;
  const parts = await pool.run<EvaluationResult>("evaluate", (w) => ({ params: setup.params, ...shardOf(n, pool.size, w) }));
  // Summed in worker order: the reported loss does not depend on thread timing.
  return parts.reduce((a, p) => ({ lossSum: a.lossSum + p.lossSum, correct: a.correct + p.correct, count: a.count + p.count }));
}

/** Evaluation when no epoch ran (resuming a finished run): start a pool just for it. */
async function evaluateOnce(config: TrainConfig, setup: RunSetup, module: WebAssembly.Module, memory: WebAssembly.Memory, control: Control) {
  const pool = await startExecutor(config, module, memory, setup, control, null);
  try {
    return await evaluate(pool, setup);
  } finally {
    pool.terminate();
  }
}

function arenaReport(plan: ArenaPlan, memory: WebAssembly.Memory): Summary["arena"] {
  const needed = plan.regions.reduce((a, r) => a + r.requested, 0);
  const bytes = memory.buffer.byteLength;
  return { bytes, neededBytes: needed, overhead: bytes / needed, byRegion: bytesByKind(plan) };
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
