// Kernels of a decoder-only transformer (Radford et al. 2019's GPT-2 layout, as in karpathy/llm.c):
// token + position embedding, LayerNorm (Ba et al. 2016), and causal multi-head self-attention
// (Vaswani et al. 2017), forward and backward side by side. Activations are [B, T, C] rows; every
// inner loop runs over C (or a head's hs = C/NH channels) in f32x4 with a scalar tail.

import { expv, hsum, madd } from "./simd";

/** Σ a[i]·b[i] over n floats. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  const n4 = n & ~3;
  let acc = f32x4.splat(0);
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    acc = madd(v128.load(a + o), v128.load(b + o), acc);
  }
  let s = hsum(acc);
  for (let i = n4; i < n; i++) {
    const o = <usize>i << 2;
    s += load<f32>(a + o) * load<f32>(b + o);
  }
  return s;
}

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

/** dst[0..n) = 0. */
// @ts-ignore: decorator
@inline function zero(dst: usize, n: i32): void {
  memory.fill(dst, 0, <usize>max(n, 0) << 2);
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

// ---- causal multi-head self-attention ----------------------------------------------------------------

/**
 * qkv[B, T, 3C] holds q | k | v per position; head h uses channels [h·hs, (h+1)·hs) of each
 * (hs = C/NH; the caller refuses C not divisible by NH). For each query position t:
 *   att[b, h, t, t2] = softmax over t2 ≤ t of q_t·k_t2 / √hs   (0 for t2 > t: the causal mask)
 *   out[b, t, h·hs + i] = Σ_t2 att[b, h, t, t2] · v_t2[i]
 * att [B, NH, T, T] is saved for the backward.
 */
export function attention_forward(out: usize, att: usize, qkv: usize, B: i32, T: i32, C: i32, NH: i32): void {
  const hs = C / NH;
  const scale = <f32>(1.0 / Math.sqrt(<f64>hs));
  const row3 = <usize>(3 * C) << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * row3;
    for (let h = 0; h < NH; h++) {
      const ho = <usize>(h * hs) << 2;
      for (let t = 0; t < T; t++) {
        const q = base + <usize>t * row3 + ho;
        const a = att + (<usize>(((b * NH + h) * T + t) * T) << 2);
        let maxv: f32 = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const s = dot(q, base + <usize>t2 * row3 + (<usize>C << 2) + ho, hs) * scale;
          store<f32>(a + (<usize>t2 << 2), s);
          if (s > maxv) maxv = s;
        }
        // exp in f32x4 (expv: no lookup tables, which this module may not carry), scalar tail splatted
        const n = t + 1;
        const mv = f32x4.splat(maxv);
        let acc = f32x4.splat(0);
        let t2 = 0;
        for (; t2 + 4 <= n; t2 += 4) {
          const e = expv(f32x4.sub(v128.load(a + (<usize>t2 << 2)), mv));
          v128.store(a + (<usize>t2 << 2), e);
          acc = f32x4.add(acc, e);
        }
        let sum = hsum(acc);
        for (; t2 < n; t2++) {
          const e = f32x4.extract_lane(expv(f32x4.splat(load<f32>(a + (<usize>t2 << 2)) - maxv)), 0);
          store<f32>(a + (<usize>t2 << 2), e);
          sum += e;
        }
        const inv: f32 = 1 / sum;
        for (let t2 = 0; t2 <= t; t2++) store<f32>(a + (<usize>t2 << 2), load<f32>(a + (<usize>t2 << 2)) * inv);
        for (let t2 = t + 1; t2 < T; t2++) store<f32>(a + (<usize>t2 << 2), 0);
        const o = out + (<usize>(b * T + t) * <usize>C << 2) + ho;
        zero(o, hs);
        for (let t2 = 0; t2 <= t; t2++) axpyRow(o, base + <usize>t2 * row3 + (<usize>(2 * C) << 2) + ho, hs, load<f32>(a + (<usize>t2 << 2)));
      }
    }
  }
}

/**
 * Backward of attention_forward: dqkv (overwritten) from dout [B, T, C], the saved att and qkv.
 * Per query row: datt = dout·v, dscore = att ⊙ (datt − Σ att·datt) (softmax backward), then
 * dq += dscore·k/√hs, dk += dscore·q/√hs, dv += att·dout. scratch: T floats.
 */
export function attention_backward(dqkv: usize, dout: usize, qkv: usize, att: usize, B: i32, T: i32, C: i32, NH: i32, scratch: usize): void {
  const hs = C / NH;
  const scale = <f32>(1.0 / Math.sqrt(<f64>hs));
  const row3 = <usize>(3 * C) << 2;
  zero(dqkv, B * T * 3 * C);
  const kOff = <usize>C << 2;
  const vOff = <usize>(2 * C) << 2;
  for (let b = 0; b < B; b++) {
    const base = qkv + <usize>(b * T) * row3;
    const dbase = dqkv + <usize>(b * T) * row3;
    for (let h = 0; h < NH; h++) {
      const ho = <usize>(h * hs) << 2;
      for (let t = 0; t < T; t++) {
        const a = att + (<usize>(((b * NH + h) * T + t) * T) << 2);
        const g = dout + (<usize>(b * T + t) * <usize>C << 2) + ho;
        let inner: f32 = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const p = load<f32>(a + (<usize>t2 << 2));
          const d = dot(g, base + <usize>t2 * row3 + vOff + ho, hs);
          store<f32>(scratch + (<usize>t2 << 2), d);
          inner += p * d;
          axpyRow(dbase + <usize>t2 * row3 + vOff + ho, g, hs, p); // dv_t2 += att·dout
        }
        const q = base + <usize>t * row3 + ho;
        const dq = dbase + <usize>t * row3 + ho;
        for (let t2 = 0; t2 <= t; t2++) {
          const ds = load<f32>(a + (<usize>t2 << 2)) * (load<f32>(scratch + (<usize>t2 << 2)) - inner) * scale;
          axpyRow(dq, base + <usize>t2 * row3 + kOff + ho, hs, ds);
          axpyRow(dbase + <usize>t2 * row3 + kOff + ho, q, hs, ds);
        }
      }
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
