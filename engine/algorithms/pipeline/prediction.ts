/**
 * Weight prediction for asynchronous pipelines (SpecTrain, arXiv 1809.02839; PipeOptim, Guan et al.,
 * arXiv 2312.00839). A stage that will see its weights move s more times before a microbatch's
 * backward runs the microbatch's forward on a guess of those future weights instead:
 *
 *   Ŵ = W_t − lr·s·Δ_t
 *
 * where Δ_t is the optimizer's own update direction. The executor keeps the live weights W_t, writes
 * Ŵ into a scratch copy for the forward, and runs the backward and the optimizer step on W_t (no
 * weight stashing: memory is live weights + one prediction).
 *
 * The rule behind every Δ_t here: Δ_t is the direction update t actually applied, with the weight-decay
 * term left out, i.e. W_{t−1} − W_t = lr·Δ_t when weight decay is 0. With a constant gradient and the
 * optimizer's state at its fixed point, every later update applies the same Δ, so s updates move the
 * weights by exactly lr·s·Δ_t (test/prediction.test.ts checks both facts per optimizer).
 *
 * Where the prediction is not exact even with a constant gradient:
 *  - weight decay > 0, every optimizer: the decay term (wd·W, coupled into g or decoupled as AdamW's
 *    W −= lr·wd·W) depends on W, which moves between the prediction and the future updates; Δ_t
 *    leaves it out (PipeOptim's AdamW Δ has no decay term either). For AdamW the future weights are
 *    off by about lr·wd·Σ W, i.e. lr·wd·s·W to first order.
 *  - momentum / Nesterov before the buffer reaches its fixed point m* = g/(1−μ): the future updates
 *    grow towards m*, Δ_t = the last one lags them.
 *  - RMSprop before v reaches g² (from v = 0 that takes ~1/(1−α) steps): the future steps shrink.
 *  - Adam is exact from step 1 on: with constant g the bias corrections make m̂ = g and v̂ = g² at
 *    every t (mathematically; in f32 to rounding).
 * With real, changing gradients the prediction is of course an extrapolation, never exact.
 */
import type { OptimizerConfig } from "../../optim/optimizer.ts";

export interface PredictionState {
  /** First slot: momentum buffer (momentum, nesterov) or Adam's first moment. */
  m?: Float32Array;
  /** Adam's second moment, or RMSprop's square average (RMSprop keeps it in the optimizer's slot 0, which `applyUpdate` passes as `r.m`; `m` is accepted for it when `v` is absent). */
  v?: Float32Array;
  /** The raw gradient of the last update (before weight decay): SGD, Nesterov, RMSprop. */
  lastGrad?: Float32Array;
  /** Updates applied so far (Adam's t); 0 = none yet. */
  step: number;
}

function need(a: Float32Array | undefined, n: number, what: string, kind: string): Float32Array {
  if (a === undefined) throw new Error(`predictionDirection(${kind}): state.${what} is required`);
  if (a.length < n) throw new RangeError(`predictionDirection(${kind}): state.${what} has ${a.length} floats, out has ${n}`);
  return a;
}

/**
 * Writes Δ_t, the optimizer's update direction, into `out` (out.length elements). Returns false, with
 * `out` untouched, when no update has happened yet (step 0): nothing is predicted before the first
 * backward. `out` must not alias the state arrays except `lastGrad` (elementwise, so that is safe too).
 *
 * - sgd:       Δ = g_t (the last gradient).
 * - momentum:  Δ = m_t (dampening 0, as the engine runs it; PipeOptim's Δ for SGD with momentum).
 * - nesterov:  Δ = g_t + μ·m_t. PyTorch's Nesterov update t moves W by lr·(g_t + μ·m_t), so this is,
 *              as for every optimizer here, the direction the last update took. With a constant g and
 *              m at its fixed point m* = g/(1−μ) it equals g + μg/(1−μ) = g/(1−μ) = m*, the direction
 *              every next update takes, so the prediction is exact there. (The alternative, the next
 *              update's exact direction under constant g, g + μ(μ·m_t + g), agrees at the fixed point,
 *              is closer during warm-up, but breaks the "Δ = last update" rule that momentum's m_t,
 *              PipeOptim's own choice, follows — both lag the same way before the fixed point.)
 * - adam/adamw: Δ = m̂/(√v̂ + ε), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ); no weight-decay term.
 * - rmsprop:   Δ = g_t/(√v_t + ε), as PipeOptim's code does (the last update's direction).
 */
