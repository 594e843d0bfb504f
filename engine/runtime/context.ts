/**
 * What every role program can reach: kernels, the shared memory, the network, the run's setup (plain
 * JSON, identical in every worker) and the synchronisation primitives of its executor.
 */
import type { Dataset } from "../data/types.ts";
import type { KernelExports, Ptr } from "../kernels/abi.ts";
import { type ArenaPlan, type ArenaPlanner, u8 } from "../memory/arena.ts";
import type { Network, Workspace } from "../model/network.ts";
import type { OptimizerConfig } from "../optim/optimizer.ts";
import type { Control, ControlLayout } from "./control.ts";
import type { Sync } from "./sync.ts";
import type { KernelTimer } from "./kernel-timer.ts";
import type { SpanRecorder } from "./trace.ts";
import type { ProcessPlacement } from "./processes.ts";

/** The data set copied into the arena once, as bytes; batches are gathered and normalised by a kernel. */
export interface DataLayout {
  trainImages: Ptr;
  trainLabels: Ptr;
  testImages: Ptr;
  testLabels: Ptr;
  trainCount: number;
  testCount: number;
  /** u32 [trainCount]: an epoch's order of the training split, published by the session (epoch-order.ts). */
  order: Ptr;
  sampleBytes: number;
  scale: number;
  shift: number;
}

/** Per worker: where it assembles batches. Every algorithm gives each worker at least this. */
export interface WorkerBuffers {
  ws: Workspace;
  /** i32 [ws.rows]: the sample indices of the batch being gathered. */
  indices: Ptr;
}

/** The run as every program sees it: plain JSON, identical in every worker. `Layout` is the algorithm's own. */
export interface RunSetup<Layout = unknown> {
  model: string;
  inputShape: number[];
  classes: number;
  /**
   * Role programs of the run, one per executor slot: worker threads (sync, hogwild, lap, lpp, gossip),
   * forward and backward threads (layerwise), stages (pipelines). `RoleContext.worker` is the index.
   */
  programs: number;
  seed: number;
  batch: number;
  optimizer: OptimizerConfig;
  plan: ArenaPlan;
  control: ControlLayout;
  data: DataLayout;
  perWorker: WorkerBuffers[];
  /** The parameter vector evaluated and checkpointed. */
  params: Ptr;
  /** Optimizer state vectors, in slot order (momentum m, then v). */
  optimizerState: Ptr[];
  /** The evaluation pass: test samples per block (fits every program's workspace), Float64 figures per block. */
  evaluation: { rows: number; cells: Ptr };
  /** Algorithm-specific pointers, planned by the algorithm (its plan's layout). */
  layout: Layout;
  /** Time kernel calls (EpochResult.kernelMs); off by default: it costs two clock reads per call. */
  profileKernels: boolean;
  /** Record spans for trace.json (runs with a run folder). */
  trace: boolean;
  /** A run that spans processes: which programs this process hosts (absent: all of them). */
  processes?: ProcessPlacement;
}

export interface RoleContext<Layout = unknown> {
  k: KernelExports;
  memory: WebAssembly.Memory;
  net: Network;
  setup: RunSetup<Layout>;
  worker: number;
  control: Control;
  sync: Sync;
  /** Milliseconds inside kernels so far, when setup.profileKernels. */
  kernelTimer: KernelTimer | null;
  /** Spans for the Chrome trace, when setup.trace. */
  trace: SpanRecorder | null;
}

export function planData(planner: ArenaPlanner, d: Dataset): DataLayout {
  const sampleBytes = d.shape[0] * d.shape[1] * d.shape[2];
  return {
    trainImages: planner.reserve("data", "data.train.images", d.train.count * sampleBytes),
    trainLabels: planner.reserve("data", "data.train.labels", d.train.count),
    testImages: planner.reserve("data", "data.test.images", d.test.count * sampleBytes),
    testLabels: planner.reserve("data", "data.test.labels", d.test.count),
    trainCount: d.train.count,
    testCount: d.test.count,
    order: planner.reserve("data", "data.order", d.train.count * 4),
    sampleBytes,
    scale: d.normalize.scale,
    shift: d.normalize.shift,
  };
}

export function copyData(memory: WebAssembly.Memory, l: DataLayout, d: Dataset): void {
  u8(memory, l.trainImages, d.train.images.length).set(d.train.images);
  u8(memory, l.trainLabels, d.train.labels.length).set(d.train.labels);
  u8(memory, l.testImages, d.test.images.length).set(d.test.images);
  u8(memory, l.testLabels, d.test.labels.length).set(d.test.labels);
}

export function planWorkerBuffers(planner: ArenaPlanner, net: Network, tag: string, rows: number): WorkerBuffers {
  return {
    ws: net.planWorkspace(planner, tag, rows),
    indices: planner.reserve("activations", `${tag}.indices`, rows * 4),
  };
}

/**
 * Gather samples `order[from .. from+rows)` of a split (or from..from+rows itself when order is null)
 * into a workspace's input buffer (u8 → f32, normalised) and its labels buffer.
 */
export function loadBatch(ctx: RoleContext, into: WorkerBuffers, split: "train" | "test", order: Uint32Array | null, from: number, rows: number): void {
  const { k, memory, setup } = ctx;
  const { ws, indices } = into;
  const d = setup.data;
  const idx = new Int32Array(memory.buffer, indices, rows);
  for (let i = 0; i < rows; i++) idx[i] = order ? order[from + i]! : from + i;
  const [images, labels] = split === "train" ? [d.trainImages, d.trainLabels] : [d.testImages, d.testLabels];
  k.gather_batch(ws.input, ws.labels, images, labels, indices, rows, d.sampleBytes, d.scale, d.shift);
}
