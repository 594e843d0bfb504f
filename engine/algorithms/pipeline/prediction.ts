/**
 * Weight prediction for asynchronous pipelines (SpecTrain, arXiv 1809.02839; PipeOptim, Guan et al.,
 * arXiv 2312.00839). A stage that will see its weights move s more times before a microbatch's
 * backward runs the microbatch's forward on a guess of those future weights instead:
 *
 *   Ŵ = W_t − lr·s·Δ_t
 *
 * where Δ_t is the optimizer's own update direction. The executor keeps the live weights W_t, writes
 * Ŵ into a scratch copy for the forward, and runs the backward and the optimizer step on W_t (no
 * weight stashing: memory is live weights + one prediction). Ŵ is one fused kernel pass per stage
 * (asm/predict.ts): Δ is read from the optimizer's state and never written out.
 *
 * The rule behind every Δ_t here: Δ_t is the direction update t actually applied, with the weight-decay
 * term left out, i.e. W_{t−1} − W_t = lr·Δ_t when weight decay is 0. With a constant gradient and the
 * optimizer's state at its fixed point, every later update applies the same Δ, so s updates move the
 * weights by exactly lr·s·Δ_t (the tests check both facts per optimizer, on the kernels).
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
import type { KernelExports, Ptr } from "../../kernels/abi.ts";
import type { OptimizerConfig, UpdateRegion } from "../../optim/optimizer.ts";

/**
 * Writes Ŵ = W − lr·s·Δ_t over region `r` into `out` (laid out like r.w) and returns true; returns
 * false, writing nothing, when there is nothing to predict: s = 0, or no update yet (step 0, no Δ).
 * `r.g` must hold the raw gradient of the last update (SGD, Nesterov, RMSprop read it), `r.m`/`r.v`
 * the optimizer's state slots as `applyUpdate` passes them (RMSprop's square average is slot 0).
 * Δ_t per optimizer, the direction update t took, weight decay left out:
 * - sgd:       Δ = g_t;
 * - momentum:  Δ = m_t (dampening 0, as the engine runs it; PipeOptim's Δ for SGD with momentum);
 * - nesterov:  Δ = g_t + μ·m_t, PyTorch's Nesterov step; with constant g and m at its fixed point
 *              g/(1−μ) it equals m*, the direction every next update takes;
 * - adam/adamw: Δ = m̂/(√v̂ + ε), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ), t = `step`;
 * - rmsprop:   Δ = g_t/(√v_t + ε), as PipeOptim's code does.
 */
export function predictWeights(k: KernelExports, cfg: OptimizerConfig, out: Ptr, r: UpdateRegion, steps: number, step: number): boolean {
  if (!(steps > 0) || !(step > 0)) return false;
  const a = cfg.lr * steps;
  switch (cfg.kind) {
    case "sgd":
      k.predict_linear(out, r.w, r.g, r.n, a);
      return true;
    case "momentum":
      k.predict_linear(out, r.w, r.m, r.n, a);
      return true;
    case "nesterov":
      k.predict_nesterov(out, r.w, r.g, r.m, r.n, a, cfg.momentum);
      return true;
    case "adam":
    case "adamw":
      k.predict_adam(out, r.w, r.m, r.v, r.n, a, 1 - Math.pow(cfg.beta1, step), 1 - Math.pow(cfg.beta2, step), cfg.eps);
      return true;
    case "rmsprop":
      k.predict_rmsprop(out, r.w, r.g, r.m, r.n, a, cfg.eps);
      return true;
  }
}

/** The optimizers whose Δ reads the last gradient, which a stage must not overwrite before it predicts. */
export const predictionReadsGradient = (cfg: OptimizerConfig): boolean => cfg.kind === "sgd" || cfg.kind === "nesterov" || cfg.kind === "rmsprop";

function checkStage(name: string, stage: number, stages: number): void {
  if (!Number.isInteger(stages) || stages < 1) throw new RangeError(`${name}: stages must be a positive integer, got ${stages}`);
  if (!Number.isInteger(stage) || stage < 0 || stage >= stages) throw new RangeError(`${name}: stage must be an integer in [0, ${stages}), got ${stage}`);
}

/**
 * SpecTrain's prediction distance s for stage k (0-based) of D, as in the paper (v1): forward
 * s = ⌊k/2⌋ + D − k − 1, backward s = ⌊k/2⌋ — each pass predicts the weights at the moment the
 * microbatch's update lands, assuming the round trip costs like a forward + backward. (The authors'
 * repository, v2, uses s = D − k − 1 for the forward and reuses its prediction in the backward; skein
 * runs v1.)
 */
export function spectrainSteps(stage: number, stages: number, pass: "forward" | "backward"): number {
  checkStage("spectrainSteps", stage, stages);
  const ahead = stages - stage - 1;
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
 * holds in this engine, whose stages are 0-based and update right after each B. The PipeOptim
 * strategy (strategies.ts) does not use this formula: it counts the updates between each F and its B
 * in the schedule it runs, which is D − k − 1 in the steady state and fewer before it.
 */
export function pipeoptimSteps(stage: number, stages: number): number {
  checkStage("pipeoptimSteps", stage, stages);
  return stages - stage - 1;
}
