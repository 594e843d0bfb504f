// Weight prediction for asynchronous pipelines (SpecTrain, arXiv 1809.02839; PipeOptim, Guan et al.,
// arXiv 2312.00839): Ŵ = W − a·Δ with a = lr·s and Δ the direction the optimizer's last update took.
// One fused pass per tensor, like the optimizer updates next door: Δ is never written out. The
// per-element step is one @inline function on f32x4; the tail runs it on splatted scalars, so tail
// elements get exactly the same arithmetic.

import { madd, nmadd } from "./simd";

/** out = w − a·d (SGD: d = last gradient; momentum: d = the momentum buffer m). out may alias w. */
export function predict_linear(out: usize, w: usize, d: usize, n: i32, a: f32): void {
  const va = f32x4.splat(a);
  const end = out + (<usize>max(n, 0) << 2);
  const end4 = out + (<usize>max(n, 0) >> 2 << 4);
  while (out < end4) {
    v128.store(out, nmadd(va, v128.load(d), v128.load(w)));
    out += 16; w += 16; d += 16;
  }
  while (out < end) {
    store<f32>(out, f32x4.extract_lane(nmadd(va, f32x4.splat(load<f32>(d)), f32x4.splat(load<f32>(w))), 0));
    out += 4; w += 4; d += 4;
  }
}

// @ts-ignore: decorator
@inline function nesterovStep(out: usize, w: usize, g: usize, m: usize, vector: bool, a: v128, mu: v128): void {
  const wv = vector ? v128.load(w) : f32x4.splat(load<f32>(w));
  const gv = vector ? v128.load(g) : f32x4.splat(load<f32>(g));
  const mv = vector ? v128.load(m) : f32x4.splat(load<f32>(m));
  const o = nmadd(a, madd(mu, mv, gv), wv);
  if (vector) v128.store(out, o);
  else store<f32>(out, f32x4.extract_lane(o, 0));
}

/** out = w − a·(g + μ·m): the direction of PyTorch's Nesterov update. out may alias w. */
export function predict_nesterov(out: usize, w: usize, g: usize, m: usize, n: i32, a: f32, mu: f32): void {
  const va = f32x4.splat(a), vmu = f32x4.splat(mu);
  const end = out + (<usize>max(n, 0) << 2);
  const end4 = out + (<usize>max(n, 0) >> 2 << 4);
  while (out < end4) { nesterovStep(out, w, g, m, true, va, vmu); out += 16; w += 16; g += 16; m += 16; }
  while (out < end) { nesterovStep(out, w, g, m, false, va, vmu); out += 4; w += 4; g += 4; m += 4; }
}

// @ts-ignore: decorator
@inline function adamStep(out: usize, w: usize, m: usize, v: usize, vector: bool, a: v128, invSqrtBc2: v128, eps: v128): void {
  const wv = vector ? v128.load(w) : f32x4.splat(load<f32>(w));
  const mv = vector ? v128.load(m) : f32x4.splat(load<f32>(m));
  const vv = vector ? v128.load(v) : f32x4.splat(load<f32>(v));
  const o = nmadd(a, f32x4.div(mv, madd(f32x4.sqrt(vv), invSqrtBc2, eps)), wv);
  if (vector) v128.store(out, o);
  else store<f32>(out, f32x4.extract_lane(o, 0));
}

/**
 * out = w − a·m̂/(√v̂ + eps) with m̂ = m/bc1, v̂ = v/bc2 (Adam and AdamW; no weight-decay term), written
 * as adam_update writes its step: (a/bc1)·m/(√v/√bc2 + eps). out may alias w.
 */
export function predict_adam(out: usize, w: usize, m: usize, v: usize, n: i32, a: f32, bc1: f32, bc2: f32, eps: f32): void {
  const va = f32x4.splat(a / bc1), vi = f32x4.splat(<f32>(1.0 / Math.sqrt(<f64>bc2))), veps = f32x4.splat(eps);
  const end = out + (<usize>max(n, 0) << 2);
  const end4 = out + (<usize>max(n, 0) >> 2 << 4);
  while (out < end4) { adamStep(out, w, m, v, true, va, vi, veps); out += 16; w += 16; m += 16; v += 16; }
  while (out < end) { adamStep(out, w, m, v, false, va, vi, veps); out += 4; w += 4; m += 4; v += 4; }
}

// @ts-ignore: decorator
@inline function rmspropStep(out: usize, w: usize, g: usize, v: usize, vector: bool, a: v128, eps: v128): void {
  const wv = vector ? v128.load(w) : f32x4.splat(load<f32>(w));
  const gv = vector ? v128.load(g) : f32x4.splat(load<f32>(g));
  const vv = vector ? v128.load(v) : f32x4.splat(load<f32>(v));
  const o = nmadd(a, f32x4.div(gv, f32x4.add(f32x4.sqrt(vv), eps)), wv);
  if (vector) v128.store(out, o);
  else store<f32>(out, f32x4.extract_lane(o, 0));
}

/** out = w − a·g/(√v + eps) (RMSprop, as PipeOptim's code predicts it). out may alias w. */
export function predict_rmsprop(out: usize, w: usize, g: usize, v: usize, n: i32, a: f32, eps: f32): void {
  const va = f32x4.splat(a), veps = f32x4.splat(eps);
  const end = out + (<usize>max(n, 0) << 2);
  const end4 = out + (<usize>max(n, 0) >> 2 << 4);
  while (out < end4) { rmspropStep(out, w, g, v, true, va, veps); out += 16; w += 16; g += 16; v += 16; }
  while (out < end) { rmspropStep(out, w, g, v, false, va, veps); out += 4; w += 4; g += 4; v += 4; }
}
