// Vector ops the training algorithms need (averaging, mixing, distances). n counts f32 elements.

import { madd } from "./simd";

/** y += a·x */
export function axpy(y: usize, x: usize, n: i32, a: f32): void {
  const va = f32x4.splat(a);
  const end = y + (<usize>max(n, 0) << 2);
  const end4 = y + (<usize>max(n, 0) >> 2 << 4);
  while (y < end4) { v128.store(y, madd(va, v128.load(x), v128.load(y))); y += 16; x += 16; }
  while (y < end) {
    store<f32>(y, f32x4.extract_lane(madd(va, f32x4.splat(load<f32>(x)), f32x4.splat(load<f32>(y))), 0));
    y += 4; x += 4;
  }
}

/** x *= a */
export function scale(x: usize, n: i32, a: f32): void {
  const va = f32x4.splat(a);
  const end = x + (<usize>max(n, 0) << 2);
  const end4 = x + (<usize>max(n, 0) >> 2 << 4);
  while (x < end4) { v128.store(x, f32x4.mul(v128.load(x), va)); x += 16; }
  while (x < end) { store<f32>(x, load<f32>(x) * a); x += 4; }
}

/** dst[0..n) = src[0..n) (regions must not overlap). */
export function copy(dst: usize, src: usize, n: i32): void {
  if (n > 0) memory.copy(dst, src, <usize>n << 2);
}

/** dst = 0 */
export function fill_zero(dst: usize, n: i32): void {
  if (n > 0) memory.fill(dst, 0, <usize>n << 2);
}

/**
 * out = Σ_i weights[i]·tensors[i]; `tensors` is an i32 array of k pointers, `weights` an f32 array of
 * k. Every input is read at a position before out is written there, so out may alias an input.
 */
export function weighted_sum(out: usize, tensors: usize, weights: usize, k: i32, n: i32): void {
  if (n <= 0) return;
  const total = <usize>n << 2;
  const total16 = (<usize>n >> 4) << 6;
  let off: usize = 0;
  if (k == 2) {
    // Two inputs (a step of two blocks): their pointers and weights in registers for the whole pass.
    const t0 = <usize>load<i32>(tensors), t1 = <usize>load<i32>(tensors, 4);
    const w0 = v128.load32_splat(weights), w1 = v128.load32_splat(weights, 4);
    const zero = f32x4.splat(0);
    for (; off < total16; off += 64) {
      const p0 = t0 + off, p1 = t1 + off;
      const a0 = madd(w1, v128.load(p1, 0), madd(w0, v128.load(p0, 0), zero));
      const a1 = madd(w1, v128.load(p1, 16), madd(w0, v128.load(p0, 16), zero));
      const a2 = madd(w1, v128.load(p1, 32), madd(w0, v128.load(p0, 32), zero));
      const a3 = madd(w1, v128.load(p1, 48), madd(w0, v128.load(p0, 48), zero));
      const o = out + off;
      v128.store(o, a0, 0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
    }
  }
  // 16 floats per step: four independent accumulators, the k inputs streamed through them.
  for (; off < total16; off += 64) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (let i = 0; i < k; i++) {
      const t = <usize>load<i32>(tensors + (<usize>i << 2)) + off;
      const w = v128.load32_splat(weights + (<usize>i << 2));
      a0 = madd(w, v128.load(t, 0), a0);
      a1 = madd(w, v128.load(t, 16), a1);
      a2 = madd(w, v128.load(t, 32), a2);
      a3 = madd(w, v128.load(t, 48), a3);
    }
    const o = out + off;
    v128.store(o, a0, 0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
  }
  for (; off < total; off += 4) {
    let a = f32x4.splat(0);
    for (let i = 0; i < k; i++) {
      const t = <usize>load<i32>(tensors + (<usize>i << 2)) + off;
      a = madd(v128.load32_splat(weights + (<usize>i << 2)), f32x4.splat(load<f32>(t)), a);
    }
    store<f32>(out + off, f32x4.extract_lane(a, 0));
  }
}

/** Σ (a − b)², accumulated in f64 (differences taken in f64 too). */
export function squared_distance(a: usize, b: usize, n: i32): f64 {
  let s0 = f64x2.splat(0), s1 = s0;
  const end = a + (<usize>max(n, 0) << 2);
  const end4 = a + (<usize>max(n, 0) >> 2 << 4);
  while (a < end4) {
    const av = v128.load(a), bv = v128.load(b);
    const dlo = f64x2.sub(f64x2.promote_low_f32x4(av), f64x2.promote_low_f32x4(bv));
    const ahi = v128.shuffle<f32>(av, av, 2, 3, 2, 3), bhi = v128.shuffle<f32>(bv, bv, 2, 3, 2, 3);
    const dhi = f64x2.sub(f64x2.promote_low_f32x4(ahi), f64x2.promote_low_f32x4(bhi));
    s0 = f64x2.add(s0, f64x2.mul(dlo, dlo));
    s1 = f64x2.add(s1, f64x2.mul(dhi, dhi));
    a += 16; b += 16;
  }
  const s = f64x2.add(s0, s1);
  let total = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  while (a < end) {
    const d = <f64>load<f32>(a) - <f64>load<f32>(b);
    total += d * d;
    a += 4; b += 4;
  }
  return total;
}

/**
 * Delay compensation (DC-ASGD, Zheng et al. 2017): g += λ · g ⊙ g ⊙ (w_now − w_read), the diagonal
 * approximation of the Hessian term that a gradient computed on w_read misses at w_now.
 */
export function delay_compensate(g: usize, wNow: usize, wRead: usize, n: i32, lambda: f32): void {
  const vl = f32x4.splat(lambda);
  const end = g + (<usize>max(n, 0) << 2);
  const end4 = g + (<usize>max(n, 0) >> 2 << 4);
  while (g < end4) {
    const vg = v128.load(g);
    const d = f32x4.sub(v128.load(wNow), v128.load(wRead));
    v128.store(g, madd(f32x4.mul(f32x4.mul(vl, vg), vg), d, vg));
    g += 16; wNow += 16; wRead += 16;
  }
  while (g < end) {
    const x = load<f32>(g);
    store<f32>(g, x + lambda * x * x * (load<f32>(wNow) - load<f32>(wRead)));
    g += 4; wNow += 4; wRead += 4;
  }
}
