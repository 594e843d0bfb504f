/**
 * A backward split into I (input gradient) and W (weight gradient), as zero-bubble pipelines run it,
 * equals the fused backward bitwise: the input gradient, every parameter gradient, with accumulate
 * 0 and 1, for every layer kind with parameters and end to end through whole networks.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { GEMM_PACK_FLOATS } from "../engine/kernels/abi.ts";
import { Conv2d } from "../engine/model/conv2d.ts";
import { Dense, type Layer, type LayerBuffers, shapeSize } from "../engine/model/layers.ts";
import { BatchNorm2d, ResidualBlock } from "../engine/model/resnet.ts";
import { Embedding, LayerNormHead, TransformerBlock } from "../engine/model/gpt.ts";
import { Network } from "../engine/model/network.ts";
import { Rng } from "../engine/rng.ts";
import { floats, ints } from "./arbitraries.ts";
import { testMemory } from "./helpers.ts";

interface Case {
  layer: Layer;
  rows: number;
  x: Float32Array;
  params: Float32Array[];
  dy: Float32Array;
  /** What the gradients hold before the backward (it adds to them when accumulate = 1). */
  before: Float32Array[];
  accumulate: number;
}

function caseOf(layers: fc.Arbitrary<Layer>, rows: fc.Arbitrary<number>, input?: (layer: Layer, n: number) => fc.Arbitrary<Float32Array>): fc.Arbitrary<Case> {
  return fc.tuple(layers, rows).chain(([layer, rows]) => {
    const inF = rows * shapeSize(layer.inShape);
    const perParam = (scale: number) => fc.tuple(...layer.params.map((p) => floats(shapeSize(p.shape), scale)));
    return fc.record({
      layer: fc.constant(layer),
      rows: fc.constant(rows),
      x: input ? input(layer, inF) : floats(inF),
      params: perParam(0.5),
      dy: floats(rows * shapeSize(layer.outShape)),
      before: perParam(1),
      accumulate: fc.integer({ min: 0, max: 1 }),
    });
  });
}

/** Forward, then the fused backward on one copy of the buffers and I then W on another; returns both results. */
function runBoth(c: Case): { fused: Float32Array[]; split: Float32Array[] } {
  const { layer, rows } = c;
  const t = testMemory(32);
  const inF = rows * shapeSize(layer.inShape);
  const outF = rows * shapeSize(layer.outShape);
  let pack = 0;
  for (const g of layer.gemmShapes(rows)) pack = Math.max(pack, GEMM_PACK_FLOATS(g.M, g.K, g.N));
  const scratch = { pack: t.floats(pack), cols: t.floats(layer.colsFloats()), temp: t.floats(rows * (layer.tempFloatsPerSample ?? 0)) };
  const params = c.params.map((v) => t.put(v));
  const run = (split: boolean): Float32Array[] => {
    const x = t.put(c.x);
    const y = t.floats(outF);
    const z = layer.savedFloatsPerSample > 0 ? t.floats(rows * layer.savedFloatsPerSample) : y;
    const b: LayerBuffers = { x, y, z, argmax: 0, dx: layer.kind === "embedding" ? 0 : t.floats(inF), dy: t.floats(outF) };
    if (split) b.held = t.floats(rows * (layer.heldFloatsPerSample ?? 0));
    const grads = c.before.map((v) => t.put(v));
    layer.forward(t.k, params, b, rows, scratch);
    t.write(b.dy, c.dy);
    if (split) {
      layer.backwardInput!(t.k, params, b, rows, scratch);
      // Whatever the scratch holds between I and W (other layers' and microbatches' work) must not matter.
      t.write(scratch.temp, new Float32Array(rows * (layer.tempFloatsPerSample ?? 0)).fill(7));
      t.write(scratch.cols, new Float32Array(layer.colsFloats()).fill(-3));
      layer.backwardWeight!(t.k, grads, b, rows, c.accumulate, scratch);
    } else layer.backward(t.k, params, grads, b, rows, c.accumulate, scratch);
    return [...(b.dx !== 0 ? [t.read(b.dx, inF)] : []), ...grads.map((g, i) => t.read(g, c.before[i]!.length))];
  };
  return { fused: run(false), split: run(true) };
}

const bitwise = (c: Case) => {
  const { fused, split } = runBoth(c);
  expect(split.length).toBe(fused.length);
  fused.forEach((f, i) => expect(Buffer.from(split[i]!.buffer).equals(Buffer.from(f.buffer))).toBe(true));
};

const acts = fc.constantFrom("identity", "relu", "tanh", "gelu") as fc.Arbitrary<"identity" | "relu" | "tanh" | "gelu">;

