// Direct 3×3 convolution, stride 1, padding 1, NCHW: the shape of almost every convolution in a
// residual network. im2col + GEMM (conv.ts) writes a 9× copy of the input and packs it again for
// the GEMM; here each output tile reads the (zero-padded) input in place.
//
// Register tile: 4 output channels × 8 output columns (two f32x4) = 8 accumulators. Per input
// channel and tap: two unaligned input loads, four broadcast weight loads (v128.load32_splat, one
// instruction each), eight multiply-adds.
//
// The input gradient of this convolution is the same convolution of dy with the weights transposed
// over channels and flipped over taps (a "full" correlation, which padding 1 of a 3×3 kernel makes
// another padding-1 3×3 convolution), so both go through one tile loop that reads the weights
// through strides: weight(o, i, tap) = w[o·strideOut + i·strideIn + (flip ? 8 − tap : tap)].
//
// `pad` scratch: max(Cin, Cout) · (H + 2) · (⌈W/8⌉·8 + 2) floats (conv3x3PadFloats in the ABI).

import { madd } from "./simd";

/** Padded row length: every 8-wide tile's loads (up to 9 floats past its start + 1) stay inside it. */
// @ts-ignore: decorator
@inline function paddedWidth(W: i32): i32 {
  return ((W + 7) & ~7) + 2;
}

/** pad[c, 1 + h, 1 + w] = x[c, h, w], zeros around (and in the right-hand slack). */
function padPlanes(pad: usize, x: usize, C: i32, H: i32, W: i32): void {
  const Wp = paddedWidth(W);
  const planeFloats = (H + 2) * Wp;
  memory.fill(pad, 0, <usize>(C * planeFloats) << 2);
  for (let c = 0; c < C; c++) {
    const src = x + (<usize>(c * H * W) << 2);
    const dst = pad + (<usize>(c * planeFloats + Wp + 1) << 2);
    for (let h = 0; h < H; h++) {
      memory.copy(dst + (<usize>(h * Wp) << 2), src + (<usize>(h * W) << 2), <usize>W << 2);
    }
  }
}

/** Stores lanes [0, n) of v at p (n < 4: a tile's right edge). */
// @ts-ignore: decorator
@inline function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/**
 * y[o, h, w] = Σ_i Σ_tap weight(o, i, tap) · pad[i, h + kh, w + kw] for one sample: Co output
 * channels, Ci input channels, H×W maps. Weight strides in floats.
 */
/**
 * y[o, h, w] = Σ_i Σ_tap weight(o, i, tap) · pad[i, h + kh, w + kw] for one sample: Co output
 * channels, Ci input channels, H×W maps; weight strides in floats. The three
 * taps of a row are written out so their offsets are immediates (Binaryen does not unroll the loops).
 */
function tilesForward(y: usize, pad: usize, w: usize, Co: i32, Ci: i32, H: i32, W: i32, strideOut: i32, strideIn: i32): void {
  const Wp = paddedWidth(W);
  const planeBytes = <usize>((H + 2) * Wp) << 2;
  const rowBytes = <usize>Wp << 2;
  const outPlane = <usize>(H * W) << 2;
  const inStep = <usize>strideIn << 2;
  for (let o0 = 0; o0 < Co; o0 += 4) {
    // Channels past Co repeat the last one (computed, never stored).
    const w0 = w + (<usize>(o0 * strideOut) << 2);
    const w1 = w + (<usize>(min(o0 + 1, Co - 1) * strideOut) << 2);
    const w2 = w + (<usize>(min(o0 + 2, Co - 1) * strideOut) << 2);
    const w3 = w + (<usize>(min(o0 + 3, Co - 1) * strideOut) << 2);
    const valid = min(4, Co - o0);
    for (let h = 0; h < H; h++) {
      for (let c0 = 0; c0 < W; c0 += 8) {
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
        let c0v = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
        let lo: v128, hi: v128, s: v128;
        let src = pad + <usize>h * rowBytes + (<usize>c0 << 2);
        let off: usize = 0;
        for (let i = 0; i < Ci; i++) {
          for (let kh = 0; kh < 3; kh++) {
            const row = src + <usize>kh * rowBytes;
            const t = off + (<usize>(kh * 3) << 2);
            lo = v128.load(row, 0); hi = v128.load(row, 16);
            s = v128.load32_splat(w0 + t, 0); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 0); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 0); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 0); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
            lo = v128.load(row, 4); hi = v128.load(row, 20);
            s = v128.load32_splat(w0 + t, 4); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 4); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 4); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 4); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
            lo = v128.load(row, 8); hi = v128.load(row, 24);
            s = v128.load32_splat(w0 + t, 8); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 8); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 8); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 8); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
          }
          src += planeBytes;
          off += inStep;
        }
        const n = W - c0; // columns left in this row (≥ 1)
        const out = y + <usize>o0 * outPlane + (<usize>(h * W + c0) << 2);
        storeLanes(out, a0, n); storeLanes(out + 16, a1, n - 4);
        if (valid > 1) { storeLanes(out + outPlane, b0, n); storeLanes(out + outPlane + 16, b1, n - 4); }
        if (valid > 2) { storeLanes(out + 2 * outPlane, c0v, n); storeLanes(out + 2 * outPlane + 16, c1, n - 4); }
        if (valid > 3) { storeLanes(out + 3 * outPlane, d0, n); storeLanes(out + 3 * outPlane + 16, d1, n - 4); }
      }
    }
  }
}

