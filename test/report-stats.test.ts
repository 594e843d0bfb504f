/**
 * The statistics behind the report's comparisons: Student's t quantiles against printed tables and
 * closed forms, the paired t-interval and sign test on hand-computed cases; aggregation over seeds
 * against an independent reference on fast-check-generated run sets (one seed, missing epochs,
 * diverged runs); and claims whose data clearly hold, clearly fail, or overlap.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { maxOf, minOf, pairedTInterval, signTest, spread, studentTCdf, studentTQuantile } from "../engine/report/stats.ts";
import { aggregate, metricOf, timeToTarget, type CurvePoint, type RunRecord } from "../engine/report/aggregate.ts";
import { decide, evaluateClaim, verdictText, type Claim } from "../engine/report/claims.ts";

// Property tests need more than Bun's 5 s on a busy machine (see test/setup.ts).

describe("Student's t", () => {
  // Two-sided 95% (p = 0.975), 90% (0.95) and 99% (0.995) critical values as printed in any t table (3 decimals).
  const TABLE: [number, number, number][] = [
    [0.975, 1, 12.706], [0.975, 2, 4.303], [0.975, 3, 3.182], [0.975, 4, 2.776], [0.975, 5, 2.571], [0.975, 6, 2.447],
    [0.975, 9, 2.262], [0.975, 10, 2.228], [0.975, 20, 2.086], [0.975, 30, 2.042], [0.975, 60, 2.0], [0.975, 120, 1.98],
    [0.95, 1, 6.314], [0.95, 2, 2.92], [0.95, 5, 2.015], [0.95, 10, 1.812], [0.95, 30, 1.697],
    [0.995, 1, 63.657], [0.995, 2, 9.925], [0.995, 4, 4.604], [0.995, 10, 3.169], [0.995, 30, 2.75],
  ];
  test.each(TABLE)("quantile(%p, df %p) = %p as in the table", (p, df, value) => {
    expect(Math.abs(studentTQuantile(p, df) - value)).toBeLessThan(5e-4);
    expect(Math.abs(studentTQuantile(1 - p, df) + value)).toBeLessThan(5e-4);
  });

  test("tends to the normal quantile 1.959964 as df grows", () => {
    expect(Math.abs(studentTQuantile(0.975, 1e7) - 1.959964)).toBeLessThan(1e-5);
  });

  test("matches the closed forms at df = 1 (Cauchy) and df = 2", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.001, max: 0.999, noNaN: true }), (p) => {
        const cauchy = Math.tan(Math.PI * (p - 0.5));
        const two = (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
        expect(Math.abs(studentTQuantile(p, 1) - cauchy)).toBeLessThan(1e-8 * Math.max(1, Math.abs(cauchy)));
        expect(Math.abs(studentTQuantile(p, 2) - two)).toBeLessThan(1e-8 * Math.max(1, Math.abs(two)));
      }),
    );
  });

  test("quantile inverts the CDF", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 0.99, noNaN: true }), fc.integer({ min: 1, max: 200 }), (p, df) => {
        expect(Math.abs(studentTCdf(studentTQuantile(p, df), df) - p)).toBeLessThan(1e-9);
      }),
    );
  });
});

describe("spread, paired t-interval, sign test", () => {
  test("known values", () => {
    const s = spread([2, 4, 4, 4, 5, 5, 7, 9])!;
    expect(s.mean).toBe(5);
    expect(s.std).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect([s.min, s.max, s.n]).toEqual([2, 9, 8]);
    expect(spread([3])).toEqual({ n: 1, mean: 3, std: 0, min: 3, max: 3 });
    expect(spread([])).toBeUndefined();
    expect(spread([1, Infinity, -Infinity, NaN])!.n).toBe(1);
  });

  test("maxOf/minOf take arrays past the engine's argument limit (Math.max(...xs) overflows at ~1e6)", () => {
    const xs = Float64Array.from({ length: 2_000_000 }, (_, i) => (i * 7919) % 1_000_003);
    expect(maxOf(xs as unknown as number[])).toBe(1_000_002);
    expect(minOf(xs as unknown as number[])).toBe(0);
    expect(maxOf([])).toBe(-Infinity);
    expect(Number.isNaN(maxOf([1, NaN, 2]))).toBe(true);
  });

  test("paired t-interval of 1..5: 3 ± 2.776 · √2.5/√5", () => {
    const t = pairedTInterval([1, 2, 3, 4, 5])!;
    const half = 2.7764451 * Math.sqrt(2.5 / 5);
    expect(t.lo).toBeCloseTo(3 - half, 6);
    expect(t.hi).toBeCloseTo(3 + half, 6);
    expect(pairedTInterval([1])).toBeUndefined();
  });

  test("exact sign test p-values", () => {
    expect(signTest([1, 1, 1, 1, 1]).p).toBeCloseTo(2 / 32, 12);
    expect(signTest([1, 1, 1, 1, 1, 1]).p).toBeCloseTo(2 / 64, 12);
    expect(signTest([1, 1, 1, 1, 1, 1, 1, 1, -1, -1]).p).toBeCloseTo((2 * (1 + 10 + 45)) / 1024, 12);
    expect(signTest([Infinity, 2, 0, -1])).toEqual({ plus: 2, minus: 1, ties: 1, p: 1 });
    expect(signTest([0, 0]).p).toBe(1);
  });
});

// ---- aggregation over generated run sets -------------------------------------------------------------

interface GenRun {
  method: number;
  seed: number;
  /** Accuracy per epoch; null = the epoch is missing from metrics.jsonl. */
  accs: (number | null)[];
  diverged: boolean;
  samplesPerSec: number;
}

