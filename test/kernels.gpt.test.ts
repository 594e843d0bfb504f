/**
 * Transformer kernels (asm/gpt.ts) against plain f64 TypeScript references, both builds: embedding
 * forward and scatter-add backward (repeated tokens), LayerNorm forward/backward, causal attention
 * forward/backward with head sizes that leave SIMD tails; and the causal mask itself: changing a
 * later position's q, k or v changes no earlier output, bit for bit.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { attentionScratchFloats } from "../engine/kernels/abi.ts";
import { arenaFor, expectClose, randomFloats, randomInts, VARIANTS } from "./kernels.harness.ts";


type Floats = ArrayLike<number>;

function embeddingRef(tokens: Floats, wte: Floats, wpe: Floats, B: number, T: number, C: number): Float64Array {
  const y = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let i = 0; i < C; i++) y[(b * T + t) * C + i] = wte[tokens[b * T + t]! * C + i]! + wpe[t * C + i]!;
  return y;
}

function layernormRef(x: Floats, g: Floats, beta: Floats, rows: number, C: number) {
  const y = new Float64Array(rows * C), mean = new Float64Array(rows), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < C; i++) s += x[r * C + i]!;
    mean[r] = s / C;
    let v = 0;
    for (let i = 0; i < C; i++) v += (x[r * C + i]! - mean[r]!) ** 2;
    rstd[r] = 1 / Math.sqrt(v / C + 1e-5);
    for (let i = 0; i < C; i++) y[r * C + i] = g[i]! * (x[r * C + i]! - mean[r]!) * rstd[r]! + beta[i]!;
  }
  return { y, mean, rstd };
}

function layernormBackwardRef(dy: Floats, x: Floats, g: Floats, rows: number, C: number) {
  const { mean, rstd } = layernormRef(x, g, new Float64Array(C), rows, C);
  const dx = new Float64Array(rows * C), dg = new Float64Array(C), db = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    let s1 = 0, s2 = 0;
    for (let i = 0; i < C; i++) {
      const xh = (x[r * C + i]! - mean[r]!) * rstd[r]!;
      const dn = dy[r * C + i]! * g[i]!;
      s1 += dn;
      s2 += dn * xh;
      dg[i] += dy[r * C + i]! * xh;
      db[i] += dy[r * C + i]!;
    }
    for (let i = 0; i < C; i++) {
      const xh = (x[r * C + i]! - mean[r]!) * rstd[r]!;
      dx[r * C + i] = rstd[r]! * (dy[r * C + i]! * g[i]! - s1 / C - (xh * s2) / C);
    }
  }
  return { dx, dg, db };
}

/** Causal attention in f64, straight from the definition. */
function attentionRef(qkv: Floats, B: number, T: number, C: number, NH: number) {
  const hs = C / NH;
  const out = new Float64Array(B * T * C), att = new Float64Array(B * NH * T * T);
  const at = (b: number, t: number, part: number, h: number, i: number) => qkv[(b * T + t) * 3 * C + part * C + h * hs + i]!;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++) {
        const s: number[] = [];
        for (let t2 = 0; t2 <= t; t2++) {
          let d = 0;
          for (let i = 0; i < hs; i++) d += at(b, t, 0, h, i) * at(b, t2, 1, h, i);
          s.push(d / Math.sqrt(hs));
        }
        const m = Math.max(...s);
        const e = s.map((v) => Math.exp(v - m));
        const z = e.reduce((p, q) => p + q, 0);
        e.forEach((v, t2) => (att[((b * NH + h) * T + t) * T + t2] = v / z));
        for (let i = 0; i < hs; i++) {
          let o = 0;
          for (let t2 = 0; t2 <= t; t2++) o += att[((b * NH + h) * T + t) * T + t2]! * at(b, t2, 2, h, i);
          out[(b * T + t) * C + h * hs + i] = o;
        }
      }
  return { out, att };
}

