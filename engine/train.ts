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
import { copyData, planData, type RunSetup } from "./runtime/context.ts";
import type { FaultPlan } from "./runtime/fault.ts";
import { WorkerPool } from "./runtime/pool.ts";
import { traceEvents, type SpanLog, type TraceEvent } from "./runtime/trace.ts";
import { DeterministicExecutor } from "./runtime/deterministic.ts";
import type { Executor, ExecutorName } from "./runtime/executor.ts";
import { planSync, stepsPerEpoch } from "./algorithms/sync.ts";
import { planHogwild } from "./algorithms/async/hogwild.ts";
import { planLayerwise } from "./algorithms/async/layerwise.ts";
import { DEFAULT_ASYNC, type AlgorithmPlan, type AsyncOptions, type EpochResult, type PlanInput } from "./algorithms/algorithm.ts";
import { mergeStaleness, summarizeStaleness, type StalenessReport } from "./algorithms/async/staleness.ts";
import { GOSSIP_ALGORITHMS, planGossip } from "./algorithms/gossip/gossip.ts";
import { DEFAULT_PIPELINE, isPipeline, PIPELINE_ALGORITHMS, planPipeline, type PipelineOptions } from "./algorithms/pipeline/pipeline.ts";
import { DEFAULT_GOSSIP, gossipOptions, isGossip, type GossipConfig } from "./algorithms/gossip/setup.ts";
import { shardOf } from "./runtime/split.ts";
import type { EvaluationResult } from "./algorithms/evaluate.ts";
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint, type LoadedCheckpoint } from "./checkpoint/checkpoint.ts";

export const ALGORITHMS = ["sync", "hogwild", "lap", "lpp", "layerwise", ...GOSSIP_ALGORITHMS, ...PIPELINE_ALGORITHMS] as const;
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
  /** hogwild, lap, lpp, layerwise: replicas, averaging period, threads, queue (defaults: DEFAULT_ASYNC). */
  async?: Partial<AsyncOptions>;
  /** pmsgd, dsgd, dmsgd, decentlam: nodes, topology and data partition (defaults: DEFAULT_GOSSIP). */
  gossip?: Partial<GossipConfig>;
  /** gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim: stages and microbatches per batch. */
  pipeline?: Partial<PipelineOptions>;
}

const asyncOptions = (config: TrainConfig): AsyncOptions => ({ ...DEFAULT_ASYNC, ...config.async });

/** Role programs a run starts: layerwise runs F + B threads per replica, the others one per worker. */
export function programsOf(config: TrainConfig): number {
  if (isPipeline(config.algo)) return { ...DEFAULT_PIPELINE, ...config.pipeline }.stages;
  if (config.algo !== "layerwise") return config.workers;
  const o = asyncOptions(config);
  return o.replicas * (o.fwdThreads + o.bwdThreads);
}

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
  /** Minibatch updates applied per second (a sync step is one update). */
  updatesPerSec: number;
  elapsedSeconds: number;
  /** Per program: the fraction of the epoch it was not blocked (threads executor only). */
  busy: number[];
  /** Asynchronous algorithms: per layer, mean and max staleness and the histogram of this epoch. */
  staleness?: ReturnType<typeof summarizeStaleness>;
  /** Pipelines: per stage, mean ‖weights at F − weights at B‖² over the epoch's microbatches. */
  inconsistency?: number[];
  /** Gossip: (1/n)Σ‖x_i − x̄‖², the mean of the nodes' own test accuracies, bytes each node sends per round. */
  consensusDistance?: number;
  nodeTestAccuracy?: number;
  bytesPerNodeStep?: number;
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
  /** Language models (gpt on text): testLoss in bits per character. */
  testBitsPerChar?: number;
  parameters: number;
  updatesPerSec: number;
  /** Asynchronous algorithms: staleness per layer over the whole run. */
  staleness?: ReturnType<typeof summarizeStaleness>;
  /** layerwise: backward time / forward time per batch, measured on the threads (β of the paper). */
  beta?: number;
  /** With profileKernels: the fraction of the programs' busy (unblocked) time spent outside kernels. */
  controlOverhead?: number;
  /** Pipelines: per stage inconsistency of the last epoch, and per stage memory (weights, versions, activations). */
  inconsistency?: number[];
  stages?: unknown;
  /** Gossip: testAccuracy is the averaged model's; these as in EpochMetrics, from the last epoch. */
  consensusDistance?: number;
  nodeTestAccuracy?: number;
  bytesPerNodeStep?: number;
  peakRssBytes: number;
  arena: { bytes: number; neededBytes: number; overhead: number; byRegion: Record<string, number> };
  out: string | null;
}

