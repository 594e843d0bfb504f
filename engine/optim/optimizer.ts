/**
 * Optimizer update rules (PyTorch semantics), each one fused kernel pass over a region of the flat
 * parameter vector. A region can be the whole model, one layer (layer-wise updates) or one worker's
 * slice of it (the sync all-reduce splits the update across workers).
 *
 * State (momentum m, second moment v) lives in the arena beside the parameters, one vector per slot,
 * laid out exactly like the parameter vector so a region's offset means the same thing in all of them.
 */
import { UserError } from "../errors.ts";
import type { KernelExports, Ptr } from "../kernels/abi.ts";
import type { ArenaPlanner } from "../memory/arena.ts";

export const OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"] as const;
export type OptimizerKind = (typeof OPTIMIZERS)[number];

export interface OptimizerConfig {
  kind: OptimizerKind;
  lr: number;
  momentum: number; // μ of momentum / nesterov
  alpha: number; // rmsprop's smoothing of g²
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export function defaultOptimizer(kind: OptimizerKind): OptimizerConfig {
  const adaptive = kind === "adam" || kind === "adamw" || kind === "rmsprop";
  return {
    kind,
    lr: adaptive ? 0.001 : 0.02,
    momentum: 0.9,
    alpha: 0.99,
    weightDecay: kind === "adamw" ? 0.01 : 0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
  };
}

export function parseOptimizerKind(text: string): OptimizerKind {
  if ((OPTIMIZERS as readonly string[]).includes(text)) return text as OptimizerKind;
  throw new UserError(`--optimizer ${text}: unknown optimizer; use one of ${OPTIMIZERS.join(", ")}`);
}

/** How many parameter-sized state vectors the optimizer keeps. */
export function stateSlots(kind: OptimizerKind): number {
  switch (kind) {
    case "sgd":
      return 0;
    case "momentum":
    case "nesterov":
    case "rmsprop":
      return 1;
    case "adam":
    case "adamw":
      return 2;
  }
}

/** The state vectors for one parameter vector of `floats` floats, laid out like it. */
export function planOptimizerState(planner: ArenaPlanner, floats: number, kind: OptimizerKind, tag = "optimizer"): Ptr[] {
  return Array.from({ length: stateSlots(kind) }, (_, s) => planner.floats("optimizerState", `${tag}.slot${s}`, floats));
}

/** Pointers of one region: weights, gradient, and the state slots at the same offset. */
export interface UpdateRegion {
  w: Ptr;
  g: Ptr;
  m: Ptr; // 0 when the optimizer has no first slot
  v: Ptr; // 0 when it has no second slot
  n: number;
}

/**
 * The region of `floats` floats at float offset `offset` of the weights, the gradient and each
 * optimizer slot (slots laid out like the weights; an absent slot stays 0).
 */
export function updateRegion(w: Ptr, g: Ptr, state: readonly Ptr[], offset: number, floats: number): UpdateRegion {
  const at = (base: Ptr) => (base === 0 ? 0 : base + offset * 4);
  return { w: at(w), g: at(g), m: at(state[0] ?? 0), v: at(state[1] ?? 0), n: floats };
}

/**
 * Apply one update. `step` counts updates of this region starting at 1 (Adam's bias correction).
 */
export function applyUpdate(k: KernelExports, cfg: OptimizerConfig, r: UpdateRegion, step: number): void {
  switch (cfg.kind) {
    case "sgd":
      return k.sgd_update(r.w, r.g, r.n, cfg.lr, cfg.weightDecay);
    case "momentum":
    case "nesterov":
      return k.momentum_update(r.w, r.g, r.m, r.n, cfg.lr, cfg.momentum, 0, cfg.weightDecay, cfg.kind === "nesterov" ? 1 : 0);
    case "adam":
    case "adamw": {
      const bc1 = 1 - Math.pow(cfg.beta1, step);
      const bc2 = 1 - Math.pow(cfg.beta2, step);
      const decoupled = cfg.kind === "adamw" ? 1 : 0;
      return k.adam_update(r.w, r.g, r.m, r.v, r.n, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weightDecay, decoupled, bc1, bc2);
    }
    case "rmsprop":
      return k.rmsprop_update(r.w, r.g, r.m, r.n, cfg.lr, cfg.alpha, cfg.eps, cfg.weightDecay);
  }
}