/** dqkv by the chain rule through the definition (f64), independent of the kernel's order of work. */
function attentionBackwardRef(dout: Floats, qkv: Floats, B: number, T: number, C: number, NH: number): Float64Array {
  const hs = C / NH;
  const { att } = attentionRef(qkv, B, T, C, NH);
  const d = new Float64Array(B * T * 3 * C);
  const idx = (b: number, t: number, part: number, h: number, i: number) => (b * T + t) * 3 * C + part * C + h * hs + i;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++) {
        const p = (t2: number) => att[((b * NH + h) * T + t) * T + t2]!;
        const datt: number[] = [];
        for (let t2 = 0; t2 <= t; t2++) {
          let s = 0;
          for (let i = 0; i < hs; i++) {
            s += dout[(b * T + t) * C + h * hs + i]! * qkv[idx(b, t2, 2, h, i)]!;
            d[idx(b, t2, 2, h, i)] += p(t2) * dout[(b * T + t) * C + h * hs + i]!;
          }
          datt.push(s);
        }
        const inner = datt.reduce((acc, v, t2) => acc + v * p(t2), 0);
        for (let t2 = 0; t2 <= t; t2++) {
          const ds = (p(t2) * (datt[t2]! - inner)) / Math.sqrt(hs);
          for (let i = 0; i < hs; i++) {
            d[idx(b, t, 0, h, i)] += ds * qkv[idx(b, t2, 1, h, i)]!;
            d[idx(b, t2, 1, h, i)] += ds * qkv[idx(b, t, 0, h, i)]!;
          }
        }
      }
  return d;
}

const seed = fc.integer({ min: 1, max: 1e9 });