/**
 * y[o, h, w] = Σ_i Σ_tap weight(o, i, tap) · pad[i, h + kh, w + kw] for one sample: Co output
 * channels, Ci input channels, H×W maps; weight strides in floats, taps flipped. The three
 * taps of a row are written out so their offsets are immediates (Binaryen does not unroll the loops).
 */
function tilesFlipped(y: usize, pad: usize, w: usize, Co: i32, Ci: i32, H: i32, W: i32, strideOut: i32, strideIn: i32): void {
  const Wp = paddedWidth(W);
  const planeBytes = <usize>((H + 2) * Wp) << 2;
  const rowBytes = <usize>Wp << 2;
  const outPlane = <usize>(H * W) << 2;
  const inStep = <usize>strideIn << 2;
  for (let o0 = 0; o0 < Co; o0 += 4) {
    // Channels past Co repeat the last one (computed, never stored).
    const w0 = w + (<usize>(o0 * strideOut) << 2);
    const w1 = w + (<usize>(min(o0 + 1, Co - 1) * strideOut) << 2);
    const w2 = w + (<usize>(min(o0 + 2, Co - 1) * strideOut) << 2);
    const w3 = w + (<usize>(min(o0 + 3, Co - 1) * strideOut) << 2);
    const valid = min(4, Co - o0);
    for (let h = 0; h < H; h++) {
      for (let c0 = 0; c0 < W; c0 += 8) {
        let a0 = f32x4.splat(0), a1 = f32x4.splat(0), b0 = f32x4.splat(0), b1 = f32x4.splat(0);
        let c0v = f32x4.splat(0), c1 = f32x4.splat(0), d0 = f32x4.splat(0), d1 = f32x4.splat(0);
        let lo: v128, hi: v128, s: v128;
        let src = pad + <usize>h * rowBytes + (<usize>c0 << 2);
        let off: usize = 0;
        for (let i = 0; i < Ci; i++) {
          for (let kh = 0; kh < 3; kh++) {
            const row = src + <usize>kh * rowBytes;
            const t = off + (<usize>(6 - kh * 3) << 2); // taps 8 − (3·kh + kw) = (6 − 3·kh) + (2 − kw)
            lo = v128.load(row, 0); hi = v128.load(row, 16);
            s = v128.load32_splat(w0 + t, 8); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 8); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 8); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 8); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
            lo = v128.load(row, 4); hi = v128.load(row, 20);
            s = v128.load32_splat(w0 + t, 4); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 4); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 4); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 4); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
            lo = v128.load(row, 8); hi = v128.load(row, 24);
            s = v128.load32_splat(w0 + t, 0); a0 = madd(s, lo, a0); a1 = madd(s, hi, a1);
            s = v128.load32_splat(w1 + t, 0); b0 = madd(s, lo, b0); b1 = madd(s, hi, b1);
            s = v128.load32_splat(w2 + t, 0); c0v = madd(s, lo, c0v); c1 = madd(s, hi, c1);
            s = v128.load32_splat(w3 + t, 0); d0 = madd(s, lo, d0); d1 = madd(s, hi, d1);
          }
          src += planeBytes;
          off += inStep;
        }
        const n = W - c0; // columns left in this row (≥ 1)
        const out = y + <usize>o0 * outPlane + (<usize>(h * W + c0) << 2);
        storeLanes(out, a0, n); storeLanes(out + 16, a1, n - 4);
        if (valid > 1) { storeLanes(out + outPlane, b0, n); storeLanes(out + outPlane + 16, b1, n - 4); }
        if (valid > 2) { storeLanes(out + 2 * outPlane, c0v, n); storeLanes(out + 2 * outPlane + 16, c1, n - 4); }
        if (valid > 3) { storeLanes(out + 3 * outPlane, d0, n); storeLanes(out + 3 * outPlane + 16, d1, n - 4); }
      }
    }
  }
}

/** y[N, Cout, H, W] = conv3×3(x[N, Cin, H, W], w[Cout, Cin, 3, 3]), stride 1, padding 1, no bias. */
export function conv3x3_forward(y: usize, x: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, pad: usize): void {
  const xBytes = <usize>(Cin * H * W) << 2;
  const yBytes = <usize>(Cout * H * W) << 2;
  for (let n = 0; n < N; n++) {
    padPlanes(pad, x + <usize>n * xBytes, Cin, H, W);
    tilesForward(y + <usize>n * yBytes, pad, w, Cout, Cin, H, W, Cin * 9, 9);
  }
}

/** dx[N, Cin, H, W] = ∂/∂x of conv3x3_forward given dy[N, Cout, H, W] (overwrites dx). */
export function conv3x3_backward_input(dx: usize, dy: usize, w: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, pad: usize): void {
  const xBytes = <usize>(Cin * H * W) << 2;
  const yBytes = <usize>(Cout * H * W) << 2;
  for (let n = 0; n < N; n++) {
    padPlanes(pad, dy + <usize>n * yBytes, Cout, H, W);
    tilesFlipped(dx + <usize>n * xBytes, pad, w, Cin, Cout, H, W, 9, Cin * 9);
  }
}
