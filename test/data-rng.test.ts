// The seeded PRNG: exact reference stream, derived-stream independence, and distribution sanity.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Rng } from "../engine/rng.ts";

describe("Rng", () => {
  test("xoshiro128** matches the reference outputs for state {1,2,3,4}", () => {
    // From the reference C implementation (Blackman & Vigna), first outputs for s = {1, 2, 3, 4}.
    const rng = Rng.fromState([1, 2, 3, 4]);
    const outputs = Array.from({ length: 6 }, () => rng.nextU32());
    expect(outputs).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test("same seed → same stream; state() round-trips", () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.nat(50), (seed, skip) => {
        const a = new Rng(seed);
        const b = new Rng(seed);
        for (let i = 0; i < skip; i++) expect(a.nextU32()).toBe(b.nextU32());
        const c = Rng.fromState(a.state());
        for (let i = 0; i < 10; i++) expect(c.nextU32()).toBe(a.nextU32());
      }),
    );
  });

  test("derive depends on every label, its type and its position", () => {
    const first = (r: Rng) => [r.nextU32(), r.nextU32()].join(",");
    const streams = [
      Rng.derive(7),
      Rng.derive(7, "epoch", 0),
      Rng.derive(7, "epoch", 1),
      Rng.derive(8, "epoch", 1),
      Rng.derive(7, "epoch", "1"),
      Rng.derive(7, "ab"),
      Rng.derive(7, "a", "b"),
      Rng.derive(7, 1, 2),
      Rng.derive(7, 2, 1),
      Rng.derive(7, 2 ** 32),
      Rng.derive(7, 0),
      Rng.derive(7, -1),
      Rng.derive(7, 0.5),
    ].map(first);
    expect(new Set(streams).size).toBe(streams.length);
    expect(first(Rng.derive(7, "epoch", 3))).toBe(first(Rng.derive(7, "epoch", 3)));
  });

  test("nextFloat in [0,1), int(n) in [0,n), both roughly uniform", () => {
    const rng = new Rng(123);
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const f = rng.nextFloat();
      expect(f >= 0 && f < 1).toBe(true);
      buckets[Math.floor(f * 10)]++;
    }
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500); // > 5 sigma
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 32 }), fc.integer(), (n, seed) => {
        const r = new Rng(seed);
        for (let i = 0; i < 20; i++) {
          const x = r.int(n);
          expect(Number.isInteger(x) && x >= 0 && x < n).toBe(true);
        }
      }),
    );
    expect(() => rng.int(0)).toThrow(RangeError);
  });

  test("normal, fillNormal and gamma have the right mean and variance", () => {
    const rng = new Rng(5);
    const n = 100_000;
    let s = 0;
    let ss = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.normal();
      s += x;
      ss += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(Math.abs(ss / n - 1)).toBeLessThan(0.03);

    const buf = new Float64Array(n + 1); // odd length exercises the tail
    rng.fillNormal(buf, 2, 3);
    const mean = buf.reduce((a, b) => a + b, 0) / buf.length;
    const variance = buf.reduce((a, b) => a + (b - mean) ** 2, 0) / buf.length;
    expect(Math.abs(mean - 2)).toBeLessThan(0.05);
    expect(Math.abs(variance - 9)).toBeLessThan(0.3);

    for (const shape of [0.1, 0.5, 1, 3.5]) {
      let g = 0;
      let gg = 0;
      const m = 40_000;
      for (let i = 0; i < m; i++) {
        const x = rng.gamma(shape);
        expect(x >= 0).toBe(true);
        g += x;
        gg += x * x;
      }
      const gm = g / m;
      expect(Math.abs(gm - shape) / shape).toBeLessThan(0.06); // Gamma(k,1): mean k, variance k
      expect(Math.abs(gg / m - gm * gm - shape) / shape).toBeLessThan(0.15);
    }
  });

  test("shuffleInPlace is a permutation, and every position sees every value", () => {
    fc.assert(
      fc.property(fc.nat(300), fc.integer(), (n, seed) => {
        const a = new Uint32Array(n).map((_, i) => i);
        new Rng(seed).shuffleInPlace(a);
        expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
      }),
    );
    const counts = Array.from({ length: 4 }, () => new Array(4).fill(0));
    const rng = new Rng(9);
    for (let t = 0; t < 8000; t++) {
      const a = rng.shuffleInPlace(new Uint32Array([0, 1, 2, 3]));
      a.forEach((v, pos) => counts[pos]![v]++);
    }
    for (const row of counts) for (const c of row) expect(Math.abs(c - 2000)).toBeLessThan(250);
  });
});
