// Kernels of a decoder-only transformer (Radford et al. 2019's GPT-2 layout, as in karpathy/llm.c):
// token + position embedding, LayerNorm (Ba et al. 2016), and causal multi-head self-attention
// (Vaswani et al. 2017; in attention.ts), forward and backward side by side. Activations are [B, T, C] rows; every
// inner loop runs over C (or a head's hs = C/NH channels) in f32x4 with a scalar tail.

import { expv, hsum, madd, zero } from "./simd";

/** y[i] += a·x[i] over n floats. */
// @ts-ignore: decorator
@inline function axpyRow(y: usize, x: usize, n: i32, a: f32): void {
  const n4 = n & ~3;
  const av = f32x4.splat(a);
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, madd(av, v128.load(x + o), v128.load(y + o)));
  }
  for (let i = n4; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + a * load<f32>(x + o));
  }
}

// ---- embedding --------------------------------------------------------------------------------------

/**
 * y[b, t, :] = wte[tokens[b·stride + t], :] + wpe[t, :]. Token ids arrive as f32 (the batch gather
 * converts bytes to floats; ids below 2^24 are exact); a sample's tokens start `stride` floats apart
 * (T + 1 when each sample also carries its last target).
 */
export function embedding_forward(y: usize, tokens: usize, stride: i32, wte: usize, wpe: usize, B: i32, T: i32, C: i32): void {
  const rowBytes = <usize>C << 2;
  const n4 = C & ~3;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const id = <i32>load<f32>(tokens + (<usize>(b * stride + t) << 2));
      const e = wte + <usize>id * rowBytes;
      const p = wpe + <usize>t * rowBytes;
      const out = y + <usize>(b * T + t) * rowBytes;
      for (let i = 0; i < n4; i += 4) {
        const o = <usize>i << 2;
        v128.store(out + o, f32x4.add(v128.load(e + o), v128.load(p + o)));
      }
      for (let i = n4; i < C; i++) {
        const o = <usize>i << 2;
        store<f32>(out + o, load<f32>(e + o) + load<f32>(p + o));
      }
    }
  }
}

/**
 * Scatter-add: dwte[tokens[b·stride + t], :] += dy[b, t, :], dwpe[t, :] += dy[b, t, :].
 * accumulate = 0 zeroes dwte (V rows) and dwpe (T rows) first.
 */
export function embedding_backward(dwte: usize, dwpe: usize, dy: usize, tokens: usize, stride: i32, B: i32, T: i32, C: i32, V: i32, accumulate: i32): void {
  if (accumulate == 0) {
    zero(dwte, V * C);
    zero(dwpe, T * C);
  }
  const rowBytes = <usize>C << 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const id = <i32>load<f32>(tokens + (<usize>(b * stride + t) << 2));
      const g = dy + <usize>(b * T + t) * rowBytes;
      axpyRow(dwte + <usize>id * rowBytes, g, C, 1);
      axpyRow(dwpe + <usize>t * rowBytes, g, C, 1);
    }
  }
}

/** labels[b·T + t] = tokens[b·stride + t + 1]: each position's target is the next token. */
export function next_token_labels(labels: usize, tokens: usize, stride: i32, B: i32, T: i32): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      store<i32>(labels + (<usize>(b * T + t) << 2), <i32>load<f32>(tokens + (<usize>(b * stride + t + 1) << 2)));
    }
  }
}

// ---- LayerNorm ----------------------------------------------------------------------------------------

/** Per row of C: y = γ·(x − mean)·rstd + β; stats[r] = mean, stats[rows + r] = rstd = 1/√(var + ε). y may alias x. */
export function layernorm_forward(y: usize, stats: usize, x: usize, gamma: usize, beta: usize, rows: i32, C: i32, eps: f32): void {
  const rowBytes = <usize>C << 2;
  const n4 = C & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    let acc = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) acc = f32x4.add(acc, v128.load(xr + (<usize>i << 2)));
    let s = hsum(acc);
    for (let i = n4; i < C; i++) s += load<f32>(xr + (<usize>i << 2));
    const mean = s / <f32>C;
    const mv = f32x4.splat(mean);
    let q = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), mv);
      q = madd(d, d, q);
    }
    let v = hsum(q);
    for (let i = n4; i < C; i++) {
      const d = load<f32>(xr + (<usize>i << 2)) - mean;
      v += d * d;
    }
    const rstd = <f32>(1.0 / Math.sqrt(<f64>(v / <f32>C) + <f64>eps));
    store<f32>(stats + (<usize>r << 2), mean);
    store<f32>(stats + (<usize>(rows + r) << 2), rstd);
    const rv = f32x4.splat(rstd);
    const yr = y + <usize>r * rowBytes;
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv);
      v128.store(yr + o, madd(v128.load(gamma + o), xh, v128.load(beta + o)));
    }
    for (let i = n4; i < C; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, load<f32>(gamma + o) * ((load<f32>(xr + o) - mean) * rstd) + load<f32>(beta + o));
    }
  }
}

