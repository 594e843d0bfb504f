/**
 * Plain-TypeScript reference implementations of every wasm kernel (asm/, ABI in
 * engine/kernels/abi.ts): naive loops, f64 arithmetic, no SIMD, no packing, no im2col. Tests compare
 * the kernels against these; other tests may use them as independent oracles too.
 *
 * Conventions: inputs are typed arrays (row-major, as in the ABI); outputs are returned as new
 * Float64Arrays (un-rounded, so a test can judge the kernel's f32 rounding itself). Where a kernel
 * accumulates, the reference takes the initial output (`c0`) and a flag.
 */
import { Act } from "../engine/kernels/abi.ts";

type Floats = ArrayLike<number>;

// ---- GEMM ---------------------------------------------------------------------------------------------

export interface GemmResult {
  /** C as computed in f64. */
  c: Float64Array;
  /** Σ_k |a·b| per element: the scale of the rounding error any summation order may make. */
  mag: Float64Array;
}

function gemmGeneric(
  a: (i: number, k: number) => number,
  b: (k: number, j: number) => number,
  M: number, K: number, N: number, accumulate: boolean, c0?: Floats,
): GemmResult {
  const c = new Float64Array(M * N);
  const mag = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = accumulate && c0 ? c0[i * N + j]! : 0;
      let m = Math.abs(s);
      for (let k = 0; k < K; k++) {
        const p = a(i, k) * b(k, j);
        s += p;
        m += Math.abs(p);
      }
      c[i * N + j] = s;
      mag[i * N + j] = m;
    }
  }
  return { c, mag };
}

/** C[M×N] (+)= A[M×K] · B[K×N]. */
export function gemmNN(A: Floats, B: Floats, M: number, K: number, N: number, accumulate = false, c0?: Floats): GemmResult {
  return gemmGeneric((i, k) => A[i * K + k]!, (k, j) => B[k * N + j]!, M, K, N, accumulate, c0);
}

/** C[M×N] (+)= A[M×K] · B[N×K]ᵀ. */
export function gemmNT(A: Floats, B: Floats, M: number, K: number, N: number, accumulate = false, c0?: Floats): GemmResult {
  return gemmGeneric((i, k) => A[i * K + k]!, (k, j) => B[j * K + k]!, M, K, N, accumulate, c0);
}

/** C[M×N] (+)= A[K×M]ᵀ · B[K×N]. */
export function gemmTN(A: Floats, B: Floats, M: number, K: number, N: number, accumulate = false, c0?: Floats): GemmResult {
  return gemmGeneric((i, k) => A[k * M + i]!, (k, j) => B[k * N + j]!, M, K, N, accumulate, c0);
}

// ---- activations ----------------------------------------------------------------------------------------

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** act(z): identity, relu, tanh, gelu (tanh approximation). */
export function actForward(z: number, act: number): number {
  switch (act) {
    case Act.relu:
      return z > 0 ? z : 0;
    case Act.tanh:
      return Math.tanh(z);
    case Act.gelu:
      return 0.5 * z * (1 + Math.tanh(SQRT_2_OVER_PI * (z + GELU_C * z * z * z)));
    default:
      return z;
  }
}

/** act'(z), the exact derivative of actForward (relu'(0) = 0). */
export function actDerivative(z: number, act: number): number {
  switch (act) {
    case Act.relu:
      return z > 0 ? 1 : 0;
    case Act.tanh: {
      const t = Math.tanh(z);
      return 1 - t * t;
    }
    case Act.gelu: {
      const t = Math.tanh(SQRT_2_OVER_PI * (z + GELU_C * z * z * z));
      return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * z * z);
    }
    default:
      return 1;
  }
}

/** z' = z + b[c] (b may be null), y = act(z'). */
export function biasActForward(z: Floats, b: Floats | null, rows: number, cols: number, act: number): { z: Float64Array; y: Float64Array } {
  const zo = new Float64Array(rows * cols);
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = z[r * cols + c]! + (b ? b[c]! : 0);
      zo[r * cols + c] = v;
      y[r * cols + c] = actForward(v, act);
    }
  }
  return { z: zo, y };
}

