/**
 * FLOP accounting: the count from the layers' shapes (composite layers included) against a count by
 * hand, the ceiling cache, and the ceiling a run measures between its epochs.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CeilingProbe, multiplyAddCeiling, probeAfter, probeMs } from "../engine/kernels/ceiling.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train } from "../engine/train.ts";
import { trainingFlopsPerSample } from "../engine/model/flops.ts";
import { Network } from "../engine/model/network.ts";
import { defaultCostTable } from "../engine/runtime/costs.ts";

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

  // Residual networks on 28×28×1 digits (He et al.'s CIFAR layout; every convolution 3×3, padding 1):
  // MACs of a convolution = Cout·Cin·K²·OH·OW per sample, Winograd counted as the direct convolution.
  //   stem 1→16 at 28×28:                      16·1·9·784  =   112 896  (first layer: no input gradient)
  //   block 1, 16→16 at 28×28: conv1 = conv2 = 16·16·9·784 = 1 806 336
  //   block 2, 16→32, stride 2 → 14×14: conv1 = 32·16·9·196 = 903 168, conv2 = 32·32·9·196 = 1 806 336
  //   block 3, 32→64, stride 2 → 7×7:   conv1 = 64·32·9·49  = 903 168, conv2 = 64·64·9·49  = 1 806 336
  //   option B adds each changing block's 1×1 projection: 32·16·196 = 64·32·49 = 100 352
  //   head 64→10: 640; batch norms, shortcuts' adds and pooling: no products.
  // Forward = weight gradient = the sum; input gradient = the sum without the stem.
  const resnetForward = 112_896 + 2 * 1_806_336 + (903_168 + 1_806_336) + (903_168 + 1_806_336) + 640;
  test("resnet:8 on 28×28×1 by hand", () => {
    expect(resnetForward).toBe(9_145_216);
    const flops = trainingFlopsPerSample(new Network("resnet:8", [1, 28, 28], 10));
    expect(flops.forward).toBe(2 * resnetForward);
    expect(flops.weightGradient).toBe(2 * resnetForward);
    expect(flops.inputGradient).toBe(2 * (resnetForward - 112_896));
    expect(flops.total).toBe(54_645_504);
  });

  test("resnet:8:b on 28×28×1 by hand: the two projections in all three products", () => {
    const projections = 2 * 100_352;
    const flops = trainingFlopsPerSample(new Network("resnet:8:b", [1, 28, 28], 10));
    expect(flops.forward).toBe(2 * (resnetForward + projections));
    expect(flops.weightGradient).toBe(2 * (resnetForward + projections));
    expect(flops.inputGradient).toBe(2 * (resnetForward - 112_896 + projections));
    expect(flops.total).toBe(54_645_504 + 6 * projections);
  });

  test("gpt:2-2-16-8 over 65 tokens by hand", () => {
    // Per sample, T = 8 positions of width E = 16, vocabulary V = 65:
    //   a block's dense maps qkv (E→3E), proj (E→E), fc (E→4E), fc2 (4E→E): T·12E² = 24 576 MACs,
    //     forward, input gradient and weight gradient alike;
    //   causal attention, Q·Kᵀ and att·V over the T(T+1)/2 visible pairs, width E over the heads:
    //     2·E·T(T+1)/2 = 1 152 MACs forward, twice that backward (d(att), dV, dQ, dK), no weights;
    //   the head E→V at every position: T·E·V = 8 320, all three products (the embedding below is trainable);
    //   the embedding and the layer norms: no products.
    const T = 8, E = 16, V = 65;
    const dense = T * 12 * E * E;
    const attention = E * T * (T + 1);
    const head = T * E * V;
    expect([dense, attention, head]).toEqual([24_576, 1_152, 8_320]);
    const flops = trainingFlopsPerSample(new Network("gpt:2-2-16-8", [1, 1, T + 1], V));
    expect(flops.forward).toBe(2 * (2 * (dense + attention) + head));
    expect(flops.inputGradient).toBe(2 * (2 * (dense + 2 * attention) + head));
    expect(flops.weightGradient).toBe(2 * (2 * dense + head));
    expect(flops.total).toBe(358_656);
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

describe("the ceiling a run measures", () => {
  test("a probe has no figure before its first window, then its best window's; windows are 3% of an epoch within [4, 100] ms, after every epoch but a first that is not the only one", async () => {
    const probe = await CeilingProbe.open();
    expect(probe.gflopsPerCore()).toBe(0);
    const first = probe.sample(1);
    expect(first).toBeGreaterThan(0);
    const second = probe.sample(1);
    expect(probe.gflopsPerCore()).toBe(Math.max(first, second));
    expect([probeMs(0), probeMs(1), probeMs(60)]).toEqual([4, 30, 100]);
    expect([0, 1, 2].map((e) => probeAfter(e, 3))).toEqual([false, true, true]);
    expect(probeAfter(0, 1)).toBe(true);
  });

  test("a run's summary divides by the ceiling it measured, not the cached one (no cache is made)", async () => {
    const before = process.env.XDG_CACHE_HOME;
    const cache = mkdtempSync(join(tmpdir(), "skein-cache-"));
    process.env.XDG_CACHE_HOME = cache;
    try {
      const summary = await train({
        algo: "sync", model: "mlp:784-16-10", data: "synthetic:256", epochs: 2, batch: 64, workers: 1,
        executor: "threads", seed: 1, optimizer: defaultOptimizer("sgd"),
      });
      const f = summary.flops!;
      expect(f.ceilingGflopsPerCore).toBeGreaterThan(0);
      expect(f.ofCeiling).toBeCloseTo(f.gflopsPerSec / f.ceilingGflopsPerCore, 12);
      expect(existsSync(join(cache, "skein", "ceiling.json"))).toBe(false);
    } finally {
      if (before === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = before;
    }
  });
});

describe("the cores a run's GFLOP/s are divided among", () => {
  const base = { algo: "sync", model: "mlp:784-16-10", data: "synthetic:256", epochs: 1, batch: 64, workers: 4, seed: 1, optimizer: defaultOptimizer("sgd") } as const;
  const cores = async (extra: Record<string, unknown>) => (await train({ ...base, ...extra } as Parameters<typeof train>[0])).flops!;

  test("the deterministic executor runs every program in one thread: one core", async () => {
    const f = await cores({ executor: "deterministic" });
    expect(f.cores).toBe(1);
    expect(f.ofCeiling).toBeCloseTo(f.gflopsPerSec / f.ceilingGflopsPerCore, 12);
  });

  test("a simulated run: its simulated machine's cores (one per program on the ideal machine, the table's on the measured one), not this host's", async () => {
    expect((await cores({ executor: "simulated", simulation: { machine: "ideal" } })).cores).toBe(4);
    expect((await cores({ executor: "simulated", workers: 8, simulation: { machine: "ideal" } })).cores).toBe(8);
    const measured = await cores({ executor: "simulated", simulation: { machine: "measured" } });
    expect(measured.cores).toBe(Math.min(4, defaultCostTable().machine.cores));
  });
});
