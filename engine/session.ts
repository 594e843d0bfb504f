/**
 * An open run: kernels and data loaded, the arena planned and filled, the workers started. `train()`
 * drives it epoch by epoch; the benchmarks drive it directly to time epochs on a warm pool.
 */
import { readFileSync } from "node:fs";
import { loadDataset, type Dataset } from "./data/index.ts";
import { DivergedError, StoppedError, UserError } from "./errors.ts";
import { checkThreads } from "./config-check.ts";
import type { OptimizerConfig } from "./optim/optimizer.ts";
import { loadKernelModule } from "./kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "./memory/arena.ts";
import { Network } from "./model/network.ts";
import { shapeSize } from "./model/layers.ts";
import { parseModelSpec } from "./model/spec.ts";
import { Rng } from "./rng.ts";
import { Control, planControl, WORD } from "./runtime/control.ts";
import { copyData, planData, type RunSetup } from "./runtime/context.ts";
import { publishEpochOrder } from "./runtime/epoch-order.ts";
import type { FaultPlan } from "./runtime/fault.ts";
import { WorkerPool, type PoolLaunch } from "./runtime/pool.ts";
import { prefaultRanges, warmUpByDefault, type WarmUpReport } from "./runtime/warm-up.ts";
import { idleCompilerByDefault, idleCompilerFor } from "./runtime/compiler-threads.ts";
import { DeterministicExecutor } from "./runtime/deterministic.ts";
import { SimulatedExecutor } from "./runtime/simulated.ts";
import { describeSimulation, simulationModel, type SimulationModel, type SimulationSummary } from "./runtime/costs.ts";
import type { Executor } from "./runtime/executor.ts";
import type { ProcessPlacement } from "./runtime/processes.ts";
import type { ExecutorStart } from "./distributed/executor.ts";
import type { Algorithm, AlgorithmPlan, EpochResult } from "./algorithms/algorithm.ts";
import type { TrainConfig } from "./algorithms/config.ts";
import { algorithmNamed, ROLE_TABLE } from "./algorithms/registry.ts";
import { mergeStaleness } from "./algorithms/async/staleness.ts";
import { EVALUATION_CELLS, type EvaluationResult } from "./algorithms/evaluate.ts";
import { saveCheckpoint, type LoadedCheckpoint } from "./checkpoint/checkpoint.ts";
import type { EpochOutcome, Progress, ProcessesSummary } from "./run-metrics.ts";

export interface SessionOptions {
  /** A checkpoint to continue from. */
  resume?: LoadedCheckpoint;
  /** Tests only: make a worker fail. */
  fault?: FaultPlan;
  /** Deterministic executor: the interleaving's seed (default: the run's seed). */
  schedulerSeed?: number;
  /** Tests only: keep Σ of every applied gradient per replica (asynchronous algorithms), see ledger(). */
  audit?: boolean;
  /** Time kernel calls: the summary then reports the fraction of busy time spent outside kernels. */
  profileKernels?: boolean;
  /** Record spans per worker for the Chrome trace. */
  trace?: boolean;
  /** Threads executor: how long a call on the workers may show no progress before the run is declared stuck. */
  watchdogMs?: number;
  /**
   * Threads executor, two workers or more: warm the kernels up in a worker while the run starts
   * (default: on unless SKEIN_WARM_UP=0, see warmUpByDefault). Tests: "whole" lets the warm-up run its full
   * course before the workers start, and keeps its report in `warmUpReport`.
   */
  warmUp?: boolean | "whole";
  /** A run that spans processes: this process's place in it, and the executor that links it to the others. */
  distributed?: {
    placement: ProcessPlacement;
    start(run: ExecutorStart): Promise<Executor>;
    /** The summary's account of the processes, given the steps this session trained. */
    summary?(steps: number): ProcessesSummary;
  };
}

const PROGRESS_INTERVAL_MS = 200;

/**
 * Whether the algorithm's programs wait for each other every step: sync's barriers, a pipeline's
 * hand-offs, a gossip round's neighbours. Hogwild! and the rest of the asynchronous family never do.
 */
const programsWait = (algorithm: Algorithm): boolean => algorithm.family !== "async";

export class TrainingSession {
  readonly stepsPerEpoch: number;
  epochsDone: number;
  /** --executor simulated: the cost model its times come from. */
  simulation: SimulationSummary | null = null;
  /** With the test option warmUp: "whole", what the warm-up did. */
  warmUpReport: WarmUpReport | null = null;

  private constructor(
    readonly config: TrainConfig,
    readonly algorithm: Algorithm,
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
    this.stepsPerEpoch = algorithm.stepsPerEpoch(config, dataset.train.count);
    this.epochsDone = resume?.state.epochsDone ?? 0;
  }