const PROGRESS_INTERVAL_MS = 200;

/**
 * An open run: arena planned and filled, workers started. `train()` drives it epoch by epoch; the
 * benchmarks drive it directly to time epochs on a warm pool.
 */
export class TrainingSession {
  readonly stepsPerEpoch: number;
  epochsDone: number;

  private constructor(
    readonly config: TrainConfig,
    readonly dataset: Dataset,
    readonly net: Network,
    readonly setup: RunSetup,
    readonly plan: AlgorithmPlan,
    readonly memory: WebAssembly.Memory,
    readonly control: Control,
    readonly executor: Executor,
    readonly kernels: string,
    resume: LoadedCheckpoint | undefined,
  ) {
    this.stepsPerEpoch = stepsPerEpoch(dataset.train.count, config.batch);
    this.epochsDone = resume?.state.epochsDone ?? 0;
  }

  static async open(config: TrainConfig, options: Pick<TrainOptions, "resume" | "fault" | "schedulerSeed" | "audit" | "profileKernels" | "trace"> = {}): Promise<TrainingSession> {
    const [{ module, variant }, dataset] = await Promise.all([loadKernelModule(), loadDataset(config.data)]);
    const net = buildNetwork(config.model, dataset);
    const { setup, plan } = planRun(new ArenaPlanner(), config, net, dataset, options.audit ?? false, options.profileKernels ?? false, options.trace ?? false);
    const memory = createSharedMemory(setup.plan);
    const control = new Control(memory, setup.control, setup.workers);
    copyData(memory, setup.data, dataset);
    if (options.resume) {
      options.resume.restore(net, memory, vectorsOf(setup));
      plan.restoreCounters?.(memory, options.resume.state.counters);
    } else {
      net.initialize(f32(memory, setup.params, net.paramFloats), Rng.derive(config.seed, "init"));
    }
    plan.prepare?.(memory, options.resume?.state.epochsDone ?? 0);
    const executor = await startExecutor(config, module, memory, setup, control, options.fault ?? null, options.schedulerSeed ?? config.seed);
    return new TrainingSession(config, dataset, net, setup, plan, memory, control, executor, variant, options.resume);
  }

  /** Train one epoch (the next one); progress is sampled from the control block while it runs. */
  async trainEpoch(onProgress?: (p: Progress) => void): Promise<EpochOutcome> {
    const { control, config, dataset } = this;
    const epoch = this.epochsDone;
    const started = performance.now();
    control.reset(WORD.samplesDone);
    control.workerLoss.fill(0);
    // Only when someone shows progress: a timer on the main thread takes a core from a worker now and
    // then, and with synchronous workers every stall of one is a stall of all.
    const watch = onProgress && setInterval(() => {
      const samples = control.read(WORD.samplesDone);
      const rate = samples / Math.max((performance.now() - started) / 1000, 1e-9);
      const remaining = (config.epochs - epoch) * dataset.train.count - samples;
      onProgress({
        epoch: epoch + 1,
        epochs: config.epochs,
        epochFraction: samples / dataset.train.count,
        samplesPerSec: rate,
        loss: samples > 0 ? control.workerLoss.reduce((a, b) => a + b, 0) / samples : NaN,
        etaSec: rate > 0 ? remaining / rate : NaN,
      });
    }, PROGRESS_INTERVAL_MS);
    let results: EpochResult[];
    try {
      results = await this.executor.run<EpochResult>(this.plan.epochRole, () => ({ epoch }));
    } finally {
      if (watch) clearInterval(watch);
    }
    this.epochsDone++;
    const samples = results.reduce((a, r) => a + r.samples, 0);
    const trainLoss = results.reduce((a, r) => a + r.lossSum, 0) / samples;
    if (!Number.isFinite(trainLoss)) throw new RunError(`training diverged in epoch ${epoch + 1} (loss ${trainLoss}): lower --lr`);
    return {
      trainLoss,
      seconds: (performance.now() - started) / 1000,
      samples,
      updates: results.reduce((a, r) => a + r.updates, 0),
      busy: results.map((r) => (r.elapsedMs > 0 ? 1 - r.waitedMs / r.elapsedMs : 1)),
      results,
      staleness: mergeStaleness(results.map((r) => r.staleness)),
    };
  }