export function predictionDirection(
  cfg: OptimizerConfig,
  state: { m?: Float32Array; v?: Float32Array; lastGrad?: Float32Array; step: number },
  out: Float32Array,
): boolean {
  if (!(state.step > 0)) return false;
  const n = out.length;
  const kind = cfg.kind;
  switch (kind) {
    case "sgd": {
      const g = need(state.lastGrad, n, "lastGrad", kind);
      for (let i = 0; i < n; i++) out[i] = g[i]!;
      return true;
    }
    case "momentum": {
      const m = need(state.m, n, "m", kind);
      for (let i = 0; i < n; i++) out[i] = m[i]!;
      return true;
    }
    case "nesterov": {
      const g = need(state.lastGrad, n, "lastGrad", kind);
      const m = need(state.m, n, "m", kind);
      const mu = cfg.momentum;
      for (let i = 0; i < n; i++) out[i] = g[i]! + mu * m[i]!;
      return true;
    }
    case "adam":
    case "adamw": {
      const m = need(state.m, n, "m", kind);
      const v = need(state.v, n, "v", kind);
      const bc1 = 1 - Math.pow(cfg.beta1, state.step);
      const bc2 = 1 - Math.pow(cfg.beta2, state.step);
      const invBc1 = 1 / bc1;
      const invSqrtBc2 = 1 / Math.sqrt(bc2);
      const eps = cfg.eps;
      for (let i = 0; i < n; i++) out[i] = (m[i]! * invBc1) / (Math.sqrt(v[i]!) * invSqrtBc2 + eps);
      return true;
    }
    case "rmsprop": {
      const g = need(state.lastGrad, n, "lastGrad", kind);
      const v = need(state.v ?? state.m, n, "v", kind);
      const eps = cfg.eps;
      for (let i = 0; i < n; i++) out[i] = g[i]! / (Math.sqrt(v[i]!) + eps);
      return true;
    }
  }
}

/** Ŵ = W − lr·s·Δ, over out.length elements. `out` may alias `w` or `delta` (elementwise). */
export function predictWeights(w: Float32Array, delta: Float32Array, lr: number, s: number, out: Float32Array): void {
  const n = out.length;
  if (w.length < n || delta.length < n) throw new RangeError(`predictWeights: w has ${w.length}, delta ${delta.length} floats, out has ${n}`);
  const a = lr * s;
  for (let i = 0; i < n; i++) out[i] = w[i]! - a * delta[i]!;
}

function checkStage(name: string, stage: number, stages: number): void {
  if (!Number.isInteger(stages) || stages < 1) throw new RangeError(`${name}: stages must be a positive integer, got ${stages}`);
  if (!Number.isInteger(stage) || stage < 0 || stage >= stages) throw new RangeError(`${name}: stage must be an integer in [0, ${stages}), got ${stage}`);
}

/**
 * SpecTrain's prediction distance s for stage k (0-based) of D.
 * - v1 (the paper): forward s = ⌊k/2⌋ + D − k − 1, backward s = ⌊k/2⌋ — each pass predicts the weights
 *   at the moment the microbatch's update lands, assuming the round trip costs like a forward + backward.
 * - v2 (the authors' repo): forward s = D − k − 1, and the backward does NOT predict again: it reuses
 *   the forward's predicted weights. For pass "backward" this returns the forward's s, the same value,
 *   only so a caller that recomputes gets identical weights; the executor should keep the forward's Ŵ
 *   and run the backward on it rather than predict from the (since moved) live weights.
 */
export function spectrainSteps(stage: number, stages: number, variant: "v1" | "v2", pass: "forward" | "backward"): number {
  checkStage("spectrainSteps", stage, stages);
  const ahead = stages - stage - 1;
  if (variant === "v2") return ahead;
  const half = Math.floor(stage / 2);
  return pass === "forward" ? half + ahead : half;
}

/**
 * PipeOptim's prediction distance for stage k (0-based) of D under asynchronous 1F1B: s = D − k − 1.
 *
 * Derivation. PipeOptim runs F(k,m) on Ŵ and B(k,m) on the live weights, so Ŵ should equal the live
 * weights at B(k,m): s must be the number of updates stage k applies between F(k,m) and B(k,m).
 * Stage k's list (schedule.ts, oneFOneBStage) is w = D−k−1 warm-up forwards, then for j = 0,1,…
 * "F(j+w), B(j)", and it updates right after every B. In steady state (m ≥ w) F(k,m) is the F of
 * pair j = m−w, so what follows it up to B(k,m) is
 *   B(m−w), F(m+1), B(m−w+1), F(m+2), …, F(m+w−1), B(m−1), F(m+w), B(m)   (F's only while < M)
 * — exactly the w backwards of microbatches m−w … m−1, i.e. D−k−1 updates. In the schedule's version
 * annotations: F(k,m) uses version m − (D−k−1), and before B(k,m) the stage has done B(0…m−1), m
 * updates: m − (m − (D−k−1)) = D−k−1. (Before steady state, m < w, only m updates intervene — and
 * F(0) … F(w) all run before the stage's first backward, so they are not predicted at all.)
 * The drain (no more F's) does not change the count. The last stage runs F(m) and B(m) back to back:
 * s = 0, it predicts nothing — as PipeOptim's README and figure say.
 *
 * PipeOptim's code uses D − k instead. That is one step too far here: the forward would run on weights
 * one update ahead of those its backward sees (overshoot lr·Δ). It matches if stages are counted from
 * 1, or if the prediction is taken before the previous backward's update has been applied — neither
 * holds in this engine, whose stages are 0-based and update right after each B. test/prediction.test.ts
 * counts the B's between F(k,m) and B(k,m) in the generated schedule (list order and the simulator's
 * timeline) and replays a stage with a constant gradient to check that Ŵ equals the backward's weights.
 */
export function pipeoptimSteps(stage: number, stages: number): number {
  checkStage("pipeoptimSteps", stage, stages);
  return stages - stage - 1;
}