  static async open(config: TrainConfig, options: SessionOptions = {}): Promise<TrainingSession> {
    const algorithm = algorithmNamed(config.algo);
    algorithm.check?.(config);
    checkThreads(config);
    // Read before anything starts: a bad table is the user's error, named before any work.
    const model = config.executor === "simulated" ? simulationModel(config.simulation ?? {}) : null;
    const programs = algorithm.programs(config);
    // A simulation charges the JIT compiler's load as the engine would let it run (compiler-threads.ts).
    const simulation = model && { ...model, compilerIdle: idleCompilerFor({ programsWait: programsWait(algorithm), programs, cores: model.table.machine.cores }) };
    // Threads executor, two workers or more, unless SKEIN_WARM_UP=0: the workers' threads load
    // their code while this one loads the data, and one of them warms the kernels up while this one
    // fills the arena (see runtime/warm-up.ts). One worker leaves the second core to the compiler
    // thread anyway: measured, it gains nothing from a warm-up, which would take that core from this
    // thread.
    const threads = !options.distributed && config.executor !== "deterministic" && config.executor !== "simulated";
    const warmUp = options.warmUp ?? warmUpByDefault(); // read always: a bad value is refused whatever the run
    idleCompilerByDefault(); // the same for the pool's switch (runtime/compiler-threads.ts)
    const launch = threads && programs >= 2 && warmUp ? WorkerPool.launch(programs) : null;
    try {
      return await TrainingSession.openWith(config, options, algorithm, simulation, launch);
    } catch (e) {
      launch?.abandon();
      throw e;
    }
  }

  private static async openWith(config: TrainConfig, options: SessionOptions, algorithm: Algorithm, simulation: SimulationModel | null, launch: PoolLaunch | null): Promise<TrainingSession> {
    const [{ module, variant }, dataset] = await Promise.all([loadKernelModule(), loadDataset(config.data)]);
    const net = buildNetwork(config.model, dataset);
    const { setup, plan } = planRun(algorithm, config, net, dataset, options);
    const memory = createSharedMemory(setup.plan);
    const { sampleBytes, scale, shift } = setup.data;
    const warmUpSpec = { model: config.model, inputShape: [...dataset.shape], classes: dataset.classes, rows: Math.min(...plan.perWorker.map((b) => b.ws.rows)), sampleBytes, scale, shift, optimizer: setup.optimizer };
    launch?.warmUp(module, warmUpSpec, { memory, ranges: prefaultRanges(setup.plan) });
    const control = new Control(memory, setup.control, setup.programs);
    const fault = options.fault ?? null;
    // Programs that wait for each other leave a core idle now and then: the JIT compiler runs only
    // then, instead of preempting one of them (compiler-threads.ts).
    const idleCompiler = idleCompilerFor({ programsWait: programsWait(algorithm), programs: options.distributed?.placement.count ?? setup.programs });
    // A launched pool starts now (after the warm-up, on the worker that warms): starting, a worker only
    // makes views of the memory, and none reads it before the first run, so they start while this
    // thread fills it.
    const launched = launch?.start({ module, memory, setup, control, fault, stallMs: options.watchdogMs, idleCompiler });
    launched?.catch(() => {}); // awaited below, after this thread's own start-up
    copyData(memory, setup.data, dataset);
    if (options.resume) {
      options.resume.restore(net, memory, vectorsOf(setup, plan));
      const { counters } = options.resume.state;
      const want = plan.counters?.(memory).length ?? 0;
      if (counters.length !== want) {
        throw new UserError(`${options.resume.path}: the checkpoint holds ${counters.length} counters, ${config.algo} with this configuration keeps ${want}`);
      }
      plan.restoreCounters?.(memory, counters);
    } else {
      net.initialize(f32(memory, setup.params, net.paramFloats), Rng.derive(config.seed, "init"));
    }
    plan.prepare?.(memory, options.resume?.state.epochsDone ?? 0, options.resume !== undefined);
    const starting =
      launched ??
      (options.distributed
        ? options.distributed.start({ module, memory, setup, control, plan, net, vectors: regionsOf(setup, plan, net), resumed: options.resume !== undefined, epochsDone: options.resume?.state.epochsDone ?? 0, fault, watchdogMs: options.watchdogMs, idleCompiler })
        : config.executor === "deterministic"
          ? new DeterministicExecutor(module, memory, setup, control, ROLE_TABLE, options.schedulerSeed ?? config.seed, fault)
          : config.executor === "simulated"
            ? new SimulatedExecutor(module, memory, setup, control, ROLE_TABLE, options.schedulerSeed ?? config.seed, simulation!, fault, config.simulation?.procs ?? null)
            : WorkerPool.start(setup.programs, { module, memory, setup, control, fault, stallMs: options.watchdogMs, idleCompiler }));
    // The first epoch's sample order, drawn while the workers start rather than by each of them.
    publishEpochOrder(memory, setup.data, control, config.seed, options.resume?.state.epochsDone ?? 0);
    const warmUpReport = options.warmUp === "whole" && launch ? await launch.warming : null;
    launch?.endWarmUp(); // this thread is done: the workers are wanted now
    const executor = await starting;
    const session = new TrainingSession(config, algorithm, dataset, net, setup, plan, memory, control, executor, variant, options.resume);
    session.warmUpReport = warmUpReport;
    if (simulation) session.simulation = describeSimulation(simulation, config.simulation?.costs);
    openSessions.add(session);
    if (stopRequest) control.requestStop();
    return session;
  }

