/**
 * What a run reports: progress while an epoch runs, one metrics line per epoch, and the summary at
 * the end; and the figures derived from the programs' epoch results (staleness, β, overheads).
 */
import type { ProcessesSummary } from "./distributed/accounting.ts";
import type { ArenaPlan } from "./memory/arena.ts";
import type { RunStatus } from "./run-folder.ts";
import type { SimulationSummary } from "./runtime/costs.ts";
import { bytesByKind } from "./memory/arena.ts";
import type { AsyncOptions } from "./algorithms/async/options.ts";
import type { EpochResult, GossipMetrics, StageMemory } from "./algorithms/algorithm.ts";
import { mergeStaleness, summarizeStaleness, type StalenessReport } from "./algorithms/async/staleness.ts";

export interface Progress {
  epoch: number; // 1-based
  epochs: number;
  epochFraction: number;
  samplesPerSec: number;
  loss: number;
  etaSec: number;
}

export type LayerStalenessSummary = ReturnType<typeof summarizeStaleness>;

export interface EpochMetrics extends Partial<GossipMetrics> {
  epoch: number;
  /** Steps done so far: optimizer steps, batches or gossip rounds, as the algorithm counts them. */
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
  staleness?: LayerStalenessSummary;
  /** Pipelines: per stage, mean ‖weights at F − weights at B‖² over the epoch's microbatches. */
  inconsistency?: number[];
}

export type { ProcessesSummary };

export interface Summary extends Partial<GossipMetrics> {
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
  /** Seconds of the whole run: virtual seconds when simulated. */
  seconds: number;
  /** --executor simulated: every time and rate here is virtual, from this cost model. */
  simulated?: true;
  simulation?: SimulationSummary;
  /** Simulated runs: the real seconds the simulation took. */
  wallSeconds?: number;
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
  staleness?: LayerStalenessSummary;
  /** layerwise: backward time / forward time per batch, measured on the threads (β of the paper). */
  beta?: number;
  /** With profileKernels: the fraction of the programs' busy (unblocked) time spent outside kernels. */
  controlOverhead?: number;
  /** With profileKernels: each kernel's share of the time inside kernels, largest first. */
  kernelShares?: Record<string, number>;
  /** Pipelines: per stage inconsistency of the last epoch, and what each stage keeps in memory. */
  inconsistency?: number[];
  stages?: StageMemory[];
  /** Training FLOPs (GEMMs and convolutions) per sample, achieved GFLOP/s, and their share of the cores' ceiling. */
  flops?: FlopSummary;
  /** A run across processes: how many, where, and what crossed between them. */
  processes?: ProcessesSummary;
  peakRssBytes: number;
  arena: { bytes: number; neededBytes: number; overhead: number; byRegion: Record<string, number> };
  out: string | null;
  /** In a run folder: "running" until the run ends (a killed run's folder keeps it), then how it ended. */
  status?: RunStatus;
  /** Epochs finished (and checkpointed, in a run folder). */
  epochsDone?: number;
  /** A failed, diverged or stopped run: the epoch it was in, and why. */
  failedEpoch?: number;
  reason?: string;
}

export interface FlopSummary {
  /** Forward, input-gradient and weight-gradient FLOPs of one training sample. */
  trainingPerSample: number;
  forwardPerSample: number;
  /** trainingPerSample × samplesPerSec. */
  gflopsPerSec: number;
  /** The multiply-add ceiling of one core: measured between the run's epochs (the best window's mean), or cached per machine and kernel build. */
  ceilingGflopsPerCore: number;
  /** Cores the run computed on: threads min(programs, the machine's); deterministic 1; simulated the simulated machine's. */
  cores: number;
  /** gflopsPerSec / (ceilingGflopsPerCore × cores). */
  ofCeiling: number;
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

export function runStaleness(epochs: EpochOutcome[]): LayerStalenessSummary | undefined {
  const merged = mergeStaleness(epochs.map((e) => e.staleness));
  return merged ? summarizeStaleness(merged) : undefined;
}

/** Busy time outside kernels over busy time: what queues, barriers and TypeScript bookkeeping cost. */
export function controlOverhead(epochs: EpochOutcome[]): number {
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

/** Each kernel's share of the programs' time inside kernels, largest first. */
export function kernelShares(epochs: EpochOutcome[]): Record<string, number> {
  const byName = new Map<string, number>();
  for (const e of epochs) for (const r of e.results) for (const [name, ms] of Object.entries(r.kernelMsByName ?? {})) byName.set(name, (byName.get(name) ?? 0) + ms);
  const total = [...byName.values()].reduce((a, b) => a + b, 0);
  return Object.fromEntries([...byName].sort((a, b) => b[1] - a[1]).map(([name, ms]) => [name, total > 0 ? Number((ms / total).toFixed(4)) : 0]));
}

/**
 * β = backward time / forward time of one batch, from the layerwise threads' busy time: forward
 * threads spend their unblocked time on forwards, backward threads on backwards and updates.
 */
export function measuredBeta(epochs: EpochOutcome[], o: AsyncOptions): number {
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

export function arenaReport(plan: ArenaPlan, memory: WebAssembly.Memory): Summary["arena"] {
  const needed = plan.regions.reduce((a, r) => a + r.requested, 0);
  const bytes = memory.buffer.byteLength;
  return { bytes, neededBytes: needed, overhead: bytes / needed, byRegion: bytesByKind(plan) };
}
