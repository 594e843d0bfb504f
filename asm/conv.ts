// conv2d (NCHW, weights [Cout, Cin, KH, KW]) as im2col + GEMM, looping over the batch in wasm.
//
// Per sample, cols is the [Cin·KH·KW × OH·OW] matrix whose row (ci, kh, kw) holds, for every output
// position, the input pixel that weight multiplies (0 in the padding). Then
//   forward   y_n[Cout × OHW]  = w[Cout × CKK] · cols                 rowsGemm
//   weights   dw[Cout × CKK] (+)= dy_n[Cout × OHW] · colsᵀ            rowsDot
//   input     dcols[CKK × OHW] = wᵀ · dy_n, then col2im scatters it  rowsGemm
// A 1×1 stride-1 unpadded conv needs no im2col: x_n already is cols (and dx_n is dcols).
// Nor does a stride-1 conv whose output rows are whole vectors (OW a multiple of 4, at least 8: the
// first layers of LeNet and of a CIFAR ResNet): row k of cols at output row oh is the zero-padded
// input shifted by the tap's offset, so the forward and the weight gradient read it there (rowsGemmAt,
// rowsDotAt), the same products in the same order, without writing Cin·KH·KW copies of every sample.
// The padded sample and the offsets table then sit where the im2col matrix would.
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

import { packRows, rowsDot, rowsDotAt, rowsGemm, rowsGemmAt } from "./conv-gemm";
import { up2 } from "./tile";

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

/**
 * Whether the direct path (see the file comment) applies: stride 1, output rows whole vectors, and
 * the padded sample plus the offsets table fit where the im2col matrix would go.
 */
// @ts-ignore: decorator
@inline function directOk(Cin: i32, H: i32, W: i32, KH: i32, KW: i32, stride: i32, pad: i32, OH: i32, OW: i32): bool {
  return stride == 1 && OW >= 8 && (OW & 3) == 0 && OH >= 1 &&
    Cin * (H + 2 * pad) * (W + 2 * pad) + Cin * KH * KW <= Cin * KH * KW * OH * OW;
}

/**
 * Writes the zero-padded sample (Cin planes of (H + 2·pad) × (W + 2·pad)) at xp unless pad is 0 (the
 * sample is used where it is), the byte offset of every tap (ci, kh, kw) in it at offs, and returns
 * where the padded sample is.
 */
function prepareDirect(xp: usize, offs: usize, xn: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, pad: i32): usize {
  const Hp = H + 2 * pad, Wp = W + 2 * pad;
  let o = offs;
  for (let ci = 0; ci < Cin; ci++) {
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        store<i32>(o, ((ci * Hp + kh) * Wp + kw) << 2);
        o += 4;
      }
    }
  }
  if (pad == 0) return xn;
  zeroFloats(xp, Cin * Hp * Wp);
  const inRow = <usize>W << 2;
  for (let ci = 0; ci < Cin; ci++) {
    let d = xp + (<usize>((ci * Hp + pad) * Wp + pad) << 2);
    let src = xn + <usize>ci * <usize>H * inRow;
    for (let h = 0; h < H; h++) {
      memory.copy(d, src, inRow);
      d += <usize>Wp << 2;
      src += inRow;
    }
  }
  return xp;
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
  const direct = !pointwise && directOk(Cin, H, W, KH, KW, stride, pad, OH, OW);
  const offs = cols + (<usize>(Cin * (H + 2 * pad) * (W + 2 * pad)) << 2);
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    if (direct) {
      const xp = prepareDirect(cols, offs, xn, Cin, H, W, KH, KW, pad);
      rowsGemmAt(y + <usize>n * yBytes, ap, xp, offs, Cout, CKK, OH, OW, W + 2 * pad, tile);
      continue;
    }
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
  const direct = !pointwise && directOk(Cin, H, W, KH, KW, stride, pad, OH, OW);
  const offs = cols + (<usize>(Cin * (H + 2 * pad) * (W + 2 * pad)) << 2);
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    const dyn = dy + <usize>n * yBytes;
    if (direct) {
      // the weight gradient from the padded sample; the input gradient's GEMM then overwrites it
      const xp = prepareDirect(cols, offs, xn, Cin, H, W, KH, KW, pad);
      rowsDotAt(dw, dyn, xp, offs, Cout, CKK, OH, OW, W + 2 * pad);
    } else {
      if (!pointwise) im2col(cols, xn, Cin, H, W, KH, KW, stride, pad, OH, OW);
      rowsDot(dw, dyn, pointwise ? xn : cols, Cout, CKK, OHW);
    }
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
