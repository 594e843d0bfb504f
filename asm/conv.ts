// conv2d (NCHW, weights [Cout, Cin, KH, KW]) as im2col + GEMM, looping over the batch in wasm.
//
// Per sample, cols is the [Cin·KH·KW × OH·OW] matrix whose row (ci, kh, kw) holds, for every output
// position, the input pixel that weight multiplies (0 in the padding). Then
//   forward   y_n[Cout × OHW]  = w[Cout × CKK] · cols                 rowsGemm
//   weights   dw[Cout × CKK] (+)= dy_n[Cout × OHW] · colsᵀ            rowsDot
//   input     dcols[CKK × OHW] = wᵀ · dy_n, then col2im scatters it  rowsGemm
// A 1×1 stride-1 unpadded conv needs no im2col: x_n already is cols (and dx_n is dcols).
//
// The GEMMs are this file's own, shaped for convolutions (small channel counts, one sample's OHW
// columns): the weight operand is packed once per call, pre-broadcast (as in the shared GEMM), and
// the other operand — cols, or dy_n — is read in place, row by row, with no packing copy; the weight
// gradient is a block of dot products along OHW, where both dy_n and cols are contiguous, so it
// needs neither a transpose nor a pack either.
//
// `cols` holds, in floats (convColsFloats in the ABI; keep in sync):
//   [0, CKK·OHW)                        the im2col matrix of one sample
//   + 4·max(⌈Cout⌉₂·CKK, ⌈CKK⌉₂·Cout)   the pre-broadcast weights (or their transpose)
//   + 48                                a 6×8 edge tile
//   + 8·max(CKK, Cout)                  a zero-padded copy of a matrix narrower than 8 columns
// `pack` is not used (it stays in the signature for callers that size it).

import { madd } from "./simd";
import { tile2, tile4, tile6 } from "./tile";

/** Output extent (H + 2·pad − K)/stride + 1; 0 when the kernel does not fit. */
// @ts-ignore: decorator
@inline function convOut(H: i32, K: i32, stride: i32, pad: i32): i32 {
  const span = H + 2 * pad - K;
  return span >= 0 && stride > 0 ? span / stride + 1 : 0;
}

/** First output column whose input column ow·stride − pad + kw is ≥ 0, and one past the last < W. */
// @ts-ignore: decorator
@inline function validLo(stride: i32, pad: i32, k: i32): i32 {
  const need = pad - k;
  return need <= 0 ? 0 : (need + stride - 1) / stride;
}
// @ts-ignore: decorator
@inline function validHi(W: i32, stride: i32, pad: i32, k: i32, OW: i32): i32 {
  const last = W - 1 + pad - k;
  return last < 0 ? 0 : min(OW, last / stride + 1);
}

/** dst[0..n) = 0. */
// @ts-ignore: decorator
@inline function zeroFloats(dst: usize, n: i32): void {
  const end = dst + (<usize>n << 2);
  while (dst + 16 <= end) { v128.store(dst, f32x4.splat(0)); dst += 16; }
  while (dst < end) { store<f32>(dst, 0); dst += 4; }
}

/** dst[i] (+)= src[i·stride] for i < n. */
// @ts-ignore: decorator
@inline function copyStrided(dst: usize, src: usize, n: i32, stride: i32, add: bool): void {
  const end = dst + (<usize>n << 2);
  if (stride == 1) {
    while (dst + 16 <= end) {
      v128.store(dst, add ? f32x4.add(v128.load(dst), v128.load(src)) : v128.load(src));
      dst += 16; src += 16;
    }
  }
  const step = <usize>stride << 2;
  while (dst < end) {
    store<f32>(dst, add ? load<f32>(dst) + load<f32>(src) : load<f32>(src));
    dst += 4; src += step;
  }
}

/**
 * dst[0..n) = src[0..n) for n ≥ 4: whole vectors, then one last vector ending at n that overlaps the
 * one before (rows of a 10-wide output are 3 vector copies, not 2 and two scalar ones).
 */
