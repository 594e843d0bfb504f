// conv2d (NCHW, weights [Cout, Cin, KH, KW]) as im2col + GEMM, looping over the batch in wasm.
//
// Per sample, cols is the [Cin·KH·KW × OH·OW] matrix whose row (ci, kh, kw) holds, for every output
// position, the input pixel that weight multiplies (0 in the padding). Then
//   forward   y_n[Cout × OHW]  = w[Cout × CKK] · cols                 gemm_nn
//   weights   dw[Cout × CKK] (+)= dy_n[Cout × OHW] · colsᵀ            gemm_nt
//   input     dcols[CKK × OHW] = wᵀ · dy_n, then col2im scatters it  gemm_tn
// A 1×1 stride-1 unpadded conv needs no im2col: x_n already is cols (and dx_n is dcols).
//
// `pack` must hold the max of GEMM_PACK_FLOATS over the three GEMMs: (Cout, CKK, OHW),
// (Cout, OHW, CKK) and (CKK, Cout, OHW), as (M, K, N).

import { gemm_nn, gemm_nt, gemm_tn } from "./gemm";

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

/** cols[(ci,kh,kw), (oh,ow)] = x[ci, oh·s − pad + kh, ow·s − pad + kw] or 0 outside the image. */
function im2col(cols: usize, x: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, stride: i32, pad: i32, OH: i32, OW: i32): void {
  let dst = cols;
  for (let ci = 0; ci < Cin; ci++) {
    const plane = x + <usize>ci * <usize>H * <usize>W * 4;
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const lo = validLo(stride, pad, kw);
        const hi = max(lo, validHi(W, stride, pad, kw, OW));
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

/** dx = 0, then dx[ci, ih, iw] += cols[(ci,kh,kw), (oh,ow)] over every window position. */
function col2im(dx: usize, cols: usize, Cin: i32, H: i32, W: i32, KH: i32, KW: i32, stride: i32, pad: i32, OH: i32, OW: i32): void {
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

/** y[N,Cout,OH,OW] = conv(x[N,Cin,H,W], w) (no bias). cols: Cin·KH·KW·OH·OW floats. */
export function conv2d_forward(
  y: usize, x: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, KH: i32, KW: i32,
  stride: i32, pad: i32, cols: usize, pack: usize,
): void {
  const OH = convOut(H, KH, stride, pad);
  const OW = convOut(W, KW, stride, pad);
  const CKK = Cin * KH * KW;
  const OHW = OH * OW;
  const pointwise = KH == 1 && KW == 1 && stride == 1 && pad == 0;
  const xBytes = <usize>Cin * <usize>H * <usize>W * 4;
  const yBytes = <usize>Cout * <usize>OHW * 4;
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    if (!pointwise) im2col(cols, xn, Cin, H, W, KH, KW, stride, pad, OH, OW);
    gemm_nn(y + <usize>n * yBytes, w, pointwise ? xn : cols, Cout, CKK, OHW, 0, pack);
  }
}

/** dw (+)= ∂/∂w, dx = ∂/∂x (dx may be 0 to skip, e.g. the first layer). */
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
  if (N <= 0 && !accumulate) zeroFloats(dw, Cout * CKK);
  for (let n = 0; n < N; n++) {
    const xn = x + <usize>n * xBytes;
    const dyn = dy + <usize>n * yBytes;
    if (!pointwise) im2col(cols, xn, Cin, H, W, KH, KW, stride, pad, OH, OW);
    gemm_nt(dw, dyn, pointwise ? xn : cols, Cout, OHW, CKK, accumulate != 0 || n > 0 ? 1 : 0, pack);
    if (dx != 0) {
      const dxn = dx + <usize>n * xBytes;
      if (pointwise) {
        gemm_tn(dxn, w, dyn, CKK, Cout, OHW, 0, pack);
      } else {
        gemm_tn(cols, w, dyn, CKK, Cout, OHW, 0, pack);
        col2im(dxn, cols, Cin, H, W, KH, KW, stride, pad, OH, OW);
      }
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
  for (let n = 0; n < N; n++) {
    const dyn = dy + <usize>n * yBytes;
    const dxn = dx + <usize>n * xBytes;
    if (pointwise) {
      gemm_tn(dxn, w, dyn, CKK, Cout, OHW, 0, pack);
    } else {
      gemm_tn(cols, w, dyn, CKK, Cout, OHW, 0, pack);
      col2im(dxn, cols, Cin, H, W, KH, KW, stride, pad, OH, OW);
    }
  }
}
