/**
 * Model replicas for the asynchronous family: each replica is a parameter vector with its own
 * optimizer state and per-layer version counters, updated in place, layer by layer, by the threads
 * that train it, and averaged with the other replicas from time to time (LAP/LPP, layerwise × R).
 *
 * Races, and what we chose. Threads of one replica update a layer's weights and its optimizer state
 * (momentum m, Adam's v) in place without locks, as Hogwild! does: two concurrent updates of the same
 * layer interleave element by element, so either may overwrite part of the other's change to w and to
 * m. Keeping m per thread instead would make momentum average over one thread's gradients only; a
 * lock per layer would serialise the updates Hogwild! exists to overlap. The version counter, which
 * staleness and Adam's bias correction read, is incremented atomically, so every update gets its own
 * step number even when the element updates race. (layerwise orders updates of one layer by batch, so
 * there they never overlap; hogwild, lap and lpp accept the race.)
 */
import type { Ptr } from "../../kernels/abi.ts";
import type { ArenaPlanner } from "../../memory/arena.ts";
import type { Network } from "../../model/network.ts";
import { applyUpdate, planOptimizerState, updateRegion, type OptimizerConfig } from "../../optim/optimizer.ts";
import { weightedSum, type WeightedSumArgs } from "../../kernels/weighted-sum.ts";
import type { RoleContext } from "../../runtime/context.ts";
import { alignedSliceOf } from "../../runtime/split.ts";
import type { StalenessRecorder } from "./staleness.ts";
import type { AsyncOptions } from "./options.ts";

export interface ReplicaLayout {
  params: Ptr[]; // per replica
  state: Ptr[][]; // per replica: optimizer slots
  /** Per replica: i32[layers], updates applied to each layer so far. */
  versions: Ptr[];
  /** Per program: scratch for the averaging kernel's arguments (R pointers, R weights). */
  averageArgs: WeightedSumArgs[];
  /** Per replica, tests only: Σ of every gradient applied, times lr_applied/lr (0 when not audited). */
  ledger: Ptr[];
  /** Staleness mitigations: lr/τ for a gradient τ versions old; DC-ASGD's λ (0: off). */
  stalenessLr: boolean;
  dcLambda: number;
}

export function planReplicas(
  planner: ArenaPlanner,
  net: Network,
  replicas: number,
  programs: number,
  optimizer: OptimizerConfig,
  audit: boolean,
  mitigation: Pick<AsyncOptions, "stalenessLr" | "dcLambda">,
): ReplicaLayout {
  const layers = net.layers.length;
  return {
    params: Array.from({ length: replicas }, (_, r) => planner.floats("parameters", `replica${r}.params`, net.paramFloats)),
    state: Array.from({ length: replicas }, (_, r) => planOptimizerState(planner, net.paramFloats, optimizer.kind, `replica${r}.optimizer`)),
    versions: Array.from({ length: replicas }, (_, r) => planner.reserve("control", `replica${r}.versions`, layers * 4)),
    averageArgs: Array.from({ length: programs }, (_, p) => ({
      tensors: planner.reserve("control", `program${p}.average.tensors`, replicas * 4),
      weights: planner.reserve("control", `program${p}.average.weights`, replicas * 4),
    })),
    ledger: Array.from({ length: replicas }, (_, r) => (audit ? planner.floats("gradients", `replica${r}.ledger`, net.paramFloats) : 0)),
    stalenessLr: mitigation.stalenessLr,
    dcLambda: mitigation.dcLambda,
  };
}

/** Every replica starts from replica 0's weights. */
export function copyReplica0(memory: WebAssembly.Memory, layout: ReplicaLayout, floats: number): void {
  const from = new Float32Array(memory.buffer, layout.params[0]!, floats);
  for (const p of layout.params.slice(1)) new Float32Array(memory.buffer, p, floats).set(from);
}

export function versionsView(memory: WebAssembly.Memory, layout: ReplicaLayout, replica: number, layers: number): Int32Array {
  return new Int32Array(memory.buffer, layout.versions[replica]!, layers);
}

/** Every replica's per-layer update versions, replica after replica (what a checkpoint saves). */
export function replicaCounters(memory: WebAssembly.Memory, layout: ReplicaLayout, layers: number): number[] {
  return layout.versions.flatMap((_, r) => [...versionsView(memory, layout, r, layers)]);
}

export function restoreReplicaCounters(memory: WebAssembly.Memory, layout: ReplicaLayout, layers: number, counters: number[]): void {
  layout.versions.forEach((_, r) => versionsView(memory, layout, r, layers).set(counters.slice(r * layers, (r + 1) * layers)));
}

/**
 * Apply one layer's gradient (at `grads`, laid out like the parameter vector) to replica r in place.
 * `versionRead` is the layer's version the forward pass saw, `readWeights` (0: not kept) a copy of the
 * layer's weights as the forward read them; returns the staleness.
 *
 * Mitigations, when the run asks for them: DC-ASGD first compensates the gradient for the weights
 * having moved since the forward read them (the term is 0 when nothing moved); the staleness-aware
 * rate then applies a gradient τ ≥ 1 versions old with lr/τ (τ = 0: lr).
 */
export function applyLayerUpdate(
  ctx: RoleContext,
  layout: ReplicaLayout,
  replica: number,
  layer: number,
  grads: Ptr,
  versionRead: number,
  recorder: StalenessRecorder,
  readWeights: Ptr = 0,
): number {
  const { k, net, setup, memory } = ctx;
  const versions = versionsView(memory, layout, replica, net.layers.length);
  const version = Atomics.add(versions, layer, 1); // this update's number: unique even under races
  const staleness = version - versionRead;
  const region = net.params[layer]!;
  const at = (base: Ptr) => base + region.offset * 4;
  if (layout.dcLambda > 0 && readWeights !== 0) k.delay_compensate(at(grads), at(layout.params[replica]!), at(readWeights), region.floats, layout.dcLambda);
  const rateScale = layout.stalenessLr && staleness > 1 ? 1 / staleness : 1;
  const optimizer = rateScale === 1 ? setup.optimizer : { ...setup.optimizer, lr: setup.optimizer.lr * rateScale };
  applyUpdate(k, optimizer, updateRegion(layout.params[replica]!, grads, layout.state[replica]!, region.offset, region.floats), version + 1);
  if (layout.ledger[replica] !== 0) k.axpy(at(layout.ledger[replica]!), at(grads), region.floats, rateScale);
  recorder.applied(layer, staleness);
  return staleness;
}

/**
 * Average the replicas over this program's slice of the parameter vector (every program takes one
 * slice, so the whole vector is covered once all have run): replica 0 gets the mean, the others a copy.
 */
export function averageReplicasSlice(ctx: RoleContext, layout: ReplicaLayout, program: number, programs: number): void {
  const { k, net, memory } = ctx;
  const R = layout.params.length;
  const { lo, hi } = alignedSliceOf(net.paramFloats, programs, program);
  if (R < 2 || hi <= lo) return;
  ctx.sync.allReduce((net.parameterCount * 4 * R) / programs, R); // in a cluster: one replica per node, this program's share
  weightedSum(k, memory, layout.averageArgs[program]!, layout.params[0]! + lo * 4, layout.params, 1 / R, hi - lo, lo);
  for (const p of layout.params.slice(1)) k.copy(p + lo * 4, layout.params[0]! + lo * 4, hi - lo);
}
