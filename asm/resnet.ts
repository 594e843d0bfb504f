// The kernels a residual CNN needs besides convolution: batch normalization (Ioffe & Szegedy 2015)
// forward and backward over NCHW maps, the option-A shortcut of He et al. 2016 (strided identity,
// zero-padded channels; stride 1 and equal channels make it a plain residual add), and global
// average pooling.
//
// Batch norm normalizes each channel over the batch and the spatial positions (M = N·HW values):
//   training   x̂ = (x − μ_B)/√(σ²_B + ε), y = act(γ·x̂ + β); stats = [μ_B | 1/√(σ²_B + ε)]
//              and, when momentum > 0, running ← (1 − momentum)·running + momentum·batch
//              (the running variance takes the unbiased σ²_B·M/(M − 1), as PyTorch does)
//   evaluation the same with the running mean and variance in place of μ_B, σ²_B
// act is identity or relu (fused: the stem and the first half of each block end in a ReLU).
// Channel sums accumulate in four f32 lanes per plane and in f64 across planes, so a batch of a few
// hundred 32×32 maps loses no more than a plain f32 sum over one plane.

import { hsum } from "./simd";

const RELU: i32 = 1;

/** Σ over one plane of n floats. */
// @ts-ignore: decorator
@inline function planeSum(p: usize, n: i32): f32 {
  const end4 = p + (<usize>(n & ~3) << 2);
  const end = p + (<usize>n << 2);
  let acc = f32x4.splat(0);
  while (p < end4) { acc = f32x4.add(acc, v128.load(p)); p += 16; }
  let s = hsum(acc);
  while (p < end) { s += load<f32>(p); p += 4; }
  return s;
}

/** Σ (x − mean)² over one plane. */
// @ts-ignore: decorator
@inline function planeSquares(p: usize, n: i32, mean: f32): f32 {
  const end4 = p + (<usize>(n & ~3) << 2);
  const end = p + (<usize>n << 2);
  const m = f32x4.splat(mean);
  let acc = f32x4.splat(0);
  while (p < end4) { const d = f32x4.sub(v128.load(p), m); acc = f32x4.add(acc, f32x4.mul(d, d)); p += 16; }
  let s = hsum(acc);
  while (p < end) { const d = load<f32>(p) - mean; s += d * d; p += 4; }
  return s;
}

/**
 * y[n,c,:] = act(a·x[n,c,:] + b): the normalization folded into one scale and shift per channel.
 * Tails go through the vector path on a splatted scalar so every element gets the same rounding.
 */
// @ts-ignore: decorator
@inline function scaleShiftPlane(y: usize, x: usize, n: i32, a: f32, b: f32, relu: bool): void {
  const end4 = y + (<usize>(n & ~3) << 2);
  const end = y + (<usize>n << 2);
  const av = f32x4.splat(a);
  const bv = f32x4.splat(b);
  while (y < end4) {
    let v = f32x4.add(f32x4.mul(av, v128.load(x)), bv);
    if (relu) v = f32x4.pmax(f32x4.splat(0), v);
    v128.store(y, v);
    y += 16; x += 16;
  }
  while (y < end) {
    let v = f32x4.add(f32x4.mul(av, f32x4.splat(load<f32>(x))), bv);
    if (relu) v = f32x4.pmax(f32x4.splat(0), v);
    store<f32>(y, f32x4.extract_lane(v, 0));
    y += 4; x += 4;
  }
}

/**
 * Batch norm forward over x[N, C, HW]. training = 1: batch statistics, written to stats[0..C) (mean)
 * and stats[C..2C) (1/√(var + ε)), and folded into rmean/rvar when momentum > 0. training = 0: the
 * running statistics normalize (stats gets them too). y may alias x.
 */
export function batchnorm_forward(
  y: usize, stats: usize, x: usize, gamma: usize, beta: usize, rmean: usize, rvar: usize,
  N: i32, C: i32, HW: i32, eps: f32, momentum: f32, training: i32, act: i32,
): void {
  const planeBytes = <usize>HW << 2;
  const strideN = <usize>C * planeBytes;
  const M = <f64>N * <f64>HW;
  for (let c = 0; c < C; c++) {
    const co = <usize>c << 2;
    let mean: f32, invstd: f32;
    if (training != 0) {
      let s: f64 = 0;
      for (let n = 0; n < N; n++) s += <f64>planeSum(x + <usize>n * strideN + <usize>c * planeBytes, HW);
      mean = <f32>(s / M);
      let q: f64 = 0;
      for (let n = 0; n < N; n++) q += <f64>planeSquares(x + <usize>n * strideN + <usize>c * planeBytes, HW, mean);
      const variance = q / M;
      invstd = <f32>(1.0 / Math.sqrt(variance + <f64>eps));
      if (momentum > 0) {
        const unbiased = M > 1 ? variance * M / (M - 1) : variance;
        store<f32>(rmean + co, (1 - momentum) * load<f32>(rmean + co) + momentum * mean);
        store<f32>(rvar + co, (1 - momentum) * load<f32>(rvar + co) + momentum * <f32>unbiased);
      }
    } else {
      mean = load<f32>(rmean + co);
      invstd = <f32>(1.0 / Math.sqrt(<f64>load<f32>(rvar + co) + <f64>eps));
    }
    store<f32>(stats + co, mean);
    store<f32>(stats + (<usize>C << 2) + co, invstd);
    const a = load<f32>(gamma + co) * invstd;
    const b = load<f32>(beta + co) - a * mean;
    for (let n = 0; n < N; n++) {
      const off = <usize>n * strideN + <usize>c * planeBytes;
      if (act == RELU) scaleShiftPlane(y + off, x + off, HW, a, b, true);
      else scaleShiftPlane(y + off, x + off, HW, a, b, false);
    }
  }
}

