// Causal multi-head self-attention of the transformer (Vaswani et al. 2017; the rest of its kernels
// are in gpt.ts): Q·Kᵀ, P·V and the backward's four products as batched GEMMs on register tiles that
// skip the blocks the causal mask zeroes, the mask fused into the softmax.

import { expv, hsum, madd, zero } from "./simd";

// ---- causal multi-head self-attention ----------------------------------------------------------------
//
// Per sample b and head h (hs = C/NH channels; the caller refuses C not divisible by NH), with Q, K,
// V the head's [T × hs] slices of qkv [B, T, 3C] (q | k | v per position):
//   forward    S = Q·Kᵀ, P = softmax over t2 ≤ t of S/√hs (0 above the diagonal: the causal mask),
//              out = P·V; P is saved as att [B, NH, T, T]
//   backward   dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP))/√hs, dQ = dS·K, dK = dSᵀ·Q
// Each product is a batched GEMM through one 6×8 register tile (attTile) that skips what the mask
// makes zero: S and dP only for column blocks at or left of the diagonal, P·V and dS·K only over
// k ≤ the block's last row, Pᵀ·dO and dSᵀ·Q only over k ≥ its first row. The tile reads its A
// operand through two strides with a broadcast load per element (so P, dS, their transposes and
// the strided q/k/v rows all serve as A without a copy) and its B operand as rows of 8 floats,
// from copies padded to a multiple of 8 columns (Kᵀ and Vᵀ transposed); results land in padded
// scratch and are copied out. The softmax is fused with the mask: it reads S's row up to the
// diagonal and writes P's whole row.
//
// Scratch (floats; attentionScratchFloats in the ABI, keep in sync), Tp = ⌈T⌉₈, hp = ⌈hs⌉₈:
//   Tp·Tp (S, or dP then dS) + hp·Tp (Kᵀ or Vᵀ) + 6·T·hp (copies of V and out, or of Q, K, dO and dQ, dK, dV)

// @ts-ignore: decorator
@inline function up8(n: i32): i32 { return (n + 7) & ~7; }

/** Mask modes of attGemm's inner dimension: all of it, k ≤ the row block's last row, k ≥ its first row. */
const ALL: i32 = 0;
const LOWER: i32 = 1;
const UPPER: i32 = 2;

/**
 * c[r][0..8) = Σ_{k<K} A(r, k)·b[k][0..8) for the first `rows` (≤ 6) rows: A(r, k) at
 * a + r·aRow + k·aK (rows past `rows` repeat the last: computed, not stored), b rows ldb bytes apart.
 */
function attTile(c: usize, ldc: usize, rows: i32, a: usize, aRow: usize, aK: usize, b: usize, ldb: usize, K: i32): void {
  const zero = f32x4.splat(0);
  let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
  let c30 = zero, c31 = zero, c40 = zero, c41 = zero, c50 = zero, c51 = zero;
  let a0 = a;
  let a1 = a + <usize>min(1, rows - 1) * aRow, a2 = a + <usize>min(2, rows - 1) * aRow;
  let a3 = a + <usize>min(3, rows - 1) * aRow, a4 = a + <usize>min(4, rows - 1) * aRow, a5 = a + <usize>min(5, rows - 1) * aRow;
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(b, 0);
    const b1 = v128.load(b, 16);
    let x = v128.load32_splat(a0); c00 = madd(x, b0, c00); c01 = madd(x, b1, c01);
    x = v128.load32_splat(a1); c10 = madd(x, b0, c10); c11 = madd(x, b1, c11);
    x = v128.load32_splat(a2); c20 = madd(x, b0, c20); c21 = madd(x, b1, c21);
    x = v128.load32_splat(a3); c30 = madd(x, b0, c30); c31 = madd(x, b1, c31);
    x = v128.load32_splat(a4); c40 = madd(x, b0, c40); c41 = madd(x, b1, c41);
    x = v128.load32_splat(a5); c50 = madd(x, b0, c50); c51 = madd(x, b1, c51);
    a0 += aK; a1 += aK; a2 += aK; a3 += aK; a4 += aK; a5 += aK;
    b += ldb;
  }
  v128.store(c, c00, 0); v128.store(c, c01, 16);
  if (rows > 1) { c += ldc; v128.store(c, c10, 0); v128.store(c, c11, 16); }
  if (rows > 2) { c += ldc; v128.store(c, c20, 0); v128.store(c, c21, 16); }
  if (rows > 3) { c += ldc; v128.store(c, c30, 0); v128.store(c, c31, 16); }
  if (rows > 4) { c += ldc; v128.store(c, c40, 0); v128.store(c, c41, 16); }
  if (rows > 5) { c += ldc; v128.store(c, c50, 0); v128.store(c, c51, 16); }
}