/** dz = dy·act'(z); db (+)= column sums of dz. */
export function biasActBackward(
  dy: Floats, z: Floats, rows: number, cols: number, act: number, accumulate = false, db0?: Floats,
): { dz: Float64Array; db: Float64Array } {
  const dz = new Float64Array(rows * cols);
  const db = new Float64Array(cols);
  for (let c = 0; c < cols; c++) db[c] = accumulate && db0 ? db0[c]! : 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = dy[r * cols + c]! * actDerivative(z[r * cols + c]!, act);
      dz[r * cols + c] = d;
      db[c]! += d;
    }
  }
  return { dz, db };
}

/** NCHW: z' = z + b[channel], y = act(z'). */
export function channelBiasActForward(
  z: Floats, b: Floats | null, batch: number, channels: number, spatial: number, act: number,
): { z: Float64Array; y: Float64Array } {
  const n = batch * channels * spatial;
  const zo = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const ch = Math.floor(i / spatial) % channels;
    const v = z[i]! + (b ? b[ch]! : 0);
    zo[i] = v;
    y[i] = actForward(v, act);
  }
  return { z: zo, y };
}

/** NCHW: dz = dy·act'(z); db[c] (+)= Σ_{n,s} dz. */
export function channelBiasActBackward(
  dy: Floats, z: Floats, batch: number, channels: number, spatial: number, act: number, accumulate = false, db0?: Floats,
): { dz: Float64Array; db: Float64Array } {
  const n = batch * channels * spatial;
  const dz = new Float64Array(n);
  const db = new Float64Array(channels);
  for (let c = 0; c < channels; c++) db[c] = accumulate && db0 ? db0[c]! : 0;
  for (let i = 0; i < n; i++) {
    const ch = Math.floor(i / spatial) % channels;
    const d = dy[i]! * actDerivative(z[i]!, act);
    dz[i] = d;
    db[ch]! += d;
  }
  return { dz, db };
}

// ---- loss -------------------------------------------------------------------------------------------------

/** Softmax cross-entropy: Σ loss and (softmax − onehot)·scale; rows with labels outside [0, classes) count 0. */
export function softmaxXent(
  logits: Floats, labels: ArrayLike<number>, rows: number, classes: number, scale: number,
): { loss: number; dlogits: Float64Array } {
  let loss = 0;
  const d = new Float64Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const label = labels[r]!;
    if (label < 0 || label >= classes) continue;
    let m = -Infinity;
    for (let c = 0; c < classes; c++) m = Math.max(m, logits[r * classes + c]!);
    let s = 0;
    for (let c = 0; c < classes; c++) s += Math.exp(logits[r * classes + c]! - m);
    loss += Math.log(s) - (logits[r * classes + label]! - m);
    for (let c = 0; c < classes; c++) {
      d[r * classes + c] = (Math.exp(logits[r * classes + c]! - m) / s - (c === label ? 1 : 0)) * scale;
    }
  }
  return { loss, dlogits: d };
}

/** Rows whose first maximum is at the label. */
export function countCorrect(logits: Floats, labels: ArrayLike<number>, rows: number, classes: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c]! > logits[r * classes + best]!) best = c;
    if (classes > 0 && best === labels[r]) n++;
  }
  return n;
}

// ---- conv2d (direct loops, no im2col) -----------------------------------------------------------------------

export interface ConvDims {
  N: number; Cin: number; H: number; W: number; Cout: number; KH: number; KW: number; stride: number; pad: number;
}

export function convOutSize(d: ConvDims): { OH: number; OW: number } {
  return {
    OH: Math.floor((d.H + 2 * d.pad - d.KH) / d.stride) + 1,
    OW: Math.floor((d.W + 2 * d.pad - d.KW) / d.stride) + 1,
  };
}

/** y[n, co, oh, ow] = Σ_{ci, kh, kw} w[co, ci, kh, kw] · x[n, ci, oh·s − p + kh, ow·s − p + kw]. */
export function conv2dForward(x: Floats, w: Floats, d: ConvDims): GemmResult {
  const { N, Cin, H, W, Cout, KH, KW, stride, pad } = d;
  const { OH, OW } = convOutSize(d);
  const c = new Float64Array(N * Cout * OH * OW);
  const mag = new Float64Array(c.length);
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = 0;
          let m = 0;
          for (let ci = 0; ci < Cin; ci++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * stride - pad + kh;
                const iw = ow * stride - pad + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const p = w[((co * Cin + ci) * KH + kh) * KW + kw]! * x[((n * Cin + ci) * H + ih) * W + iw]!;
                s += p;
                m += Math.abs(p);
              }
          const i = ((n * Cout + co) * OH + oh) * OW + ow;
          c[i] = s;
          mag[i] = m;
        }
  return { c, mag };
}