// @ts-ignore: decorator
@inline function copyRow(dst: usize, src: usize, n: i32): void {
  const last = <usize>(n - 4) << 2;
  let i: usize = 0;
  for (; i < last; i += 16) v128.store(dst + i, v128.load(src + i));
  v128.store(dst + last, v128.load(src + last));
}

/** cols[(ci,kh,kw), (oh,ow)] = x[ci, oh·s − pad + kh, ow·s − pad + kw] or 0 outside the image. */
function im2col(cols: usize, x: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, stride: i32, pad: i32, OH: i32, OW: i32): void {
  let dst = cols;
  for (let ci = 0; ci < Cin; ci++) {
    const plane = x + <usize>ci * <usize>H * <usize>W * 4;
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const lo = validLo(stride, pad, kw);
        const hi = max(lo, validHi(W, stride, pad, kw, OW));
        if (stride == 1 && hi - lo >= 4) {
          // the common case, with the bookkeeping out of the row loop: rows above and below the
          // image are one zero run each, the rows between are vector copies with zero margins
          const ohLo = min(OH, max(0, pad - kh));
          const ohHi = max(ohLo, min(OH, H + pad - kh));
          const rowBytes = <usize>OW << 2;
          zeroFloats(dst, ohLo * OW);
          let d = dst + <usize>ohLo * rowBytes;
          let src = plane + (<usize>((ohLo - pad + kh) * W + lo - pad + kw) << 2);
          const n = hi - lo;
          const inRow = <usize>W << 2;
          if (lo == 0 && hi == OW) {
            for (let oh = ohLo; oh < ohHi; oh++) { copyRow(d, src, n); d += rowBytes; src += inRow; }
          } else {
            for (let oh = ohLo; oh < ohHi; oh++) {
              zeroFloats(d, lo);
              copyRow(d + (<usize>lo << 2), src, n);
              zeroFloats(d + (<usize>hi << 2), OW - hi);
              d += rowBytes; src += inRow;
            }
          }
          zeroFloats(d, (OH - ohHi) * OW);
          dst += <usize>OH * rowBytes;
          continue;
        }
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * stride - pad + kh;
          if (ih < 0 || ih >= H) {
            zeroFloats(dst, OW);
          } else {
            const src = plane + (<usize>(ih * W + lo * stride - pad + kw) << 2);
            zeroFloats(dst, lo);
            copyStrided(dst + (<usize>lo << 2), src, hi - lo, stride, false);
            zeroFloats(dst + (<usize>hi << 2), OW - hi);
          }
          dst += <usize>OW << 2;
        }
      }
    }
  }
}

/**
 * dst[0..n) += src[0..n): whole vectors, then two floats through one 64-bit lane, then one. (Not one
 * last vector overlapping the one before: its load would overlap that vector's store still in the
 * store buffer and wait for it to reach the cache, which made this loop several times slower.)
 */
// @ts-ignore: decorator
@inline function addRow(dst: usize, src: usize, n: i32): void {
  const whole = <usize>(n & ~3) << 2;
  for (let i: usize = 0; i < whole; i += 16) v128.store(dst + i, f32x4.add(v128.load(dst + i), v128.load(src + i)));
  const rem = n & 3;
  let i = whole;
  if (rem >= 2) {
    v128.store64_lane(dst + i, f32x4.add(v128.load64_zero(dst + i), v128.load64_zero(src + i)), 0);
    i += 8;
  }
  if (rem & 1) store<f32>(dst + i, load<f32>(dst + i) + load<f32>(src + i));
}

/**
 * col2im at stride 1. Taps go kw-major (for each kw, every kh): successive passes then add into the
 * same dx rows at the same column offset, where a load can take the value the store before it left
 * in the store buffer. In cols order (kh-major) successive passes overlap the last one's stores one
 * float off, and every such load waits for those stores to reach the cache (about twice as slow).
 */