for (const variant of VARIANTS) {
  describe(`transformer kernels (${variant} build)`, () => {
    test("embedding forward, and backward as a scatter-add over repeated tokens", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 6 }), fc.boolean(), seed, (B, T, C, V, accumulate, s) => {
          a.reset();
          const tokens = Float32Array.from(randomInts(B * T, s, V));
          const wte = randomFloats(V * C, s + 1), wpe = randomFloats(T * C, s + 2), dy = randomFloats(B * T * C, s + 3);
          const py = a.floats(B * T * C), ptok = a.put(tokens);
          a.k.embedding_forward(py, ptok, T, a.put(wte), a.put(wpe), B, T, C);
          expectClose(a.read(py, B * T * C), embeddingRef(tokens, wte, wpe, B, T, C), 1e-6, 1e-7, "y");
          const g0 = randomFloats(V * C, s + 4), p0 = randomFloats(T * C, s + 5);
          const pdwte = a.put(g0), pdwpe = a.put(p0);
          a.k.embedding_backward(pdwte, pdwpe, a.put(dy), ptok, T, B, T, C, V, accumulate ? 1 : 0);
          a.checkGuards();
          const dwte = Float64Array.from({ length: V * C }, (_, j) => (accumulate ? g0[j]! : 0));
          const dwpe = Float64Array.from({ length: T * C }, (_, j) => (accumulate ? p0[j]! : 0));
          for (let r = 0; r < B * T; r++) for (let i = 0; i < C; i++) {
            dwte[tokens[r]! * C + i] += dy[r * C + i]!;
            dwpe[(r % T) * C + i] += dy[r * C + i]!;
          }
          expectClose(a.read(pdwte, V * C), dwte, 1e-5, 1e-6, "dwte");
          expectClose(a.read(pdwpe, T * C), dwpe, 1e-5, 1e-6, "dwpe");
        }),
        { numRuns: 60 },
      );
    });

    test("layernorm forward and backward", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 7 }), fc.oneof(fc.constantFrom(1, 3, 4, 5, 32, 33), fc.integer({ min: 1, max: 70 })), fc.boolean(), seed, (rows, C, accumulate, s) => {
          a.reset();
          const x = Float32Array.from(randomFloats(rows * C, s, 2), (v) => v + 1), g = randomFloats(C, s + 1), beta = randomFloats(C, s + 2), dy = randomFloats(rows * C, s + 3);
          const px = a.put(x), pg = a.put(g), pstats = a.floats(2 * rows);
          const py = s % 2 ? a.floats(rows * C) : a.put(x);
          a.k.layernorm_forward(py, pstats, s % 2 ? px : py, pg, a.put(beta), rows, C, 1e-5);
          const want = layernormRef(x, g, beta, rows, C);
          expectClose(a.read(py, rows * C), want.y, 1e-4, 1e-4, "y");
          expectClose(a.read(pstats, rows), want.mean, 1e-5, 1e-5, "mean");
          const g0 = randomFloats(C, s + 4), b0 = randomFloats(C, s + 5);
          const pdg = a.put(g0), pdb = a.put(b0), pdx = a.floats(rows * C);
          a.k.layernorm_backward(pdx, pdg, pdb, a.put(dy), px, pstats, pg, rows, C, accumulate ? 1 : 0);
          a.checkGuards();
          const back = layernormBackwardRef(dy, x, g, rows, C);
          expectClose(a.read(pdx, rows * C), back.dx, 1e-3, 1e-3, "dx");
          expectClose(a.read(pdg, C), Array.from(back.dg, (v, i) => v + (accumulate ? g0[i]! : 0)), 1e-4, 1e-4 * rows, "dgamma");
          expectClose(a.read(pdb, C), Array.from(back.db, (v, i) => v + (accumulate ? b0[i]! : 0)), 1e-5, 1e-5 * rows, "dbeta");
        }),
        { numRuns: 60 },
      );
    });

    test("causal attention forward and backward, head sizes with SIMD tails", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 2 }), fc.oneof(fc.constantFrom(1, 6, 7, 8, 9, 16), fc.integer({ min: 1, max: 20 })), fc.integer({ min: 1, max: 3 }), fc.oneof(fc.constantFrom(1, 3, 4, 5, 8, 9, 16), fc.integer({ min: 1, max: 17 })), seed, (B, T, NH, hs, s) => {
          a.reset();
          const C = NH * hs;
          const qkv = randomFloats(B * T * 3 * C, s, 1.5), dout = randomFloats(B * T * C, s + 1);
          const pqkv = a.put(qkv), pout = a.floats(B * T * C), patt = a.floats(B * NH * T * T);
          expect(a.k.attention_scratch_floats(T, hs)).toBe(attentionScratchFloats(T, hs));
          const scratch = a.floats(attentionScratchFloats(T, hs));
          a.k.attention_forward(pout, patt, pqkv, B, T, C, NH, scratch);
          a.checkGuards();
          const want = attentionRef(qkv, B, T, C, NH);
          expectClose(a.read(pout, B * T * C), want.out, 1e-4, 1e-5, "out");
          expectClose(a.read(patt, B * NH * T * T), want.att, 1e-4, 1e-6, "att (zero above the diagonal)");
          const pd = a.floats(B * T * 3 * C);
          a.k.attention_backward(pd, a.put(dout), pqkv, patt, B, T, C, NH, scratch);
          a.checkGuards();
          expectClose(a.read(pd, B * T * 3 * C), attentionBackwardRef(dout, qkv, B, T, C, NH), 1e-3, 1e-4, "dqkv");
        }),
        { numRuns: 60 },
      );
    });

    test("the causal mask: a change at position p changes no output before p", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.nat(), seed, (T, NH, hs, pick, s) => {
          a.reset();
          const C = NH * hs;
          const p = 1 + (pick % (T - 1));
          const qkv = randomFloats(T * 3 * C, s);
          const changed = qkv.slice();
          for (let i = 0; i < 3 * C; i++) changed[p * 3 * C + i] += 0.5 + i; // q, k and v of position p
          const run = (input: Float32Array) => {
            const out = a.floats(T * C);
            a.k.attention_forward(out, a.floats(NH * T * T), a.put(input), 1, T, C, NH, a.floats(attentionScratchFloats(T, hs)));
            return a.read(out, T * C);
          };
          const before = run(qkv), after = run(changed);
          expect(Buffer.from(before.buffer, 0, p * C * 4).equals(Buffer.from(after.buffer, 0, p * C * 4))).toBe(true);
          expect(Buffer.from(before.buffer).equals(Buffer.from(after.buffer))).toBe(false);
        }),
        { numRuns: 60 },
      );
    });
  });
}