/**
 * Batch norm backward in training mode (the statistics depend on x):
 *   dz = dy ⊙ act'(y)  (written over dy),  dγ (+)= Σ dz·x̂,  dβ (+)= Σ dz,
 *   dx = γ·invstd/M · (M·dz − Σ dz − x̂·Σ dz·x̂)   (skipped when dx = 0).
 * x̂ is recomputed from x and the saved stats, so forward keeps only 2C floats. dx must not alias dy.
 */
export function batchnorm_backward(
  dx: usize, dgamma: usize, dbeta: usize, dy: usize, x: usize, y: usize, stats: usize, gamma: usize,
  N: i32, C: i32, HW: i32, act: i32, accumulate: i32,
): void {
  const planeBytes = <usize>HW << 2;
  const strideN = <usize>C * planeBytes;
  const M: f32 = <f32>N * <f32>HW;
  const n4 = HW & ~3;
  for (let c = 0; c < C; c++) {
    const co = <usize>c << 2;
    const mean = load<f32>(stats + co);
    const invstd = load<f32>(stats + (<usize>C << 2) + co);
    const mv = f32x4.splat(mean);
    const iv = f32x4.splat(invstd);
    let sumDz: f64 = 0;
    let sumDzXhat: f64 = 0;
    for (let n = 0; n < N; n++) {
      const off = <usize>n * strideN + <usize>c * planeBytes;
      let pd = dy + off, px = x + off, py = y + off;
      let a1 = f32x4.splat(0), a2 = f32x4.splat(0);
      for (let i = 0; i < n4; i += 4) {
        let d = v128.load(pd);
        if (act == RELU) { d = v128.and(d, f32x4.gt(v128.load(py), f32x4.splat(0))); v128.store(pd, d); }
        const xh = f32x4.mul(f32x4.sub(v128.load(px), mv), iv);
        a1 = f32x4.add(a1, d);
        a2 = f32x4.add(a2, f32x4.mul(d, xh));
        pd += 16; px += 16; py += 16;
      }
      let s1 = hsum(a1), s2 = hsum(a2);
      for (let i = n4; i < HW; i++) {
        let d = load<f32>(pd);
        if (act == RELU) { if (!(load<f32>(py) > 0)) d = 0; store<f32>(pd, d); }
        s1 += d;
        s2 += d * ((load<f32>(px) - mean) * invstd);
        pd += 4; px += 4; py += 4;
      }
      sumDz += <f64>s1;
      sumDzXhat += <f64>s2;
    }
    const sdz = <f32>sumDz;
    const sdx = <f32>sumDzXhat;
    if (accumulate != 0) {
      store<f32>(dgamma + co, load<f32>(dgamma + co) + sdx);
      store<f32>(dbeta + co, load<f32>(dbeta + co) + sdz);
    } else {
      store<f32>(dgamma + co, sdx);
      store<f32>(dbeta + co, sdz);
    }
    if (dx == 0) continue;
    // dx = k·(dz − mean(dz) − x̂·mean(dz·x̂)), k = γ·invstd
    const k = load<f32>(gamma + co) * invstd;
    const kv = f32x4.splat(k);
    const mdz = f32x4.splat(sdz / M);
    const mdx = f32x4.splat(sdx / M);
    for (let n = 0; n < N; n++) {
      const off = <usize>n * strideN + <usize>c * planeBytes;
      let pd = dy + off, px = x + off, po = dx + off;
      for (let i = 0; i < n4; i += 4) {
        const xh = f32x4.mul(f32x4.sub(v128.load(px), mv), iv);
        const v = f32x4.mul(kv, f32x4.sub(f32x4.sub(v128.load(pd), mdz), f32x4.mul(xh, mdx)));
        v128.store(po, v);
        pd += 16; px += 16; po += 16;
      }
      for (let i = n4; i < HW; i++) {
        const xh = f32x4.mul(f32x4.sub(f32x4.splat(load<f32>(px)), mv), iv);
        const v = f32x4.mul(kv, f32x4.sub(f32x4.sub(f32x4.splat(load<f32>(pd)), mdz), f32x4.mul(xh, mdx)));
        store<f32>(po, f32x4.extract_lane(v, 0));
        pd += 4; px += 4; po += 4;
      }
    }
  }
}