function col2imStride1(dx: usize, cols: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, pad: i32, OH: i32, OW: i32): void {
  zeroFloats(dx, Cin * H * W);
  const rowBytes = <usize>OW << 2;
  const inRow = <usize>W << 2;
  const tapBytes = <usize>OH * rowBytes;
  for (let ci = 0; ci < Cin; ci++) {
    const plane = dx + <usize>ci * <usize>H * inRow;
    const cplane = cols + <usize>(ci * KH * KW) * tapBytes;
    for (let kw = 0; kw < KW; kw++) {
      const lo = validLo(1, pad, kw);
      const hi = max(lo, validHi(W, 1, pad, kw, OW));
      const n = hi - lo;
      if (n <= 0) continue;
      for (let kh = 0; kh < KH; kh++) {
        const ohLo = min(OH, max(0, pad - kh));
        const ohHi = max(ohLo, min(OH, H + pad - kh));
        let from = cplane + <usize>(kh * KW + kw) * tapBytes + <usize>ohLo * rowBytes + (<usize>lo << 2);
        let base = plane + (<usize>((ohLo - pad + kh) * W + lo - pad + kw) << 2);
        for (let oh = ohLo; oh < ohHi; oh++) { addRow(base, from, n); from += rowBytes; base += inRow; }
      }
    }
  }
}

/** dx = 0, then dx[ci, ih, iw] += cols[(ci,kh,kw), (oh,ow)] over every window position. */
function col2im(dx: usize, cols: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, stride: i32, pad: i32, OH: i32, OW: i32): void {
  if (stride == 1) {
    col2imStride1(dx, cols, Cin, H, W, KH, KW, pad, OH, OW);
    return;
  }
  zeroFloats(dx, Cin * H * W);
  let src = cols;
  for (let ci = 0; ci < Cin; ci++) {
    const plane = dx + <usize>ci * <usize>H * <usize>W * 4;
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const lo = validLo(stride, pad, kw);
        const hi = max(lo, validHi(W, stride, pad, kw, OW));
        for (let oh = 0; oh < OH; oh++) {
          const ih = oh * stride - pad + kh;
          if (ih >= 0 && ih < H) {
            const base = plane + (<usize>(ih * W + lo * stride - pad + kw) << 2);
            const from = src + (<usize>lo << 2);
            if (stride == 1) {
              copyStrided(base, from, hi - lo, 1, true);
            } else {
              // scatter-add: dx[base + i·stride] += from[i]
              const step = <usize>stride << 2;
              let d = base;
              for (let i = lo; i < hi; i++) {
                const s = from + (<usize>(i - lo) << 2);
                store<f32>(d, load<f32>(d) + load<f32>(s));
                d += step;
              }
            }
          }
          src += <usize>OW << 2;
        }
      }
    }
  }
}

// ---- the convolution GEMMs --------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function up2(n: i32): i32 { return (n + 1) & ~1; }

/**
 * Pre-broadcast pack of A (element (i, k) at A + i·aRow + k·aK bytes), M × K: blocks of ≤ 6 rows,
 * each [k][row][4 equal lanes]; rows from M up to ⌈M⌉₂ are zero.
 */
function packRows(dst: usize, A: usize, aRow: usize, aK: usize, M: i32, K: i32): void {
  const MP = up2(M);
  for (let i0 = 0; i0 < MP; i0 += 6) {
    const R = min(6, MP - i0);
    let d = dst + (<usize>(i0 * K) << 4);
    for (let k = 0; k < K; k++) {
      const src = A + <usize>k * aK;
      for (let r = 0; r < R; r++) {
        const i = i0 + r;
        v128.store(d, i < M ? v128.load32_splat(src + <usize>i * aRow) : f32x4.splat(0));
        d += 16;
      }
    }
  }
}


/**
 * C[M × N] = A·B (overwrites) with A packed by packRows (K inner) and B[K × N] read in place, rows
 * N floats apart. Column blocks of 8; the last one starts at N − 8 and rewrites columns the one
 * before wrote, with the same values. N < 8: B is first copied, zero-padded, to `narrow`. An odd
 * M's last block runs into `tile` and only its real rows are copied out.
 */