  /** Test-split loss and accuracy, the split shared out across the workers. */
  async evaluate(): Promise<{ testLoss: number; testAccuracy: number }> {
    this.plan.beforeEvaluate?.(this.memory);
    return this.evaluateVector(this.setup.params);
  }

  /** The algorithm's extra per-epoch metrics (gossip: consensus distance, node accuracy, traffic). */
  async epochMetrics(): Promise<Record<string, number>> {
    return this.plan.epochMetrics ? this.plan.epochMetrics(this.memory, (p) => this.evaluateVector(p)) : {};
  }

  private async evaluateVector(params: number): Promise<{ testLoss: number; testAccuracy: number }> {
    const n = this.setup.data.testCount;
    const parts = await this.executor.run<EvaluationResult>("evaluate", (w) => ({ params, ...shardOf(n, this.executor.size, w) }));
    // Summed in worker order: the reported loss does not depend on thread timing.
    const lossSum = parts.reduce((a, p) => a + p.lossSum, 0);
    const correct = parts.reduce((a, p) => a + p.correct, 0);
    return { testLoss: lossSum / n, testAccuracy: correct / n };
  }

  async checkpoint(path: string): Promise<void> {
    await saveCheckpoint(path, this.net, this.memory, vectorsOf(this.setup), {
      config: this.config,
      epochsDone: this.epochsDone,
      stepsDone: this.epochsDone * this.stepsPerEpoch,
      counters: this.plan.counters?.(this.memory) ?? [],
    });
  }

  /** With `audit`: Σ of every gradient applied to replica r so far. */
  ledger(replica = 0): Float32Array | null {
    const layout = this.setup.layout as { replicas?: { ledger: number[] } };
    const at = layout.replicas?.ledger[replica] ?? 0;
    return at ? f32(this.memory, at, this.net.paramFloats).slice() : null;
  }

  params(): Float32Array {
    return f32(this.memory, this.setup.params, this.net.paramFloats).slice();
  }

  /** The process's peak resident set (workers are threads of this process, so they are in it). */
  peakRssBytes(): number {
    return Math.max(process.resourceUsage().maxRSS * 1024, process.memoryUsage().rss); // maxRSS is in KiB
  }