/**
 * C[M × N] = A·B, N a multiple of 8, C rows ldc bytes apart; A(i, k) at A + i·aRow + k·aK, B rows ldb
 * bytes apart, k < K. mode limits k per row block (LOWER: k < the block's last row + 1; UPPER:
 * k ≥ its first row); causal: only column blocks that start at or before the block's last row.
 */
function attGemm(C: usize, ldc: usize, A: usize, aRow: usize, aK: usize, B: usize, ldb: usize, M: i32, N: i32, K: i32, mode: i32, causal: bool): void {
  for (let i0 = 0; i0 < M; i0 += 6) {
    const rows = min(6, M - i0);
    const kLo = mode == UPPER ? i0 : 0;
    const kHi = mode == LOWER ? min(K, i0 + rows) : K;
    const nEnd = causal ? min(N, up8(i0 + rows)) : N;
    const a = A + <usize>i0 * aRow + <usize>kLo * aK;
    const b = B + <usize>kLo * ldb;
    for (let j0 = 0; j0 < nEnd; j0 += 8) {
      attTile(C + <usize>i0 * ldc + (<usize>j0 << 2), ldc, rows, a, aRow, aK, b + (<usize>j0 << 2), ldb, kHi - kLo);
    }
  }
}

/** dst[t][0..hp) = src[t·srcRow .. + hs) then zeros, for t < T (dst rows hp floats). */
function copyPadded(dst: usize, src: usize, srcRow: usize, T: i32, hs: i32, hp: i32): void {
  for (let t = 0; t < T; t++) {
    const d = dst + (<usize>(t * hp) << 2);
    memory.copy(d, src + <usize>t * srcRow, <usize>hs << 2);
    memory.fill(d + (<usize>hs << 2), 0, <usize>(hp - hs) << 2);
  }
}

/** dst[i][t] = src[t·srcRow + i] for i < hs, t < T, rows Tp floats; zeros elsewhere in hp × Tp. */
function copyTransposed(dst: usize, src: usize, srcRow: usize, T: i32, hs: i32, Tp: i32, hp: i32): void {
  memory.fill(dst, 0, <usize>(hp * Tp) << 2);
  for (let t = 0; t < T; t++) {
    const row = src + <usize>t * srcRow;
    for (let i = 0; i < hs; i++) store<f32>(dst + (<usize>(i * Tp + t) << 2), load<f32>(row + (<usize>i << 2)));
  }
}

/** dst[t·dstRow + 0..hs) = src[t][0..hs) (src rows hp floats), t < T. */
function copyOut(dst: usize, dstRow: usize, src: usize, T: i32, hs: i32, hp: i32): void {
  for (let t = 0; t < T; t++) memory.copy(dst + <usize>t * dstRow, src + (<usize>(t * hp) << 2), <usize>hs << 2);
}

/** Floats of scratch attention_forward and attention_backward need (the TypeScript side mirrors it). */
export function attention_scratch_floats(T: i32, hs: i32): i32 {
  const Tp = up8(T), hp = up8(hs);
  return Tp * Tp + hp * Tp + 6 * T * hp;
}

/**
 * out [B, T, C] and the saved att [B, NH, T, T] from qkv [B, T, 3C] (see above). scratch:
 * attention_scratch_floats(T, C/NH) floats.
 */
export function attention_forward(out: usize, att: usize, qkv: usize, B: i32, T: i32, C: i32, NH: i32, scratch: usize): void {
  const hs = C / NH;
  const Tp = up8(T), hp = up8(hs);
  const scale = <f32>(1.0 / Math.sqrt(<f64>hs));
  const row3 = <usize>(3 * C) << 2;
  const S = scratch;
  const kt = S + (<usize>(Tp * Tp) << 2);
  const vp = kt + (<usize>(hp * Tp) << 2);
  const op = vp + (<usize>(T * hp) << 2);
  const sRow = <usize>Tp << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * row3;
    for (let h = 0; h < NH; h++) {
      const q = base + (<usize>(h * hs) << 2);
      const kk = q + (<usize>C << 2);
      const vv = q + (<usize>(2 * C) << 2);
      const a = att + (<usize>((b * NH + h) * T * T) << 2);
      // S = Q·Kᵀ at and left of the diagonal
      copyTransposed(kt, kk, row3, T, hs, Tp, hp);
      attGemm(S, sRow, q, row3, 4, kt, sRow, T, Tp, hs, ALL, true);
      // P = the masked softmax of S/√hs, row by row (exp in f32x4: expv needs no lookup tables,
      // which this module may not carry; a scalar tail splatted)
      for (let t = 0; t < T; t++) {
        const srow = S + <usize>t * sRow;
        const arow = a + (<usize>(t * T) << 2);
        let maxv: f32 = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) maxv = max(maxv, load<f32>(srow + (<usize>t2 << 2)));
        const n = t + 1;
        const mv = f32x4.splat(maxv * scale);
        const sc = f32x4.splat(scale);
        let acc = f32x4.splat(0);
        let t2 = 0;
        for (; t2 + 4 <= n; t2 += 4) {
          const e = expv(f32x4.sub(f32x4.mul(v128.load(srow + (<usize>t2 << 2)), sc), mv));
          v128.store(arow + (<usize>t2 << 2), e);
          acc = f32x4.add(acc, e);
        }
        let sum = hsum(acc);
        for (; t2 < n; t2++) {
          const e = f32x4.extract_lane(expv(f32x4.sub(f32x4.mul(f32x4.splat(load<f32>(srow + (<usize>t2 << 2))), sc), mv)), 0);
          store<f32>(arow + (<usize>t2 << 2), e);
          sum += e;
        }
        const inv: f32 = 1 / sum;
        for (let t3 = 0; t3 <= t; t3++) store<f32>(arow + (<usize>t3 << 2), load<f32>(arow + (<usize>t3 << 2)) * inv);
        for (let t3 = t + 1; t3 < T; t3++) store<f32>(arow + (<usize>t3 << 2), 0);
      }
      // out = P·V over k ≤ each row
      copyPadded(vp, vv, row3, T, hs, hp);
      attGemm(op, <usize>hp << 2, a, <usize>T << 2, 4, vp, <usize>hp << 2, T, hp, T, LOWER, false);
      copyOut(out + (<usize>(b * T) * <usize>C << 2) + (<usize>(h * hs) << 2), <usize>C << 2, op, T, hs, hp);
    }
  }
}

