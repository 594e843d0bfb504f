/**
 * Winograd's weight side (winograd.ts): each 3×3 filter g transformed once per call to U = G·g·Gᵀ and
 * stored pre-broadcast per frequency ξ for the products, and the weight gradient brought back from
 * the transformed domain, dg (+)= Gᵀ·dU·G.
 */
import { up2 } from "./tile";

const HALF: f32 = 0.5;

/**
 * dst = U = G·g·Gᵀ for every (o < O, i < K), pre-broadcast; rows o ∈ [O, ⌈O⌉₂) are zero. The tap
 * (kh, kw) of g_oi is w[o·strideOut + i·strideIn + (flip ? 8 − (3kh + kw) : 3kh + kw)].
 */
export function packWeights(dst: usize, w: usize, O: i32, K: i32, strideOut: i32, strideIn: i32, flip: bool): void {
  const OP = up2(O);
  const xiBytes = <usize>(OP * K) << 4;
  for (let o = 0; o < OP; o++) {
    const o0 = o - o % 6;
    const R = min(6, OP - o0);
    const r = o - o0;
    for (let i = 0; i < K; i++) {
      let p = dst + (<usize>(o0 * K + i * R + r) << 4);
      if (o >= O) {
        for (let xi = 0; xi < 16; xi++) { v128.store(p, f32x4.splat(0)); p += xiBytes; }
        continue;
      }
      const src = w + (<usize>(o * strideOut + i * strideIn) << 2);
      // g[kh][kw]
      const g00 = tap(src, 0, flip), g01 = tap(src, 1, flip), g02 = tap(src, 2, flip);
      const g10 = tap(src, 3, flip), g11 = tap(src, 4, flip), g12 = tap(src, 5, flip);
      const g20 = tap(src, 6, flip), g21 = tap(src, 7, flip), g22 = tap(src, 8, flip);
      // G·g: rows q = 0..3, columns kw
      const q00 = g00, q01 = g01, q02 = g02;
      const q10 = HALF * (g00 + g10 + g20), q11 = HALF * (g01 + g11 + g21), q12 = HALF * (g02 + g12 + g22);
      const q20 = HALF * (g00 - g10 + g20), q21 = HALF * (g01 - g11 + g21), q22 = HALF * (g02 - g12 + g22);
      const q30 = g20, q31 = g21, q32 = g22;
      // (G·g)·Gᵀ, row by row, ξ = 4q + j
      p = storeRow(p, xiBytes, q00, q01, q02);
      p = storeRow(p, xiBytes, q10, q11, q12);
      p = storeRow(p, xiBytes, q20, q21, q22);
      storeRow(p, xiBytes, q30, q31, q32);
    }
  }
}

// @ts-ignore: decorator
@inline function tap(src: usize, t: i32, flip: bool): f32 {
  return load<f32>(src + (<usize>(flip ? 8 - t : t) << 2));
}

/** Stores splat([a, ½(a+b+c), ½(a−b+c), c][j]) at p + j·xiBytes; returns p + 4·xiBytes. */
// @ts-ignore: decorator
@inline function storeRow(p: usize, xiBytes: usize, a: f32, b: f32, c: f32): usize {
  v128.store(p, f32x4.splat(a)); p += xiBytes;
  v128.store(p, f32x4.splat(HALF * (a + b + c))); p += xiBytes;
  v128.store(p, f32x4.splat(HALF * (a - b + c))); p += xiBytes;
  v128.store(p, f32x4.splat(c)); p += xiBytes;
  return p;
}

/** dw[o, i, :] (+)= Gᵀ·dU[ξ][o][i]·G for every pair (dU is [ξ][CoP][CiP]). */
export function unpackWeightGradient(dw: usize, du: usize, Co: i32, Ci: i32, CoP: i32, CiP: i32, accumulate: bool): void {
  const xi = <usize>(CoP * CiP) << 2;
  for (let o = 0; o < Co; o++) {
    for (let i = 0; i < Ci; i++) {
      const p = du + (<usize>(o * CiP + i) << 2);
      // each row q of dU times G (4 → 3 columns): [x0 + ½(x1 + x2), ½(x1 − x2), ½(x1 + x2) + x3]
      let x0 = load<f32>(p), x1 = load<f32>(p + xi), x2 = load<f32>(p + 2 * xi), x3 = load<f32>(p + 3 * xi);
      const r00 = x0 + HALF * (x1 + x2), r01 = HALF * (x1 - x2), r02 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 4 * xi); x1 = load<f32>(p + 5 * xi); x2 = load<f32>(p + 6 * xi); x3 = load<f32>(p + 7 * xi);
      const r10 = x0 + HALF * (x1 + x2), r11 = HALF * (x1 - x2), r12 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 8 * xi); x1 = load<f32>(p + 9 * xi); x2 = load<f32>(p + 10 * xi); x3 = load<f32>(p + 11 * xi);
      const r20 = x0 + HALF * (x1 + x2), r21 = HALF * (x1 - x2), r22 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 12 * xi); x1 = load<f32>(p + 13 * xi); x2 = load<f32>(p + 14 * xi); x3 = load<f32>(p + 15 * xi);
      const r30 = x0 + HALF * (x1 + x2), r31 = HALF * (x1 - x2), r32 = HALF * (x1 + x2) + x3;
      // Gᵀ over the rows
      const d = dw + (<usize>((o * Ci + i) * 9) << 2);
      addOrStore(d, 0, r00 + HALF * (r10 + r20), accumulate);
      addOrStore(d, 4, r01 + HALF * (r11 + r21), accumulate);
      addOrStore(d, 8, r02 + HALF * (r12 + r22), accumulate);
      addOrStore(d, 12, HALF * (r10 - r20), accumulate);
      addOrStore(d, 16, HALF * (r11 - r21), accumulate);
      addOrStore(d, 20, HALF * (r12 - r22), accumulate);
      addOrStore(d, 24, HALF * (r10 + r20) + r30, accumulate);
      addOrStore(d, 28, HALF * (r11 + r21) + r31, accumulate);
      addOrStore(d, 32, HALF * (r12 + r22) + r32, accumulate);
    }
  }
}

// @ts-ignore: decorator
@inline function addOrStore(p: usize, offset: usize, v: f32, accumulate: bool): void {
  const q = p + offset;
  store<f32>(q, accumulate ? load<f32>(q) + v : v);
}