  close(): void {
    this.executor.terminate();
  }
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
        elapsedSeconds: (performance.now() - started) / 1000,
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
    const extra = Object.fromEntries(Object.entries(final).filter(([key]) => EXTRA_METRICS.has(key)));
    options.onFinish?.(session.params());
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
      seconds: (performance.now() - started) / 1000,
      trainSeconds,
      samplesPerSec: trainSeconds > 0 ? samplesTrained / trainSeconds : 0,
      updatesPerSec: trainSeconds > 0 ? updates / trainSeconds : 0,
      ...runStaleness(epochResults),
      ...(config.algo === "layerwise" && config.executor === "threads" ? { beta: measuredBeta(epochResults, asyncOptions(config)) } : {}),
      ...(options.profileKernels ? { controlOverhead: controlOverhead(epochResults) } : {}),
      trainLoss: final.trainLoss,
      testLoss: final.testLoss,
      testAccuracy: final.testAccuracy,
      ...(session.net.positions > 1 ? { testBitsPerChar: final.testLoss / Math.LN2 } : {}), // language models: testLoss is nats/char
      ...extra,
      ...(last?.inconsistency ? { inconsistency: last.inconsistency } : {}),
      ...session.plan.summary?.(),
      parameters: session.net.params.reduce((a, l) => a + l.tensors.reduce((b, t) => b + t.floats, 0), 0),
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

/** Algorithm metrics (epochMetrics) the summary repeats from the last epoch. */
const EXTRA_METRICS = new Set(["consensusDistance", "nodeTestAccuracy", "bytesPerNodeStep"]);

/** One program's spans as trace events; its track name only once per run. */
function toTraceEvents(log: SpanLog, worker: number, track: string, first: boolean): TraceEvent[] {
  const events = traceEvents(log, worker, track);
  return first ? events : events.filter((e) => e.ph !== "M");
}

const vectorsOf = (setup: RunSetup) => ({ params: setup.params, optimizerState: setup.optimizerState });

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

/** The whole arena of a run: control, data, then whatever the algorithm plans. */
function planRun(planner: ArenaPlanner, config: TrainConfig, net: Network, dataset: Dataset, audit: boolean, profileKernels: boolean, trace: boolean): { setup: RunSetup; plan: AlgorithmPlan } {
  const programs = programsOf(config);
  const control = planControl(planner, programs);
  const data = planData(planner, dataset);
  const input: PlanInput = { planner, net, programs, batch: config.batch, trainCount: dataset.train.count, optimizer: config.optimizer, async: asyncOptions(config) };
  const plan = isPipeline(config.algo)
    ? planPipeline(config.algo, input, { ...DEFAULT_PIPELINE, ...config.pipeline })
    : isGossip(config.algo)
    ? planGossip(input, gossipOptions(config.algo, { ...DEFAULT_GOSSIP, ...config.gossip }, dataset, config.seed, config.optimizer))
    : config.algo === "sync"
      ? planSync(input)
      : config.algo === "layerwise"
        ? planLayerwise(input, audit)
        : planHogwild(config.algo, input, audit);
  const setup: RunSetup = {
    algo: config.algo,
    model: config.model,
    inputShape: [...dataset.shape],
    classes: dataset.classes,
    workers: programs,
    seed: config.seed,
    batch: config.batch,
    optimizer: config.optimizer,
    plan: planner.finish(),
    control,
    data,
    perWorker: plan.perWorker,
    params: plan.params,
    optimizerState: plan.optimizerState,
    layout: plan.layout,
    async: input.async,
    profileKernels,
    trace,
  };
  return { setup, plan };
}

/** What one epoch produced, merged over the programs. */
export interface EpochOutcome {
  trainLoss: number;
  seconds: number;
  samples: number;
  updates: number;
  busy: number[];
  results: EpochResult[];
  staleness?: StalenessReport;
}

function runStaleness(epochs: EpochOutcome[]): { staleness?: ReturnType<typeof summarizeStaleness> } {
  const merged = mergeStaleness(epochs.map((e) => e.staleness));
  return merged ? { staleness: summarizeStaleness(merged) } : {};
}

/** Busy time outside kernels over busy time: what queues, barriers and TypeScript bookkeeping cost. */
function controlOverhead(epochs: EpochOutcome[]): number {
  let busy = 0;
  let kernels = 0;
  for (const e of epochs) {
    for (const r of e.results) {
      busy += r.elapsedMs - r.waitedMs;
      kernels += r.kernelMs ?? 0;
    }
  }
  return busy > 0 ? (busy - kernels) / busy : NaN;
}

/**
 * β = backward time / forward time of one batch, from the layerwise threads' busy time: forward
 * threads spend their unblocked time on forwards, backward threads on backwards and updates.
 */
function measuredBeta(epochs: EpochOutcome[], o: AsyncOptions): number {
  let forward = 0;
  let backward = 0;
  for (const e of epochs) {
    e.results.forEach((r, p) => {
      const busyMs = r.elapsedMs - r.waitedMs;
      if (p % (o.fwdThreads + o.bwdThreads) < o.fwdThreads) forward += busyMs;
      else backward += busyMs;
    });
  }
  return forward > 0 ? backward / forward : NaN;
}

async function startExecutor(
  config: TrainConfig,
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  setup: RunSetup,
  control: Control,
  fault: FaultPlan | null,
  schedulerSeed = config.seed,
): Promise<Executor> {
  if (config.executor === "deterministic") return new DeterministicExecutor(module, memory, setup, control, schedulerSeed, fault);
  return WorkerPool.start(setup.workers, module, memory, setup, control, fault);
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
