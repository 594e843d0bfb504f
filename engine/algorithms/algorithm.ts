/**
 * What an algorithm gives the run: its arena regions, the vector to evaluate and checkpoint, how many
 * role programs run, and the role that trains one epoch. Everything else (workers, evaluation,
 * metrics, checkpoints) is shared by all algorithms.
 */
import type { Ptr } from "../kernels/abi.ts";
import type { ArenaPlanner } from "../memory/arena.ts";
import type { Network } from "../model/network.ts";
import type { WorkerBuffers } from "../runtime/context.ts";
import type { StalenessReport } from "./async/staleness.ts";
import type { RoleName } from "./roles.ts";
import type { SpanLog } from "../runtime/trace.ts";

/** Options of the asynchronous family; sync ignores them. */
export interface AsyncOptions {
  /** Model replicas (lap, lpp, layerwise): each trained by its own group of threads, averaged every avgEvery batches. */
  replicas: number;
  avgEvery: number;
  /** layerwise: forward and backward threads per replica, and activation slots in flight per replica. */
  fwdThreads: number;
  bwdThreads: number;
  queue: number;
  /** lpp: epochs of full-gradient steps before partial steps start. */
  lppWarmup: number;
}

export const DEFAULT_ASYNC: AsyncOptions = { replicas: 1, avgEvery: 8, fwdThreads: 1, bwdThreads: 2, queue: 4, lppWarmup: 1 };

export interface AlgorithmPlan {
  layout: unknown;
  /** The vector evaluated and checkpointed (replica 0 where there are several). */
  params: Ptr;
  /** Vectors checkpointed beside it: optimizer state of every replica. */
  optimizerState: Ptr[];
  /** Per program: buffers for loading batches and evaluating. */
  perWorker: WorkerBuffers[];
  epochRole: RoleName;
  /**
   * Before the first epoch, once `params` is initialised or restored: copy it into the other
   * replicas, set counters to where epoch `epochsDone` begins. `restored`: the vectors were loaded
   * from a checkpoint, so state saved beside `params` (every gossip node's x and m) must be kept.
   */
  prepare?(memory: WebAssembly.Memory, epochsDone: number, restored: boolean): void;
  /** Before each evaluation of `params` (gossip: average the nodes into it). */
  beforeEvaluate?(memory: WebAssembly.Memory): void;
  /** Extra per-epoch metrics, given a way to evaluate any parameter vector on the test split. */
  epochMetrics?(memory: WebAssembly.Memory, evaluate: (params: Ptr) => Promise<{ testLoss: number; testAccuracy: number }>): Promise<Record<string, number>>;
  /** The trace's name for program w's track (default "worker w"). */
  trackName?(program: number): string;
  /** Static facts for the summary (pipelines: what each stage keeps in memory). */
  summary?(): Record<string, unknown>;
  /**
   * State a resumed run needs beyond `params` and `optimizerState` (a predicting pipeline's last
   * gradient per stage): saved in checkpoints by name, restored before `prepare`.
   */
  checkpointVectors?(): CheckpointVector[];
  /** Counters a resumed run must continue from (per-layer update versions), saved in checkpoints. */
  counters?(memory: WebAssembly.Memory): number[];
  restoreCounters?(memory: WebAssembly.Memory, counters: number[]): void;
}

/** `floats` f32 values at `ptr`, checkpointed under `name`. */
export interface CheckpointVector {
  name: string;
  ptr: Ptr;
  floats: number;
}

export interface PlanInput {
  planner: ArenaPlanner;
  net: Network;
  programs: number;
  batch: number;
  trainCount: number;
  optimizer: import("../optim/optimizer.ts").OptimizerConfig;
  async: AsyncOptions;
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
  /** Pipelines: mean ‖weights at F − weights at B‖² over this stage's microbatches (asynchronous strategies). */
  inconsistency?: number;
  /** Spans recorded for the Chrome trace (traced runs only). */
  trace?: SpanLog;
  staleness?: StalenessReport;
}
