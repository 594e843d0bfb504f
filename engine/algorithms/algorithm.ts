/**
 * What an algorithm is to the rest of skein. Each algorithm is one file exporting one `Algorithm`
 * entry (registry.ts lists them): its family and paper, the flags it accepts, how many role programs
 * it runs, how it plans the arena, and the role program that trains one epoch. Everything else
 * (workers, evaluation, metrics, checkpoints) is shared by all algorithms.
 */
import type { Ptr } from "../kernels/abi.ts";
import type { ArenaPlanner } from "../memory/arena.ts";
import type { Network } from "../model/network.ts";
import type { Dataset } from "../data/types.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import type { RoleContext, WorkerBuffers } from "../runtime/context.ts";
import type { RoleProgram } from "../runtime/sync.ts";
import type { SpanLog } from "../runtime/trace.ts";
import type { StalenessReport } from "./async/staleness.ts";
import type { TrainConfig } from "./config.ts";

export type Family = "sync" | "async" | "pipeline" | "gossip";

export interface Algorithm<Layout = unknown> {
  /** The `--algo` value. */
  name: string;
  family: Family;
  /** One line for `--help`: what the algorithm does. */
  about: string;
  /** The paper it follows. */
  paper: string;
  /** Flags beyond the common ones that this algorithm accepts (a family flag given to another algorithm is refused). */
  flags: readonly string[];
  /** Role programs the run starts (workers, threads, stages). */
  programs(config: TrainConfig): number;
  /**
   * Where the program count comes from when it is not `--workers` (layerwise: its threads; pipelines:
   * one per stage); a `--workers` that disagrees is then refused. Undefined: `--workers` itself.
   */
  programsFrom?: string;
  /** Optimizer steps (sync, pipelines), batches (asynchronous) or gossip rounds in one epoch. */
  stepsPerEpoch(config: TrainConfig, trainCount: number): number;
  /** Checks of the configuration beyond each flag's own range; throws UserError. */
  check?(config: TrainConfig): void;
  plan(input: PlanInput): AlgorithmPlan<Layout>;
  /** The role program one worker runs for one epoch. */
  epoch(ctx: RoleContext<Layout>, epoch: number): RoleProgram<EpochResult>;
}

export interface PlanInput {
  planner: ArenaPlanner;
  net: Network;
  config: TrainConfig;
  dataset: Dataset;
  programs: number;
  batch: number;
  trainCount: number;
  optimizer: OptimizerConfig;
  /** Tests only: keep Σ of every applied gradient per replica (asynchronous algorithms). */
  audit: boolean;
}

export interface AlgorithmPlan<Layout = unknown> {
  layout: Layout;
  /** The vector evaluated and checkpointed (replica 0 where there are several). */
  params: Ptr;
  /** Vectors checkpointed beside it: optimizer state of every replica. */
  optimizerState: Ptr[];
  /** Per program: buffers for loading batches and evaluating. */
  perWorker: WorkerBuffers[];
  /**
   * Before the first epoch, once `params` is initialised or restored: copy it into the other
   * replicas, set counters to where epoch `epochsDone` begins. `restored`: the vectors were loaded
   * from a checkpoint, so state saved beside `params` (every gossip node's x and m) must be kept.
   */
  prepare?(memory: WebAssembly.Memory, epochsDone: number, restored: boolean): void;
  /** Before each evaluation of `params` (gossip: average the nodes into it). */
  beforeEvaluate?(memory: WebAssembly.Memory): void;
  /** Extra per-epoch metrics, given a way to evaluate any parameter vector on the test split. */
  epochMetrics?(memory: WebAssembly.Memory, evaluate: (params: Ptr) => Promise<{ testLoss: number; testAccuracy: number }>): Promise<GossipMetrics>;
  /** The trace's name for program w's track (default "worker w"). */
  trackName?(program: number): string;
  /** Static facts for the summary (pipelines: what each stage keeps in memory). */
  summary?(): { stages: StageMemory[] };
  /**
   * State a resumed run needs beyond `params` and `optimizerState` (a predicting pipeline's last
   * gradient per stage): saved in checkpoints by name, restored before `prepare`.
   */
  checkpointVectors?(): CheckpointVector[];
  /** Counters a resumed run must continue from (per-layer update versions), saved in checkpoints. */
  counters?(memory: WebAssembly.Memory): number[];
  restoreCounters?(memory: WebAssembly.Memory, counters: number[]): void;
  /** Tests only (audit): Σ of every gradient applied to replica r, or 0 where there is none. */
  ledger?(replica: number): Ptr;
}

/** Gossip: the averaged model's distance to the nodes, their own accuracy, and what a node sends. */
export interface GossipMetrics {
  /** (1/n) Σ_i ‖x_i − x̄‖². */
  consensusDistance: number;
  /** Mean of the nodes' own test accuracies. */
  nodeTestAccuracy: number;
  /** Bytes each node sends per round (parameters, not padding). */
  bytesPerNodeStep: number;
}

/** Pipelines: what one stage keeps in memory. */
export interface StageMemory {
  stage: number;
  layers: [number, number];
  weightBytes: number;
  extraWeightVersions: number;
  weightVersionBytes: number;
  activationBytes: number;
}

/** `floats` f32 values at `ptr`, checkpointed under `name`. */
export interface CheckpointVector {
  name: string;
  ptr: Ptr;
  floats: number;
}

/** What one program returns after an epoch; the session merges them. */
export interface EpochResult {
  lossSum: number;
  samples: number;
  /** Optimizer updates applied (a whole-model update counts once per layer it touched). */
  layerUpdates: number;
  /** Minibatch updates applied (hogwild/lap/lpp/layerwise: one per batch; sync: one per step). */
  updates: number;
  /** Time blocked in synchronisation (threads only). */
  waitedMs: number;
  elapsedMs: number;
  /** Time inside kernels (profiled runs only). */
  kernelMs?: number;
  /** Time inside each kernel export (profiled runs only). */
  kernelMsByName?: Record<string, number>;
  /** Pipelines: mean ‖weights at F − weights at B‖² over this stage's microbatches (asynchronous strategies). */
  inconsistency?: number;
  /** Spans recorded for the Chrome trace (traced runs only). */
  trace?: SpanLog;
  /** A run across processes: the process that ran this program ("rank 1 (pid 7 on host)"). */
  process?: string;
  staleness?: StalenessReport;
}