function rowsGemm(C: usize, ap: usize, B: usize, M: i32, K: i32, N: i32, tile: usize, narrow: usize): void {
  if (M <= 0 || N <= 0) return;
  const ldc = <usize>N << 2;
  let b = B;
  let ldb = ldc;
  if (N < 8) {
    for (let k = 0; k < K; k++) {
      const d = narrow + (<usize>k << 5);
      v128.store(d, f32x4.splat(0)); v128.store(d, f32x4.splat(0), 16);
      memory.copy(d, B + <usize>k * ldc, <usize>N << 2);
    }
    b = narrow;
    ldb = 32;
  }
  const MP = up2(M);
  for (let i0 = 0; i0 < MP; i0 += 6) {
    const R = min(6, MP - i0);
    const rows = min(R, M - i0);
    const a = ap + (<usize>(i0 * K) << 4);
    for (let j0 = 0; j0 < N; j0 += 8) {
      const j = N >= 8 ? min(j0, N - 8) : 0;
      const bj = b + (<usize>j << 2);
      const direct = rows == R && N >= 8;
      const dst = direct ? C + <usize>i0 * ldc + (<usize>j << 2) : tile;
      const ld: usize = direct ? ldc : 32;
      if (R == 6) tile6(dst, ld, a, bj, ldb, K);
      else if (R == 4) tile4(dst, ld, a, bj, ldb, K);
      else tile2(dst, ld, a, bj, ldb, K);
      if (!direct) {
        const cols = min(8, N - j);
        for (let r = 0; r < rows; r++) memory.copy(C + <usize>(i0 + r) * ldc + (<usize>j << 2), tile + (<usize>r << 5), <usize>cols << 2);
      }
    }
  }
}

function dot2x6(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 6); }
function dot2x4(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 4); }
function dot2x2(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 2); }
function dot2x1(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 1); }
function dot1x6(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 6); }
function dot1x4(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 4); }
function dot1x2(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 2); }
function dot1x1(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 1); }

/**
 * c[r][q] += Σ_t a[r][t]·b[q][t] for R ∈ {1, 2} rows of a and Q ∈ {1, 2, 4, 6} rows of b, n floats
 * each; rows ld bytes apart in a and b, ldc bytes in c. Four lanes of partial sums per pair, added
 * across lanes at the end, then the n mod 4 last terms.
 */
// @ts-ignore: decorator
@inline function dotKernel(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32, R: i32, Q: i32): void {
  const zero = f32x4.splat(0);
  let s00 = zero, s01 = zero, s02 = zero, s03 = zero, s04 = zero, s05 = zero;
  let s10 = zero, s11 = zero, s12 = zero, s13 = zero, s14 = zero, s15 = zero;
  const a1 = a + ld;
  const b1 = b + ld, b2 = b1 + ld, b3 = b2 + ld, b4 = b3 + ld, b5 = b4 + ld;
  const end4 = <usize>(n & ~3) << 2;
  for (let t: usize = 0; t < end4; t += 16) {
    const x0 = v128.load(a + t);
    const x1 = R > 1 ? v128.load(a1 + t) : zero;
    let y = v128.load(b + t); s00 = madd(x0, y, s00); if (R > 1) s10 = madd(x1, y, s10);
    if (Q > 1) { y = v128.load(b1 + t); s01 = madd(x0, y, s01); if (R > 1) s11 = madd(x1, y, s11); }
    if (Q > 2) {
      y = v128.load(b2 + t); s02 = madd(x0, y, s02); if (R > 1) s12 = madd(x1, y, s12);
      y = v128.load(b3 + t); s03 = madd(x0, y, s03); if (R > 1) s13 = madd(x1, y, s13);
    }
    if (Q > 4) {
      y = v128.load(b4 + t); s04 = madd(x0, y, s04); if (R > 1) s14 = madd(x1, y, s14);
      y = v128.load(b5 + t); s05 = madd(x0, y, s05); if (R > 1) s15 = madd(x1, y, s15);
    }
  }
  const tail = <usize>n << 2;
  addDot(c, 0, s00, a, b, end4, tail);
  if (Q > 1) addDot(c, 4, s01, a, b1, end4, tail);
  if (Q > 2) { addDot(c, 8, s02, a, b2, end4, tail); addDot(c, 12, s03, a, b3, end4, tail); }
  if (Q > 4) { addDot(c, 16, s04, a, b4, end4, tail); addDot(c, 20, s05, a, b5, end4, tail); }
  if (R > 1) {
    const c1 = c + ldc;
    addDot(c1, 0, s10, a1, b, end4, tail);
    if (Q > 1) addDot(c1, 4, s11, a1, b1, end4, tail);
    if (Q > 2) { addDot(c1, 8, s12, a1, b2, end4, tail); addDot(c1, 12, s13, a1, b3, end4, tail); }
    if (Q > 4) { addDot(c1, 16, s14, a1, b4, end4, tail); addDot(c1, 20, s15, a1, b5, end4, tail); }
  }
}

