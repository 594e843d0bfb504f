/**
 * FLOP accounting: the count from the layers' shapes against a count by hand, and the ceiling cache.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { multiplyAddCeiling } from "../engine/kernels/ceiling.ts";
import { trainingFlopsPerSample } from "../engine/model/flops.ts";
import { Network } from "../engine/model/network.ts";

describe("training FLOPs per sample", () => {
  test("mlp:784-256-128-10 by hand", () => {
    // Multiply-adds of the three products: 784·256 + 256·128 + 128·10 = 234 752.
    const macs = 784 * 256 + 256 * 128 + 128 * 10;
    const flops = trainingFlopsPerSample(new Network("mlp:784-256-128-10", [784], 10));
    expect(flops.forward).toBe(2 * macs);
    expect(flops.weightGradient).toBe(2 * macs);
    // The first layer's input gradient is never computed.
    expect(flops.inputGradient).toBe(2 * (256 * 128 + 128 * 10));
    expect(flops.total).toBe(1_007_104);
  });

  test("lenet on 28×28×1 by hand", () => {
    const conv1 = 6 * (1 * 5 * 5) * (28 * 28); // padding 2 keeps 28×28
    const conv2 = 16 * (6 * 5 * 5) * (10 * 10); // 14×14 after pooling → 10×10
    const dense = 400 * 120 + 120 * 84 + 84 * 10;
    const flops = trainingFlopsPerSample(new Network("lenet", [1, 28, 28], 10));
    expect(flops.forward).toBe(2 * (conv1 + conv2 + dense));
    expect(flops.weightGradient).toBe(2 * (conv1 + conv2 + dense));
    expect(flops.inputGradient).toBe(2 * (conv2 + dense));
    expect(flops.total).toBe(2_263_920);
  });
});

describe("multiply-add ceiling", () => {
  test("measured once, then read from the cache file", async () => {
    const before = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = mkdtempSync(join(tmpdir(), "skein-cache-"));
    try {
      const first = await multiplyAddCeiling();
      expect(first.cached).toBe(false);
      expect(first.gflopsPerCore).toBeGreaterThan(0);
      const second = await multiplyAddCeiling();
      expect(second).toEqual({ ...first, cached: true });
      const file = JSON.parse(readFileSync(join(process.env.XDG_CACHE_HOME, "skein", "ceiling.json"), "utf8"));
      expect(file[first.key]).toBe(first.gflopsPerCore);
    } finally {
      if (before === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = before;
    }
  });
});