/**
 * LayerNorm backward: dγ (+)= Σ_rows dy·x̂, dβ (+)= Σ_rows dy, and
 * dx = rstd · (dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)) (overwrites dx; dx may not alias dy).
 */
export function layernorm_backward(dx: usize, dgamma: usize, dbeta: usize, dy: usize, x: usize, stats: usize, gamma: usize, rows: i32, C: i32, accumulate: i32): void {
  if (accumulate == 0) {
    zero(dgamma, C);
    zero(dbeta, C);
  }
  const rowBytes = <usize>C << 2;
  const n4 = C & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const gr = dy + <usize>r * rowBytes;
    const mean = load<f32>(stats + (<usize>r << 2));
    const rstd = load<f32>(stats + (<usize>(rows + r) << 2));
    const mv = f32x4.splat(mean);
    const rv = f32x4.splat(rstd);
    let a1 = f32x4.splat(0), a2 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv);
      const g = v128.load(gr + o);
      const dn = f32x4.mul(g, v128.load(gamma + o));
      a1 = f32x4.add(a1, dn);
      a2 = madd(dn, xh, a2);
      v128.store(dbeta + o, f32x4.add(v128.load(dbeta + o), g));
      v128.store(dgamma + o, madd(g, xh, v128.load(dgamma + o)));
    }
    let s1 = hsum(a1), s2 = hsum(a2);
    for (let i = n4; i < C; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - mean) * rstd;
      const g = load<f32>(gr + o);
      const dn = g * load<f32>(gamma + o);
      s1 += dn;
      s2 += dn * xh;
      store<f32>(dbeta + o, load<f32>(dbeta + o) + g);
      store<f32>(dgamma + o, load<f32>(dgamma + o) + g * xh);
    }
    const m1 = f32x4.splat(s1 / <f32>C);
    const m2 = f32x4.splat(s2 / <f32>C);
    const dr = dx + <usize>r * rowBytes;
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv);
      const dn = f32x4.mul(v128.load(gr + o), v128.load(gamma + o));
      v128.store(dr + o, f32x4.mul(rv, f32x4.sub(f32x4.sub(dn, m1), f32x4.mul(xh, m2))));
    }
    for (let i = n4; i < C; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - mean) * rstd;
      const dn = load<f32>(gr + o) * load<f32>(gamma + o);
      store<f32>(dr + o, rstd * (dn - s1 / <f32>C - xh * (s2 / <f32>C)));
    }
  }
}

/**
 * dγ (+)= Σ_rows dy·x̂, dβ (+)= Σ_rows dy alone: the weight-gradient half of layernorm_backward (a
 * zero-bubble pipeline's W), with the same per-row order and the same fused multiply-adds, so it
 * equals layernorm_backward's dγ and dβ bitwise.
 */
export function layernorm_backward_params(dgamma: usize, dbeta: usize, dy: usize, x: usize, stats: usize, rows: i32, C: i32, accumulate: i32): void {
  if (accumulate == 0) {
    zero(dgamma, C);
    zero(dbeta, C);
  }
  const rowBytes = <usize>C << 2;
  const n4 = C & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const gr = dy + <usize>r * rowBytes;
    const mean = load<f32>(stats + (<usize>r << 2));
    const rstd = load<f32>(stats + (<usize>(rows + r) << 2));
    const mv = f32x4.splat(mean);
    const rv = f32x4.splat(rstd);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), mv), rv);
      const g = v128.load(gr + o);
      v128.store(dbeta + o, f32x4.add(v128.load(dbeta + o), g));
      v128.store(dgamma + o, madd(g, xh, v128.load(dgamma + o)));
    }
    for (let i = n4; i < C; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - mean) * rstd;
      const g = load<f32>(gr + o);
      store<f32>(dbeta + o, load<f32>(dbeta + o) + g);
      store<f32>(dgamma + o, load<f32>(dgamma + o) + g * xh);
    }
  }
}