/** c[offset] += the lanes of s + Σ a[t]·b[t] over the byte range [from, to). */
// @ts-ignore: decorator
@inline function addDot(c: usize, offset: usize, s: v128, a: usize, b: usize, from: usize, to: usize): void {
  let sum = (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
  for (let t = from; t < to; t += 4) sum += load<f32>(a + t) * load<f32>(b + t);
  const p = c + offset;
  store<f32>(p, load<f32>(p) + sum);
}

/** C[M × N] += A[M × K]·B[N × K]ᵀ, rows of A and B K floats apart (contiguous), C rows N floats apart. */
function rowsDot(C: usize, A: usize, B: usize, M: i32, N: i32, K: i32): void {
  const ld = <usize>K << 2;
  const ldc = <usize>N << 2;
  for (let i0 = 0; i0 < M; i0 += 2) {
    const two = M - i0 >= 2;
    const a = A + <usize>i0 * ld;
    const c = C + <usize>i0 * ldc;
    let j0 = 0;
    while (j0 < N) {
      const left = N - j0;
      const Q = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const cj = c + (<usize>j0 << 2);
      const b = B + <usize>j0 * ld;
      if (two) {
        if (Q == 6) dot2x6(cj, ldc, a, b, ld, K);
        else if (Q == 4) dot2x4(cj, ldc, a, b, ld, K);
        else if (Q == 2) dot2x2(cj, ldc, a, b, ld, K);
        else dot2x1(cj, ldc, a, b, ld, K);
      } else {
        if (Q == 6) dot1x6(cj, ldc, a, b, ld, K);
        else if (Q == 4) dot1x4(cj, ldc, a, b, ld, K);
        else if (Q == 2) dot1x2(cj, ldc, a, b, ld, K);
        else dot1x1(cj, ldc, a, b, ld, K);
      }
      j0 += Q;
    }
  }
}

// ---- the layer's kernels -----------------------------------------------------------------------------

/** Byte offsets of the parts of `cols` after the im2col matrix (see the file comment). */
// @ts-ignore: decorator
@inline function weightsAt(cols: usize, CKK: i32, OHW: i32): usize { return cols + (<usize>(CKK * OHW) << 2); }
// @ts-ignore: decorator
@inline function tileAt(cols: usize, CKK: i32, OHW: i32, Cout: i32): usize {
  return weightsAt(cols, CKK, OHW) + (<usize>(4 * max(up2(Cout) * CKK, up2(CKK) * Cout)) << 2);
}

/** y[N,Cout,OH,OW] = conv(x[N,Cin,H,W], w) (no bias). cols: convColsFloats floats. */
export function conv2d_forward(
  y: usize, x: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, KH: i32, KW: i32,
  stride: i32, pad: i32, cols: usize, pack: usize,
): void {
  const OH = convOut(H, KH, stride, pad);
  const OW = convOut(W, KW, stride, pad);
  const CKK = Cin * KH * KW;
  const OHW = OH * OW;
  if (OHW <= 0 || Cout <= 0) return;
  const pointwise = KH == 1 && KW == 1 && stride == 1 && pad == 0;
  const xBytes = <usize>Cin * <usize>H * <usize>W * 4;
  const yBytes = <usize>Cout * <usize>OHW * 4;
  const ap = weightsAt(cols, CKK, OHW);
  const tile = tileAt(cols, CKK, OHW, Cout);
  packRows(ap, w, <usize>CKK << 2, 4, Cout, CKK);
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    if (!pointwise) im2col(cols, xn, Cin, H, W, KH, KW, stride, pad, OH, OW);
    rowsGemm(y + <usize>n * yBytes, ap, pointwise ? xn : cols, Cout, CKK, OHW, tile, tile + 192);
  }
}