describe("split backward: I then W equals the fused backward, bitwise", () => {
  test("dense", () => {
    fc.assert(fc.property(caseOf(fc.tuple(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 1, max: 23 }), acts).map(([i, o, a]) => new Dense(i, o, a)), fc.integer({ min: 1, max: 9 })), bitwise), { numRuns: 60 });
  });

  test("conv2d (with and without bias, strides, padding, 1×1)", () => {
    const conv = fc
      .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 3, max: 8 }), fc.integer({ min: 3, max: 8 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 1 }), fc.boolean(), acts)
      .map(([c, h, w, co, kernel, stride, pad, bias, act]) => new Conv2d([c, h, w], co, kernel, stride, pad, bias ? act : "identity", bias));
    fc.assert(fc.property(caseOf(conv, fc.integer({ min: 1, max: 3 })), bitwise), { numRuns: 60 });
  });

  test("batch norm (identity and fused relu)", () => {
    const bn = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.boolean()).map(([c, h, w, relu]) => new BatchNorm2d([c, h, w], relu ? "relu" : "identity"));
    fc.assert(fc.property(caseOf(bn, fc.integer({ min: 2, max: 4 })), bitwise), { numRuns: 40 });
  });

  // From 4 channels the 3×3 convolutions take the Winograd path, below it im2col: both are drawn.
  test("residual block (identity, option-A and option-B projection shortcuts; Winograd and im2col convolutions)", () => {
    const block = fc
      .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 4, max: 6 }), fc.constantFrom<1 | 2>(1, 2), fc.constantFrom<"A" | "B">("A", "B"))
      .map(([cin, grow, hw, stride, shortcut]) => new ResidualBlock([2 * cin, hw, hw], 2 * cin + 2 * grow, stride, shortcut));
    fc.assert(fc.property(caseOf(block, fc.integer({ min: 2, max: 3 })), bitwise), { numRuns: 25 });
  });

  test("transformer block, LayerNorm head and embedding", () => {
    const dims = fc.record({ T: fc.integer({ min: 1, max: 4 }), heads: fc.integer({ min: 1, max: 2 }), perHead: fc.integer({ min: 1, max: 4 }), vocab: fc.integer({ min: 2, max: 7 }) });
    const layers = dims.chain(({ T, heads, perHead, vocab }) =>
      fc.constantFrom<Layer>(new TransformerBlock(T, heads * perHead, heads, 2), new LayerNormHead(T, heads * perHead, vocab), new Embedding(vocab, T, heads * perHead)),
    );
    // The embedding reads token ids: draw ids below its vocabulary.
    const input = (layer: Layer, n: number) => (layer instanceof Embedding ? ints(n, layer.vocab).map((a) => Float32Array.from(a)) : floats(n));
    fc.assert(fc.property(caseOf(layers, fc.integer({ min: 1, max: 3 }), input), bitwise), { numRuns: 60 });
  });

  // Whole networks: I over every layer top-down (each I hands its dx to the layer below), then every W.
  test.each([
    ["mlp:12-9-7-5", [12], 5],
    ["mlp:6-8-3:gelu", [6], 3],
    ["lenet", [1, 28, 28], 10],
    ["resnet:8", [3, 8, 8], 4],
    ["resnet:8:b", [3, 8, 8], 4],
    ["gpt:2-2-8-4", [5], 6],
  ] as const)("%s end to end", (spec, shape, classes) => {
    const net = new Network(spec, shape, classes);
    const t = testMemory(64);
    const rows = 3;
    const params = t.floats(net.paramFloats);
    net.initialize(new Float32Array(t.memory.buffer, params, net.paramFloats), Rng.derive(7, "init"));
    const input = new Float32Array(rows * net.inputFloats).map((_, i) => (spec.startsWith("gpt") ? (i * 7) % classes : Math.sin(i * 0.37)));
    const labels = Int32Array.from({ length: rows }, (_, i) => i % classes);
    const first = net.trainableLayers[0]!;
    const run = (split: boolean) => {
      const ws = net.planWorkspace(t.planner, split ? "split" : "fused", rows, { splitBackward: split });
      t.write(ws.input, input);
      new Int32Array(t.memory.buffer, ws.labels, rows).set(labels);
      const grads = t.floats(net.paramFloats);
      const state = t.read(params, net.paramFloats); // batch norm's running statistics change in a forward: restore them
      net.forward(t.k, params, ws, rows);
      t.write(params, state);
      net.lossAndGradient(t.k, ws, rows, 1 / rows);
      if (split) {
        for (let l = net.layers.length - 1; l >= first; l--) net.backwardInputLayer(t.k, l, params, ws, rows);
        for (let l = net.layers.length - 1; l >= first; l--) net.backwardWeightLayer(t.k, l, grads, ws, rows, false);
      } else net.backward(t.k, params, grads, ws, rows, false);
      return { grads: t.read(grads, net.paramFloats) };
    };
    const fused = run(false);
    const split = run(true);
    expect(fused.grads.some((g) => g !== 0)).toBe(true);
    expect(Buffer.from(split.grads.buffer).equals(Buffer.from(fused.grads.buffer))).toBe(true);
  });
});