  /** Train one epoch (the next one); progress is sampled from the control block while it runs. */
  async trainEpoch(onProgress?: (p: Progress) => void): Promise<EpochOutcome> {
    const { control, config, dataset } = this;
    const epoch = this.epochsDone;
    const started = performance.now();
    control.resetProgress();
    control.reset(WORD.claimNext);
    publishEpochOrder(this.memory, this.setup.data, control, config.seed, epoch); // in place already unless epochs were skipped
    // Only when someone shows progress: a timer on the main thread takes a core from a worker now and
    // then, and with synchronous workers every stall of one is a stall of all.
    const watch = onProgress && setInterval(() => {
      const samples = control.samplesDone();
      const rate = samples / Math.max((performance.now() - started) / 1000, 1e-9);
      const remaining = (config.epochs - epoch) * dataset.train.count - samples;
      onProgress({
        epoch: epoch + 1,
        epochs: config.epochs,
        epochFraction: samples / dataset.train.count,
        samplesPerSec: rate,
        loss: samples > 0 ? control.lossSum() / samples : NaN,
        etaSec: rate > 0 ? remaining / rate : NaN,
      });
    }, PROGRESS_INTERVAL_MS);
    let results: EpochResult[];
    try {
      results = await this.executor.run<EpochResult>(config.algo, () => ({ epoch }));
    } finally {
      if (watch) clearInterval(watch);
    }
    const samples = results.reduce((a, r) => a + r.samples, 0);
    const trainLoss = results.reduce((a, r) => a + r.lossSum, 0) / samples;
    if (!Number.isFinite(trainLoss)) throw new DivergedError(epoch + 1, trainLoss, divergenceAdvice(config.optimizer));
    this.epochsDone++;
    return {
      trainLoss,
      // A simulated run reports its virtual time (the epoch's makespan).
      seconds: this.executor.clock ? this.executor.clock.lastRunSeconds : (performance.now() - started) / 1000,
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
  async epochMetrics() {
    return this.plan.epochMetrics ? this.plan.epochMetrics(this.memory, (p) => this.evaluateVector(p)) : undefined;
  }

  private async evaluateVector(params: number): Promise<{ testLoss: number; testAccuracy: number }> {
    const n = this.setup.data.testCount;
    const { rows, cells } = this.setup.evaluation;
    this.control.reset(WORD.evaluateNext); // no worker runs: the counter is ours to rewind
    const evaluating = this.executor.run<EvaluationResult>("evaluate", () => ({ params, count: n, rows, cells }));
    // While the workers evaluate (no program reads the training order), draw the next epoch's.
    if (this.epochsDone < this.config.epochs) publishEpochOrder(this.memory, this.setup.data, this.control, this.config.seed, this.epochsDone);
    await evaluating;
    // Summed in block order: the reported loss does not depend on which worker took which block.
    const figures = evaluationFigures(this.memory, cells, Math.ceil(n / rows));
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < figures.length; b += EVALUATION_CELLS) {
      lossSum += figures[b]!;
      correct += figures[b + 1]!;
    }
    return { testLoss: lossSum / n, testAccuracy: correct / n };
  }

  async checkpoint(path: string): Promise<void> {
    await saveCheckpoint(path, this.net, this.memory, vectorsOf(this.setup, this.plan), {
      config: this.config,
      epochsDone: this.epochsDone,
      counters: this.plan.counters?.(this.memory) ?? [],
    });
  }

  /** With `audit`: Σ of every gradient applied to replica r so far, or null where the algorithm keeps none. */
  ledger(replica = 0): Float32Array | null {
    const at = this.plan.ledger?.(replica) ?? 0;
    return at ? f32(this.memory, at, this.net.paramFloats).slice() : null;
  }

  params(): Float32Array {
    return f32(this.memory, this.setup.params, this.net.paramFloats).slice();
  }

  /**
   * The process's peak resident set (workers are threads of this process, so they are in it). On Linux
   * from VmHWM: getrusage's ru_maxrss of a process another one started includes the starter's peak
   * (exec folds the old image's high-water mark into it), so a run that a large process launched (a
   * test runner, a bench) would report that process's size as its own.
   */
  peakRssBytes(): number {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(procSelfStatus())?.[1];
    const peak = hwm !== undefined ? Number(hwm) * 1024 : process.resourceUsage().maxRSS * 1024; // maxRSS is in KiB
    return Math.max(peak, process.memoryUsage().rss);
  }

  close(): void {
    openSessions.delete(this);
    this.executor.terminate();
  }
}

const evaluationFigures = (memory: WebAssembly.Memory, at: number, blocks: number) => new Float64Array(memory.buffer, at, blocks * EVALUATION_CELLS);

/** Every checkpointed vector as a region of the arena (what a resumed run spanning processes sends its followers). */
function regionsOf(setup: RunSetup, plan: AlgorithmPlan, net: Network): { ptr: number; bytes: number }[] {
  const { params, optimizerState, extra } = vectorsOf(setup, plan);
  return [...[params, ...optimizerState].map((ptr) => ({ ptr, bytes: net.paramFloats * 4 })), ...extra.map((v) => ({ ptr: v.ptr, bytes: v.floats * 4 }))];
}

const vectorsOf = (setup: RunSetup, plan: AlgorithmPlan) => ({ params: setup.params, optimizerState: setup.optimizerState, extra: plan.checkpointVectors?.() ?? [] });

/** What to change when the loss is no longer finite: the step size, and the weight decay when it alone overshoots. */
export function divergenceAdvice(o: OptimizerConfig): string {
  const decayStep = o.lr * o.weightDecay;
  if (o.weightDecay > 0 && !(decayStep < 1)) {
    return `lower --weight-decay (now ${o.weightDecay}): lr × weight decay = ${decayStep} ≥ 1 makes each decay step overshoot zero`;
  }
  return o.weightDecay > 0 ? `lower --lr (now ${o.lr}) or --weight-decay (now ${o.weightDecay})` : `lower --lr (now ${o.lr})`;
}

/** Set by the CLI on SIGINT/SIGTERM: open sessions stop at their workers' next synchronisation point. */
let stopRequest: StoppedError | null = null;
const openSessions = new Set<TrainingSession>();

/** Returns how many open sessions were told to stop (none: nothing is being written, exit at once). */
export function requestStop(why: string, exitCode: number): number {
  stopRequest ??= new StoppedError(why, exitCode);
  for (const s of openSessions) s.control.requestStop();
  return openSessions.size;
}

/** The stop the CLI asked for, if any. */
export const stopRequested = (): StoppedError | null => stopRequest;

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
function planRun(algorithm: Algorithm, config: TrainConfig, net: Network, dataset: Dataset, options: SessionOptions): { setup: RunSetup; plan: AlgorithmPlan } {
  const planner = new ArenaPlanner();
  const programs = algorithm.programs(config);
  const control = planControl(planner, programs);
  const data = planData(planner, dataset);
  const plan = algorithm.plan({
    planner,
    net,
    config,
    dataset,
    programs,
    batch: config.batch,
    trainCount: dataset.train.count,
    optimizer: config.optimizer,
    audit: options.audit ?? false,
  });
  // Evaluation blocks fit every program's workspace; one Float64 pair of figures per block.
  const evaluationRows = Math.min(...plan.perWorker.map((b) => b.ws.rows));
  const evaluation = {
    rows: evaluationRows,
    cells: planner.reserve("scratch", "evaluation.blocks", Math.ceil(dataset.test.count / evaluationRows) * EVALUATION_CELLS * 8),
  };
  const setup: RunSetup = {
    model: config.model,
    inputShape: [...dataset.shape],
    classes: dataset.classes,
    programs,
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
    evaluation,
    profileKernels: options.profileKernels ?? false,
    trace: options.trace ?? false,
    ...(options.distributed ? { processes: options.distributed.placement } : {}),
  };
  return { setup, plan };
}

/** /proc/self/status, or "" where there is none (not Linux). */
function procSelfStatus(): string {
  try {
    return readFileSync("/proc/self/status", "utf8");
  } catch {
    return "";
  }
}