/**
 * dw (+)= ∂/∂w, then (per sample) dx = ∂/∂x (dx may be 0 to skip, e.g. the first layer): the weight
 * gradient reads the unfolded input before the input gradient's GEMM overwrites it.
 */
export function conv2d_backward(
  dx: usize, dw: usize, dy: usize, x: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32,
  KH: i32, KW: i32, stride: i32, pad: i32, accumulate: i32, cols: usize, pack: usize,
): void {
  const OH = convOut(H, KH, stride, pad);
  const OW = convOut(W, KW, stride, pad);
  const CKK = Cin * KH * KW;
  const OHW = OH * OW;
  const pointwise = KH == 1 && KW == 1 && stride == 1 && pad == 0;
  const xBytes = <usize>Cin * <usize>H * <usize>W * 4;
  const yBytes = <usize>Cout * <usize>OHW * 4;
  if (!accumulate) zeroFloats(dw, Cout * CKK);
  if (OHW <= 0) {
    if (dx != 0) zeroFloats(dx, N * Cin * H * W);
    return;
  }
  const ap = weightsAt(cols, CKK, OHW);
  const tile = tileAt(cols, CKK, OHW, Cout);
  // wᵀ: element (i = ckk, k = cout) at w + cout·CKK·4 + ckk·4
  if (dx != 0) packRows(ap, w, 4, <usize>CKK << 2, CKK, Cout);
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    const dyn = dy + <usize>n * yBytes;
    if (!pointwise) im2col(cols, xn, Cin, H, W, KH, KW, stride, pad, OH, OW);
    rowsDot(dw, dyn, pointwise ? xn : cols, Cout, CKK, OHW);
    if (dx != 0) {
      const dxn = dx + <usize>n * xBytes;
      rowsGemm(pointwise ? dxn : cols, ap, dyn, CKK, Cout, OHW, tile, tile + 192);
      if (!pointwise) col2im(dxn, cols, Cin, H, W, KH, KW, stride, pad, OH, OW);
    }
  }
}

/**
 * dx = ∂/∂x alone: the input-gradient half of conv2d_backward (zero-bubble pipelines run it as I and
 * leave the weight gradient, conv2d_backward with dx = 0, for a later W). Same arithmetic, in the
 * same order, as conv2d_backward's dx, so the split equals the fused backward bitwise.
 */
export function conv2d_backward_input(
  dx: usize, dy: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32,
  KH: i32, KW: i32, stride: i32, pad: i32, cols: usize, pack: usize,
): void {
  const OH = convOut(H, KH, stride, pad);
  const OW = convOut(W, KW, stride, pad);
  const CKK = Cin * KH * KW;
  const OHW = OH * OW;
  const pointwise = KH == 1 && KW == 1 && stride == 1 && pad == 0;
  const xBytes = <usize>Cin * <usize>H * <usize>W * 4;
  const yBytes = <usize>Cout * <usize>OHW * 4;
  if (OHW <= 0) {
    zeroFloats(dx, N * Cin * H * W);
    return;
  }
  const ap = weightsAt(cols, CKK, OHW);
  const tile = tileAt(cols, CKK, OHW, Cout);
  packRows(ap, w, 4, <usize>CKK << 2, CKK, Cout);
  for (let n = 0; n < N; n++) {
    const dxn = dx + <usize>n * xBytes;
    rowsGemm(pointwise ? dxn : cols, ap, dy + <usize>n * yBytes, CKK, Cout, OHW, tile, tile + 192);
    if (!pointwise) col2im(dxn, cols, Cin, H, W, KH, KW, stride, pad, OH, OW);
  }
}