const genRun = fc.record({
  method: fc.integer({ min: 0, max: 3 }),
  seed: fc.integer({ min: 1, max: 6 }),
  accs: fc.array(fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: null, freq: 5 }), { minLength: 0, maxLength: 6 }),
  diverged: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  samplesPerSec: fc.double({ min: 1, max: 1e5, noNaN: true }),
});

function toRecord(g: GenRun, i: number): RunRecord {
  const curve: CurvePoint[] = g.accs.flatMap((a, e) => (a === null ? [] : [{ epoch: e + 1, testAccuracy: a, elapsedSeconds: (e + 1) * 2 }]));
  const last = [...curve].reverse()[0];
  return {
    method: `m${g.method}`,
    label: `m${g.method} run ${i}`,
    seed: g.seed,
    ...(g.diverged ? { diverged: "loss NaN" } : {}),
    final: g.diverged ? {} : { finalAccuracy: last?.testAccuracy ?? 0.1, samplesPerSec: g.samplesPerSec },
    curve,
  };
}

/** The reference: one-pass sums, written independently of spread(). */
function reference(xs: number[]) {
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const sumSq = xs.reduce((a, x) => a + x * x, 0);
  const std = n > 1 ? Math.sqrt(Math.max(0, (sumSq - n * mean * mean) / (n - 1))) : 0;
  return { n, mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

describe("aggregate", () => {
  test("per method: counts every run (diverged too), and mean, sd, min, max of the finished ones", () => {
    fc.assert(
      fc.property(fc.array(genRun, { minLength: 1, maxLength: 24 }), fc.double({ min: 0.05, max: 0.95, noNaN: true }), (gens, target) => {
        const records = gens.map(toRecord);
        const methods = aggregate(records, target);
        expect(methods.reduce((a, m) => a + m.runs, 0)).toBe(records.length);
        for (const m of methods) {
          const own = records.filter((r) => r.method === m.method);
          const done = own.filter((r) => r.diverged === undefined);
          expect([m.runs, m.finished, m.diverged]).toEqual([own.length, done.length, own.length - done.length]);
          expect(m.divergedRuns.length).toBe(m.diverged);
          const accs = done.map((r) => r.final.finalAccuracy!);
          if (accs.length === 0) expect(m.metrics.finalAccuracy).toBeUndefined();
          else {
            const ref = reference(accs);
            const got = m.metrics.finalAccuracy!;
            expect(got.n).toBe(ref.n);
            expect(got.mean).toBeCloseTo(ref.mean, 9);
            expect(got.std).toBeCloseTo(ref.std, 6);
            expect([got.min, got.max]).toEqual([ref.min, ref.max]);
            if (ref.n === 1) expect(got.std).toBe(0);
          }
          // Time to target: over the runs that reached it; diverged and never-reached runs are not reached.
          const times = own.map((r) => (r.diverged ? Infinity : timeToTarget(r.curve, target)));
          expect(m.reached).toBe(times.filter(Number.isFinite).length);
          for (const r of own) {
            const first = r.curve.find((p) => p.testAccuracy! >= target);
            expect(metricOf(r, "timeToTarget", target)).toBe(r.diverged ? Infinity : first ? first.elapsedSeconds! : Infinity);
          }
          // Curves: each epoch averages the runs that recorded it (missing epochs and diverged tails leave it).
          for (const c of m.curve) {
            const at = own.flatMap((r) => r.curve.filter((p) => p.epoch === c.epoch).map((p) => p.testAccuracy!));
            expect(c.n).toBe(at.length);
            expect(c.testAccuracy!.mean).toBeCloseTo(reference(at).mean, 9);
            expect([c.testAccuracy!.min, c.testAccuracy!.max]).toEqual([Math.min(...at), Math.max(...at)]);
          }
          const epochs = new Set(own.flatMap((r) => r.curve.map((p) => p.epoch)));
          expect(m.curve.map((c) => c.epoch)).toEqual([...epochs].sort((a, b) => a - b));
        }
      }),
    );
  });

  test("a known set: 3 seeds of A, one diverged", () => {
    const run = (seed: number, acc: number | null): RunRecord => ({
      method: "A",
      label: `A ${seed}`,
      seed,
      ...(acc === null ? { diverged: "NaN" } : {}),
      final: acc === null ? {} : { finalAccuracy: acc },
      curve: acc === null ? [{ epoch: 1, testAccuracy: 0.5, elapsedSeconds: 1 }] : [{ epoch: 1, testAccuracy: 0.5, elapsedSeconds: 1 }, { epoch: 2, testAccuracy: acc, elapsedSeconds: 2 }],
    });
    const [a] = aggregate([run(1, 0.9), run(2, null), run(3, 0.8)], 0.85);
    expect([a!.runs, a!.finished, a!.diverged, a!.reached]).toEqual([3, 2, 1, 1]);
    expect(a!.metrics.finalAccuracy!.mean).toBeCloseTo(0.85, 12);
    expect(a!.metrics.finalAccuracy!.std).toBeCloseTo(Math.sqrt(0.005), 12);
    expect(a!.curve.map((c) => c.n)).toEqual([3, 2]);
    expect(a!.metrics.timeToTarget).toEqual({ n: 1, mean: 2, std: 0, min: 2, max: 2 });
  });
});

// ---- claims --------------------------------------------------------------------------------------------

const greater: Claim = { text: "A beats B", metric: "finalAccuracy", a: "A", b: "B", relation: ">" };

/** Runs of A and B with these final accuracies, seed i for the i-th of each. */
function pair(as: (number | null)[], bs: (number | null)[]): RunRecord[] {
  const run = (method: string, seed: number, acc: number | null): RunRecord => ({
    method,
    label: `${method} ${seed}`,
    seed,
    ...(acc === null ? { diverged: "NaN" } : {}),
    final: acc === null ? {} : { finalAccuracy: acc },
    curve: acc === null ? [] : [{ epoch: 1, testAccuracy: acc, elapsedSeconds: 10 * (1 - acc) }],
  });
  return [...as.map((a, i) => run("A", i + 1, a)), ...bs.map((b, i) => run("B", i + 1, b))];
}

describe("claims", () => {
  test("clearly holds, clearly fails, overlaps", () => {
    const holds = evaluateClaim(greater, pair([0.95, 0.96, 0.955], [0.9, 0.91, 0.905]));
    expect(holds.verdict).toBe("holds");
    expect(holds.decidedBy).toBe("paired t-interval");
    expect(holds.difference!.mean).toBeCloseTo(0.05, 12);
    const fails = evaluateClaim(greater, pair([0.9, 0.91, 0.905], [0.95, 0.96, 0.955]));
    expect(fails.verdict).toBe("does not hold");
    const overlap = evaluateClaim(greater, pair([0.95, 0.9, 0.93], [0.9, 0.95, 0.93]));
    expect(overlap.verdict).toBe("inconclusive");
    expect(verdictText(overlap)).toBe("inconclusive at n = 3");
    // Identical on every seed: "A > B" does not hold, "A ≥ B" does.
    expect(evaluateClaim(greater, pair([0.9, 0.91, 0.92], [0.9, 0.91, 0.92])).verdict).toBe("does not hold");
    expect(evaluateClaim({ ...greater, relation: ">=" }, pair([0.9, 0.91, 0.92], [0.9, 0.91, 0.92])).verdict).toBe("holds");
    // One seed: no spread, no verdict.
    expect(evaluateClaim(greater, pair([0.99], [0.1])).verdict).toBe("inconclusive");
  });

  test("≥ with a tolerance: a small shortfall inside it holds, a large one does not", () => {
    const atLeast: Claim = { ...greater, relation: ">=", tolerance: 0.01 };
    expect(evaluateClaim(atLeast, pair([0.9, 0.91, 0.92, 0.93], [0.902, 0.912, 0.921, 0.932])).verdict).toBe("holds");
    expect(evaluateClaim(atLeast, pair([0.9, 0.91, 0.92, 0.93], [0.93, 0.94, 0.951, 0.96])).verdict).toBe("does not hold");
  });

  test("lower-is-better claims and infinite pairs go to the sign test", () => {
    const sooner: Claim = { text: "A reaches 0.9 before B", metric: "timeToTarget", a: "A", b: "B", relation: "<" };
    // A reaches the target in every seed, B in none (diverged or stuck below): 6 of 6 seeds, p = 1/32.
    const r = evaluateClaim(sooner, pair([0.95, 0.95, 0.95, 0.95, 0.95, 0.95], [null, 0.5, null, 0.5, 0.5, 0.5]), 0.9);
    expect(r.decidedBy).toBe("sign test");
    expect(r.sign.plus).toBe(6);
    expect(r.sign.p).toBeCloseTo(1 / 32, 12);
    expect(r.verdict).toBe("holds");
    const against = evaluateClaim({ ...sooner, a: "B", b: "A" }, pair([0.95, 0.95, 0.95, 0.95, 0.95, 0.95], [null, 0.5, null, 0.5, 0.5, 0.5]), 0.9);
    expect(against.verdict).toBe("does not hold");
    // Three seeds cannot reach p < 0.05 by signs alone.
    expect(evaluateClaim(sooner, pair([0.95, 0.95, 0.95], [null, 0.5, 0.5]), 0.9).verdict).toBe("inconclusive");
    // Unless the finite pairs' t-interval decides and the infinite pair agrees: A sooner on seeds 1–3
    // by 0.3–0.5 s (times 10 · (1 − acc)), B never on seed 4.
    const agree = evaluateClaim(sooner, pair([0.95, 0.96, 0.97, 0.95], [0.92, 0.91, 0.93, 0.5]), 0.9);
    expect([agree.verdict, agree.decidedBy]).toEqual(["holds", "paired t-interval"]);
    expect(agree.reason).toContain("over 3 finite pairs, 1 infinite pair on the same side");
    // An infinite pair against the interval sends it back to the sign test.
    const disagree = evaluateClaim(sooner, pair([0.95, 0.96, 0.97, 0.5], [0.92, 0.91, 0.93, 0.92]), 0.9);
    expect([disagree.verdict, disagree.decidedBy]).toEqual(["inconclusive", "sign test"]);
  });

  test("property: shifted differences decide as their interval says", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 12 }), fc.double({ min: -5, max: 5, noNaN: true }), (noise, shift) => {
        const d = noise.map((e) => shift + e * 0.1);
        const r = decide(greater, d);
        const t = pairedTInterval(d)!;
        const expected = t.lo > 0 ? "holds" : t.hi <= 0 ? "does not hold" : "inconclusive";
        expect(r.verdict).toBe(expected);
        // Flipping the relation and the differences gives the same verdict.
        expect(decide({ ...greater, relation: "<" }, d.map((x) => -x)).verdict).toBe(expected);
      }),
    );
  });
});