/** Output extent of a stride-s subsample: ⌈H/s⌉ (= a 3×3, pad 1, stride s convolution's). */
// @ts-ignore: decorator
@inline function subsampledExtent(H: i32, s: i32): i32 {
  return (H + s - 1) / s;
}

/**
 * Per plane pair, into[i] += from[i] where `strided` is the full H×W plane read or written at every
 * s-th row and column and `dense` the ⌈H/s⌉×⌈W/s⌉ one; toStrided says which side is added into. The
 * shortcut's forward adds the strided input into the output, its backward the output gradient back
 * into the strided input gradient.
 */
// @ts-ignore: decorator
@inline function addSubsampled(strided: usize, dense: usize, H: i32, W: i32, stride: i32, toStrided: bool): void {
  if (stride == 1) {
    const into = toStrided ? strided : dense;
    const from = toStrided ? dense : strided;
    const count = H * W;
    const n4 = count & ~3;
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      v128.store(into + o, f32x4.add(v128.load(into + o), v128.load(from + o)));
    }
    for (let i = n4; i < count; i++) {
      const o = <usize>i << 2;
      store<f32>(into + o, load<f32>(into + o) + load<f32>(from + o));
    }
    return;
  }
  const OH = subsampledExtent(H, stride);
  const OW = subsampledExtent(W, stride);
  for (let oh = 0; oh < OH; oh++) {
    const srow = strided + (<usize>(oh * stride * W) << 2);
    const drow = dense + (<usize>(oh * OW) << 2);
    for (let ow = 0; ow < OW; ow++) {
      const sp = srow + (<usize>(ow * stride) << 2);
      const dp = drow + (<usize>ow << 2);
      if (toStrided) store<f32>(sp, load<f32>(sp) + load<f32>(dp));
      else store<f32>(dp, load<f32>(dp) + load<f32>(sp));
    }
  }
}

/**
 * Option-A shortcut, forward: y[n, c + (Cout − Cin)/2, oh, ow] += x[n, c, oh·s, ow·s] for c < Cin.
 * Stride 1 with Cin = Cout is the identity shortcut (a residual add).
 */
export function shortcut_forward(y: usize, x: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, stride: i32): void {
  shortcutPlanes(x, y, N, Cin, H, W, Cout, stride, false);
}

/** Option-A shortcut, backward: dx[n, c, oh·s, ow·s] += dy[n, c + (Cout − Cin)/2, oh, ow]. */
export function shortcut_backward(dx: usize, dy: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, stride: i32): void {
  shortcutPlanes(dx, dy, N, Cin, H, W, Cout, stride, true);
}

/** Input plane c of every sample paired with output plane c + (Cout − Cin)/2. */
// @ts-ignore: decorator
@inline function shortcutPlanes(x: usize, y: usize, N: i32, Cin: i32, H: i32, W: i32, Cout: i32, stride: i32, toInput: bool): void {
  const offset = (Cout - Cin) >> 1;
  const xPlane = <usize>H * <usize>W << 2;
  const yPlane = <usize>subsampledExtent(H, stride) * <usize>subsampledExtent(W, stride) << 2;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < Cin; c++) {
      const xp = x + (<usize>n * <usize>Cin + <usize>c) * xPlane;
      const yp = y + (<usize>n * <usize>Cout + <usize>(c + offset)) * yPlane;
      addSubsampled(xp, yp, H, W, stride, toInput);
    }
  }
}

/** y[p] = mean of plane p of x (planes = N·C, each HW floats). */
export function global_avgpool_forward(y: usize, x: usize, planes: i32, HW: i32): void {
  const inv: f32 = 1.0 / <f32>HW;
  const planeBytes = <usize>HW << 2;
  for (let p = 0; p < planes; p++) {
    store<f32>(y + (<usize>p << 2), planeSum(x + <usize>p * planeBytes, HW) * inv);
  }
}

/** dx[p, :] = dy[p]/HW (overwrites dx). */
export function global_avgpool_backward(dx: usize, dy: usize, planes: i32, HW: i32): void {
  const inv: f32 = 1.0 / <f32>HW;
  const planeBytes = <usize>HW << 2;
  for (let p = 0; p < planes; p++) {
    const g = load<f32>(dy + (<usize>p << 2)) * inv;
    const gv = f32x4.splat(g);
    let d = dx + <usize>p * planeBytes;
    const end4 = d + (<usize>(HW & ~3) << 2);
    const end = d + planeBytes;
    while (d < end4) { v128.store(d, gv); d += 16; }
    while (d < end) { store<f32>(d, g); d += 4; }
  }
}