/** dw (+)= Σ_n dy ⋆ x; dx = full correlation of dy with w. */
export function conv2dBackward(
  dy: Floats, x: Floats, w: Floats, d: ConvDims, accumulate = false, dw0?: Floats,
): { dx: GemmResult; dw: GemmResult } {
  const { N, Cin, H, W, Cout, KH, KW, stride, pad } = d;
  const { OH, OW } = convOutSize(d);
  const dx = { c: new Float64Array(N * Cin * H * W), mag: new Float64Array(N * Cin * H * W) };
  const dw = { c: new Float64Array(Cout * Cin * KH * KW), mag: new Float64Array(Cout * Cin * KH * KW) };
  if (accumulate && dw0) for (let i = 0; i < dw.c.length; i++) { dw.c[i] = dw0[i]!; dw.mag[i] = Math.abs(dw0[i]!); }
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const g = dy[((n * Cout + co) * OH + oh) * OW + ow]!;
          for (let ci = 0; ci < Cin; ci++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * stride - pad + kh;
                const iw = ow * stride - pad + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const wi = ((co * Cin + ci) * KH + kh) * KW + kw;
                const xi = ((n * Cin + ci) * H + ih) * W + iw;
                dw.c[wi]! += g * x[xi]!;
                dw.mag[wi]! += Math.abs(g * x[xi]!);
                dx.c[xi]! += g * w[wi]!;
                dx.mag[xi]! += Math.abs(g * w[wi]!);
              }
        }
  return { dx, dw };
}

// ---- pooling ---------------------------------------------------------------------------------------------------

export function poolOutSize(H: number, W: number, K: number, stride: number): { OH: number; OW: number } {
  return { OH: H >= K ? Math.floor((H - K) / stride) + 1 : 0, OW: W >= K ? Math.floor((W - K) / stride) + 1 : 0 };
}

/** Window max and the flat in-plane index of its first occurrence (row-major scan). */
export function maxpoolForward(x: Floats, planes: number, H: number, W: number, K: number, stride: number): { y: Float64Array; argmax: Int32Array } {
  const { OH, OW } = poolOutSize(H, W, K, stride);
  const y = new Float64Array(planes * OH * OW);
  const argmax = new Int32Array(planes * OH * OW);
  for (let p = 0; p < planes; p++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let best = -1;
        let bv = -Infinity;
        for (let kh = 0; kh < K; kh++)
          for (let kw = 0; kw < K; kw++) {
            const idx = (oh * stride + kh) * W + ow * stride + kw;
            const v = x[p * H * W + idx]!;
            if (best < 0 || v > bv) { bv = v; best = idx; }
          }
        const o = (p * OH + oh) * OW + ow;
        y[o] = bv;
        argmax[o] = best;
      }
  return { y, argmax };
}

/** dx = 0; dx[plane, argmax] += dy. */
export function maxpoolBackward(dy: Floats, argmax: ArrayLike<number>, planes: number, H: number, W: number, K: number, stride: number): Float64Array {
  const { OH, OW } = poolOutSize(H, W, K, stride);
  const dx = new Float64Array(planes * H * W);
  for (let p = 0; p < planes; p++)
    for (let o = 0; o < OH * OW; o++) dx[p * H * W + argmax[p * OH * OW + o]!]! += dy[p * OH * OW + o]!;
  return dx;
}

export function avgpoolForward(x: Floats, planes: number, H: number, W: number, K: number, stride: number): Float64Array {
  const { OH, OW } = poolOutSize(H, W, K, stride);
  const y = new Float64Array(planes * OH * OW);
  for (let p = 0; p < planes; p++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let s = 0;
        for (let kh = 0; kh < K; kh++)
          for (let kw = 0; kw < K; kw++) s += x[p * H * W + (oh * stride + kh) * W + ow * stride + kw]!;
        y[(p * OH + oh) * OW + ow] = s / (K * K);
      }
  return y;
}