/**
 * Backward of attention_forward: dqkv [B, T, 3C] (overwritten) from dout [B, T, C], the saved att
 * and qkv (see above). scratch: attention_scratch_floats(T, C/NH) floats.
 */
export function attention_backward(dqkv: usize, dout: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, scratch: usize): void {
  const hs = C / NH;
  const Tp = up8(T), hp = up8(hs);
  const scale = <f32>(1.0 / Math.sqrt(<f64>hs));
  const row3 = <usize>(3 * C) << 2;
  const rowC = <usize>C << 2;
  const hpBytes = <usize>hp << 2;
  const tile = <usize>(T * hp) << 2;
  const dS = scratch;
  const vt = dS + (<usize>(Tp * Tp) << 2);
  const qp = vt + (<usize>(hp * Tp) << 2);
  const kp = qp + tile, dop = kp + tile, dqp = dop + tile, dkp = dqp + tile, dvp = dkp + tile;
  const sRow = <usize>Tp << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * row3;
    const dbase = dqkv + <usize>(b * T) * row3;
    for (let h = 0; h < NH; h++) {
      const ho = <usize>(h * hs) << 2;
      const q = base + ho, kk = q + rowC, vv = q + 2 * rowC;
      const g = dout + (<usize>(b * T) * rowC) + ho;
      const a = att + (<usize>((b * NH + h) * T * T) << 2);
      const aRow = <usize>T << 2;
      copyPadded(dop, g, rowC, T, hs, hp);
      // dV = Pᵀ·dO over t ≥ t2
      attGemm(dvp, hpBytes, a, 4, aRow, dop, hpBytes, T, hp, T, UPPER, false);
      // dP = dO·Vᵀ at and left of the diagonal, then dS in place
      copyTransposed(vt, vv, row3, T, hs, Tp, hp);
      attGemm(dS, sRow, g, rowC, 4, vt, sRow, T, Tp, hs, ALL, true);
      for (let t = 0; t < T; t++) {
        const drow = dS + <usize>t * sRow;
        const arow = a + (<usize>(t * T) << 2);
        let inner: f32 = 0;
        for (let t2 = 0; t2 <= t; t2++) inner += load<f32>(arow + (<usize>t2 << 2)) * load<f32>(drow + (<usize>t2 << 2));
        for (let t2 = 0; t2 <= t; t2++) {
          const p = drow + (<usize>t2 << 2);
          store<f32>(p, load<f32>(arow + (<usize>t2 << 2)) * (load<f32>(p) - inner) * scale);
        }
        for (let t2 = t + 1; t2 < Tp; t2++) store<f32>(drow + (<usize>t2 << 2), 0);
      }
      // dQ = dS·K over t2 ≤ t, dK = dSᵀ·Q over t ≥ t2
      copyPadded(kp, kk, row3, T, hs, hp);
      copyPadded(qp, q, row3, T, hs, hp);
      attGemm(dqp, hpBytes, dS, sRow, 4, kp, hpBytes, T, hp, T, LOWER, false);
      attGemm(dkp, hpBytes, dS, 4, sRow, qp, hpBytes, T, hp, T, UPPER, false);
      copyOut(dbase + ho, row3, dqp, T, hs, hp);
      copyOut(dbase + ho + rowC, row3, dkp, T, hs, hp);
      copyOut(dbase + ho + 2 * rowC, row3, dvp, T, hs, hp);
    }
  }
}