export function avgpoolBackward(dy: Floats, planes: number, H: number, W: number, K: number, stride: number): Float64Array {
  const { OH, OW } = poolOutSize(H, W, K, stride);
  const dx = new Float64Array(planes * H * W);
  for (let p = 0; p < planes; p++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        const g = dy[(p * OH + oh) * OW + ow]! / (K * K);
        for (let kh = 0; kh < K; kh++)
          for (let kw = 0; kw < K; kw++) dx[p * H * W + (oh * stride + kh) * W + ow * stride + kw]! += g;
      }
  return dx;
}

// ---- optimizers (PyTorch semantics, see abi.ts) ---------------------------------------------------------------

export function sgdUpdate(w: Floats, g: Floats, lr: number, wd: number): Float64Array {
  return Float64Array.from(w, (wi, i) => wi - lr * (g[i]! + wd * wi));
}

/** The smallest normal f32: the optimizer kernels store state below it as 0 (asm/optim.ts). */
export const FLT_MIN = 2 ** -126;
const flushTiny = (x: number) => (Math.abs(x) < FLT_MIN ? 0 : x);

export function momentumUpdate(
  w: Floats, g: Floats, m: Floats, lr: number, mu: number, dampening: number, wd: number, nesterov: boolean,
): { w: Float64Array; m: Float64Array } {
  const wo = new Float64Array(w.length);
  const mo = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]! + wd * w[i]!;
    const mi = flushTiny(mu * m[i]! + (1 - dampening) * gi);
    mo[i] = mi;
    wo[i] = w[i]! - lr * (nesterov ? gi + mu * mi : mi);
  }
  return { w: wo, m: mo };
}

export function adamUpdate(
  w: Floats, g: Floats, m: Floats, v: Floats, lr: number, beta1: number, beta2: number, eps: number, wd: number,
  decoupled: boolean, bc1: number, bc2: number,
): { w: Float64Array; m: Float64Array; v: Float64Array } {
  const wo = new Float64Array(w.length);
  const mo = new Float64Array(w.length);
  const vo = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    let wi = w[i]!;
    let gi = g[i]!;
    if (decoupled) wi -= lr * wd * wi;
    else gi += wd * wi;
    const mi = flushTiny(beta1 * m[i]! + (1 - beta1) * gi);
    const vi = flushTiny(beta2 * v[i]! + (1 - beta2) * gi * gi);
    mo[i] = mi;
    vo[i] = vi;
    wo[i] = wi - lr * (mi / bc1) / (Math.sqrt(vi / bc2) + eps);
  }
  return { w: wo, m: mo, v: vo };
}

export function rmspropUpdate(
  w: Floats, g: Floats, v: Floats, lr: number, alpha: number, eps: number, wd: number,
): { w: Float64Array; v: Float64Array } {
  const wo = new Float64Array(w.length);
  const vo = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const gi = g[i]! + wd * w[i]!;
    const vi = flushTiny(alpha * v[i]! + (1 - alpha) * gi * gi);
    vo[i] = vi;
    wo[i] = w[i]! - (lr * gi) / (Math.sqrt(vi) + eps);
  }
  return { w: wo, v: vo };
}

// ---- vector ops ---------------------------------------------------------------------------------------------------

export const axpy = (y: Floats, x: Floats, a: number): Float64Array => Float64Array.from(y, (yi, i) => yi + a * x[i]!);
export const scale = (x: Floats, a: number): Float64Array => Float64Array.from(x, (xi) => xi * a);

export function weightedSum(tensors: Floats[], weights: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let t = 0; t < tensors.length; t++) for (let i = 0; i < n; i++) out[i]! += weights[t]! * tensors[t]![i]!;
  return out;
}

export function squaredDistance(a: Floats, b: Floats): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

// ---- data -------------------------------------------------------------------------------------------------------------

/** out[i, :] = bytes[indices[i], :]·scale + shift; labels[i] = labelBytes[indices[i]]. */
export function gatherBatch(
  bytes: Uint8Array, labelBytes: Uint8Array, indices: ArrayLike<number>, sampleBytes: number, scale: number, shift: number,
): { out: Float64Array; labels: Int32Array } {
  const count = indices.length;
  const out = new Float64Array(count * sampleBytes);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const idx = indices[i]!;
    for (let j = 0; j < sampleBytes; j++) out[i * sampleBytes + j] = bytes[idx * sampleBytes + j]! * scale + shift;
    labels[i] = labelBytes[idx]!;
  }
  return { out, labels };
}
