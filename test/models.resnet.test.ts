/**
 * Residual CNN layers by finite differences (batch norm in training mode, global average pooling,
 * residual blocks with identity, option-A and option-B shortcuts), the whole resnet's softmax-loss gradient,
 * the parameter layout algorithms rely on, and the batch-norm running-statistics policy.
 *
 * Checks are directional: for a random direction v, (L(θ+εv) − L(θ−εv)) / 2ε (extrapolated from ε
 * and ε/2) must match ⟨∇L, v⟩ with L = Σ y ⊙ r (so dy = r). ReLU is piecewise: ε shrinks until θ ± εv keep every ReLU input's
 * sign, and a sample with a kink closer than the smallest ε is skipped (counted, so a test that
 * skips everything fails).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { GEMM_PACK_FLOATS } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../engine/memory/arena.ts";
import { type Layer, type LayerBuffers, type Scratch, shapeSize } from "../engine/model/layers.ts";
import { Network } from "../engine/model/network.ts";
import { BatchNorm2d, BN_MOMENTUM, GlobalAvgPool, ResidualBlock } from "../engine/model/resnet.ts";
import { parseModelSpec } from "../engine/model/spec.ts";
import { Rng } from "../engine/rng.ts";
import { UserError } from "../engine/errors.ts";
import { dot, randomFloats, testMemory, type TestMemory } from "./helpers.ts";
import { directional } from "./finite-differences.ts";


/** The resnet tests try no step below 3·10⁻⁴: a sample with a kink closer than that is skipped (and counted). */
const EPSILONS = [1e-2, 3e-3, 1e-3, 3e-4];

const signs = (t: TestMemory | { memory: WebAssembly.Memory }, ptr: number, n: number) => Array.from(new Float32Array(t.memory.buffer, ptr, n), (v) => (v > 0 ? "1" : "0")).join("");

/** Every ReLU input's sign inside one layer (for composite layers: its inner ReLUs too). */
function layerSignature(t: { memory: WebAssembly.Memory }, layer: Layer, b: LayerBuffers, rows: number): string {
  const out = rows * shapeSize(layer.outShape);
  if (layer instanceof ResidualBlock) return signs(t, b.y, out) + "|" + signs(t, b.z + out * 4, out); // output and b1
  if (layer instanceof BatchNorm2d && layer.activation === "relu") return signs(t, b.y, out);
  return "";
}

/** Plans x, y, z, dx, dy and scratch for one layer; fills params from the seed (γ near 1). */
function layerRig(layer: Layer, rows: number, seed: number) {
  const t = testMemory(64);
  const inF = rows * shapeSize(layer.inShape);
  const outF = rows * shapeSize(layer.outShape);
  const x = t.put(randomFloats(inF, seed + 1));
  const y = t.floats(outF);
  const z = layer.savedFloatsPerSample > 0 ? t.floats(rows * layer.savedFloatsPerSample) : y;
  const buffers: LayerBuffers = { x, y, z, argmax: 0, dx: t.floats(inF), dy: t.floats(outF) };
  const params = layer.params.map((p, i) => {
    const values = randomFloats(shapeSize(p.shape), seed + 10 + i, 0.5);
    if (p.init === "ones") values.forEach((v, j) => (values[j] = 1 + v)); // γ and running var around 1
    return t.put(values);
  });
  const grads = layer.params.map((p) => t.put(randomFloats(shapeSize(p.shape), seed + 50))); // garbage: backward must overwrite
  let pack = 0;
  for (const g of layer.gemmShapes(rows)) pack = Math.max(pack, GEMM_PACK_FLOATS(g.M, g.K, g.N));
  const scratch: Scratch = { pack: t.floats(pack), cols: t.floats(layer.colsFloats()), temp: t.floats(rows * (layer.tempFloatsPerSample ?? 0)) };
  return { t, inF, outF, buffers, params, grads, scratch };
}

/** Finite differences of a layer in training mode; returns how many probes compared (vs skipped at kinks). */
function checkLayer(layer: Layer, rows: number, seed: number): number {
  const { t, inF, outF, buffers, params, grads, scratch } = layerRig(layer, rows, seed);
  const r = randomFloats(outF, seed + 2);
  const loss = (): number => {
    layer.forward(t.k, params, buffers, rows, scratch, true);
    return dot(t.read(buffers.y, outF), r);
  };
  loss();
  t.write(buffers.dy, r);
  layer.backward(t.k, params, grads, buffers, rows, 0, scratch);
  const analytic = { x: t.read(buffers.dx, inF), params: grads.map((g, i) => t.read(g, shapeSize(layer.params[i]!.shape))) };
  const signature = () => layerSignature(t, layer, buffers, rows);
  let compared = 0;
  const probe = (ptr: number, n: number, grad: Float32Array, what: string, dirSeed: number) => {
    const v = randomFloats(n, dirSeed);
    const numeric = directional(loss, signature, () => t.read(ptr, n), (values) => t.write(ptr, values), v, EPSILONS);
    if (numeric === null) return;
    compared++;
    const exact = dot(grad, v);
    const tol = 2e-2 * Math.max(1, Math.abs(exact));
    if (!(Math.abs(numeric - exact) <= tol)) throw new Error(`${layer.kind} d/d${what}: finite difference ${numeric} vs backward ${exact}`);
  };
  probe(buffers.x, inF, analytic.x, "x", seed + 3);
  params.forEach((p, i) => probe(p, shapeSize(layer.params[i]!.shape), analytic.params[i]!, layer.params[i]!.name, seed + 4 + i));
  // Running statistics: no gradient (training forwards never read them).
  layer.params.forEach((p, i) => {
    if (p.trainable === false) expect(Array.from(analytic.params[i]!).every((g) => g === 0)).toBe(true);
  });
  return compared;
}

const seeds = fc.integer({ min: 1, max: 1e6 });

describe("residual CNN layers by finite differences (training mode)", () => {
  test("batch norm, with and without its fused relu, odd channel counts and map sizes", () => {
    let compared = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 4 }), fc.boolean(), seeds, (c, h, w, rows, relu, seed) => {
        compared += checkLayer(new BatchNorm2d([c, h, w], relu ? "relu" : "identity"), rows, seed);
      }),
      { numRuns: 25 },
    );
    expect(compared).toBeGreaterThan(25 * 3);
  });

  test("global average pooling", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), seeds, (c, h, w, seed) => {
        expect(checkLayer(new GlobalAvgPool([c, h, w]), 3, seed)).toBe(1);
      }),
      { numRuns: 15 },
    );
  });

  test("residual blocks: identity shortcut, and option A (stride 2, zero-padded channels), odd sizes, both convolution paths", () => {
    let compared = 0;
    let tried = 0;
    const paths = new Set<boolean>();
    // At least 2 channels, as for option B below: one channel's batch norm cancels its convolution's
    // weight scale, and a random weight near 0 leaves the loss too curved for an f32 central difference.
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.constantFrom(0, 1, 2), fc.integer({ min: 3, max: 7 }), fc.integer({ min: 3, max: 7 }), fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>, seeds, (cin, grow, h, w, stride, seed) => {
        tried += 12;
        const block = new ResidualBlock([cin, h, w], cin + 2 * grow, stride);
        paths.add(block.conv1.winograd).add(block.conv2.winograd);
        compared += checkLayer(block, 2, seed);
      }),
      { numRuns: 20 },
    );
    expect(compared).toBeGreaterThan(tried / 2);
    expect([...paths].sort()).toEqual([false, true]); // im2col and Winograd both checked
  });

  test("residual blocks with option-B projection shortcuts (1×1 convolution with the stride, batch norm), any channel change", () => {
    let compared = 0;
    let tried = 0;
    // At least 2 input channels: from one, the projection's channel c is w_c·x and its batch norm
    // cancels w_c's scale, so with a random |w_c| ≈ 0.01 (variance near ε) the loss bends too fast
    // in w_c for an f32 central difference (seen: 3% off at cin = 1 in 1 case of ~100).
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 3, max: 7 }), fc.integer({ min: 3, max: 7 }), fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>, seeds, (cin, grow, h, w, stride, seed) => {
        const block = new ResidualBlock([cin, h, w], cin + grow, stride, "B");
        expect(block.projection !== undefined).toBe(grow > 0 || stride === 2);
        tried += block.params.filter((p) => p.trainable !== false).length + 1;
        compared += checkLayer(block, 2, seed);
      }),
      { numRuns: 20 },
    );
    expect(compared).toBeGreaterThan(tried / 2);
  });

  test("a shape the option-A shortcut cannot pad is refused", () => {
    expect(() => new ResidualBlock([3, 8, 8], 4, 2)).toThrow(/even channel increase/);
  });
});

const module = (await loadKernelModule()).module;

/** A network on real planned buffers: parameters initialised from the seed, a random batch with labels. */
function setupNetwork(spec: string, shape: number[], classes: number, rows: number, seed: number) {
  const net = new Network(spec, shape, classes);
  const planner = new ArenaPlanner();
  const params = planner.floats("parameters", "p", net.paramFloats);
  const grads = planner.floats("gradients", "g", net.paramFloats);
  const ws = net.planWorkspace(planner, "w", rows);
  const memory = createSharedMemory(planner.finish());
  const k = instantiateKernels(module, memory);
  net.initialize(f32(memory, params, net.paramFloats), Rng.derive(seed, "init"));
  f32(memory, ws.input, rows * net.inputFloats).set(randomFloats(rows * net.inputFloats, seed));
  const labels = new Int32Array(memory.buffer, ws.labels, rows);
  for (let i = 0; i < rows; i++) labels[i] = (seed + i * 7) % classes;
  return { net, k, memory, params, grads, ws };
}

describe("resnet networks", () => {
  test.each(["resnet:8", "resnet:8:b"])("%s's softmax-loss gradient (training mode) matches finite differences in every tensor", (spec) => {
    const rows = 3;
    const { net, k, memory, params, grads, ws } = setupNetwork(spec, [2, 7, 5], 4, rows, 11);
    net.gradient(k, params, grads, ws, rows, 1 / rows);
    const g = f32(memory, grads, net.paramFloats).slice();
    const p = f32(memory, params, net.paramFloats);
    const loss = () => {
      net.forward(k, params, ws, rows, true);
      return k.softmax_xent(0, net.logits(ws), ws.labels, rows, 4, 0) / rows;
    };
    const signature = () => net.layers.map((l, i) => layerSignature({ memory }, l, ws.layers[i]!, rows)).join("/");
    let compared = 0;
    let trainableTensors = 0;
    for (const [li, layer] of net.params.entries()) {
      for (const [ti, t] of layer.tensors.entries()) {
        if (net.layers[li]!.params[ti]!.trainable === false) {
          expect(Array.from(g.subarray(t.offset, t.offset + t.floats)).every((v) => v === 0)).toBe(true);
          continue;
        }
        trainableTensors++;
        const v = new Float32Array(net.paramFloats);
        const dir = randomFloats(t.floats, t.offset + 1);
        v.set(dir, t.offset);
        const numeric = directional(loss, signature, () => p.slice(), (values) => p.set(values), v, EPSILONS);
        if (numeric === null) continue;
        compared++;
        const exact = dot(g.subarray(t.offset, t.offset + t.floats), dir);
        expect({ tensor: t.name, ok: Math.abs(numeric - exact) <= 3e-3 + 2e-2 * Math.abs(exact) }).toEqual({ tensor: t.name, ok: true });
      }
    }
    expect(compared).toBeGreaterThan(trainableTensors * 0.6);
  });

  test("resnet:N layout: 6n + 2 weighted layers, blocks as units, per-tensor names, BN initialised γ = 1, running var = 1", () => {
    for (const [depth, n] of [[8, 1], [20, 3], [32, 5]] as const) {
      const net = new Network(`resnet:${depth}`, [3, 32, 32], 10);
      expect(net.layers.map((l) => l.kind)).toEqual(["conv2d", "batchnorm", ...Array(3 * n).fill("resblock"), "avgpool", "dense"]);
      const convs = 1 + net.layers.filter((l) => l.kind === "resblock").length * 2 + 1; // stem, 2 per block, head
      expect(convs).toBe(depth);
      expect(net.layers.at(-3)!.outShape).toEqual([64, 8, 8]);
      // Regions: contiguous, one per layer, in order (layer-wise updates and pipeline cuts address them).
      let end = 0;
      for (const region of net.params) {
        expect(region.offset).toBe(end);
        end = region.offset + region.floats;
      }
      expect(end).toBe(net.paramFloats);
      expect(net.trainableLayers).toEqual([0, 1, ...Array.from({ length: 3 * n }, (_, i) => 2 + i), 3 * n + 3]);
    }
    const net = new Network("resnet:8", [1, 28, 28], 10);
    expect(net.layers.at(-3)!.outShape).toEqual([64, 7, 7]);
    const names = net.params.flatMap((l) => l.tensors.map((t) => t.name));
    expect(names).toContain("layers.2.resblock.conv1.weight");
    expect(names).toContain("layers.4.resblock.bn2.running_var");
    expect(names.some((n) => n.includes("shortcut"))).toBe(false);
    // Option B: the two downsampling blocks (layers 3 and 4 of resnet:8) carry a projection and its batch norm, the first block none.
    const b = new Network("resnet:8:b", [1, 28, 28], 10);
    const bNames = b.params.flatMap((l) => l.tensors.map((t) => t.name));
    expect(bNames.filter((n) => n.includes("shortcut"))).toEqual([3, 4].flatMap((i) => ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"].map((t) => `layers.${i}.resblock.shortcut.${t}`)));
    expect(b.paramFloats - net.paramFloats).toBe(16 * 32 + 4 * 32 + 32 * 64 + 4 * 64);
    const p = new Float32Array(net.paramFloats);
    net.initialize(p, Rng.derive(1, "init"));
    const tensor = (name: string) => net.params.flatMap((l) => l.tensors).find((t) => t.name === name)!;
    const values = (name: string) => Array.from(p.subarray(tensor(name).offset, tensor(name).offset + tensor(name).floats));
    expect(values("layers.1.batchnorm.weight").every((v) => v === 1)).toBe(true);
    expect(values("layers.3.resblock.bn1.bias").every((v) => v === 0)).toBe(true);
    expect(values("layers.3.resblock.bn2.running_mean").every((v) => v === 0)).toBe(true);
    expect(values("layers.3.resblock.bn2.running_var").every((v) => v === 1)).toBe(true);
    // He-normal convolutions: std ≈ √(2/fanIn), fanIn = 16·3·3 inside stage 1.
    const w = values("layers.2.resblock.conv2.weight");
    const std = Math.sqrt(w.reduce((a, b) => a + b * b, 0) / w.length);
    expect(Math.abs(std - Math.sqrt(2 / 144))).toBeLessThan(0.1 * Math.sqrt(2 / 144));
  });

  test("bad resnet specs and data are refused with one clear line", () => {
    for (const bad of ["resnet", "resnet:7", "resnet:21", "resnet:x", "resnet:20:9", "resnet:20:c", "resnet:20:b:b"]) expect(() => parseModelSpec(bad)).toThrow(UserError);
    expect(() => new Network("resnet:8", [784], 10)).toThrow(/needs image data/);
    expect(() => new Network("resnet:8", [1, 3, 3], 10)).toThrow(/at least 4×4/);
  });

  test("running statistics: training forwards fold batch statistics in; evaluation reads them and writes nothing", () => {
    const rows = 6;
    const { net, k, memory, params, ws } = setupNetwork("resnet:8", [1, 6, 6], 3, rows, 5);
    const p = f32(memory, params, net.paramFloats);
    const stem = net.params[1]!; // the stem's batch norm: weight, bias, running_mean, running_var
    const [, , rm, rv] = stem.tensors as [unknown, unknown, { offset: number; floats: number }, { offset: number; floats: number }];
    const read = (t: { offset: number; floats: number }) => Array.from(p.subarray(t.offset, t.offset + t.floats));
    // Evaluation: no change anywhere in the parameter vector.
    const before = p.slice();
    net.forward(k, params, ws, rows, false);
    expect(Buffer.from(p.slice().buffer).equals(Buffer.from(before.buffer))).toBe(true);
    // Training forward on one batch: running = (1 − m)·running + m·batch statistics of the stem conv's output.
    net.forward(k, params, ws, rows, true);
    const a = f32(memory, ws.layers[0]!.y, rows * 16 * 36);
    const batchMean = Array.from({ length: 16 }, (_, c) => {
      let s = 0;
      for (let n = 0; n < rows; n++) for (let i = 0; i < 36; i++) s += a[(n * 16 + c) * 36 + i]!;
      return s / (rows * 36);
    });
    read(rm).forEach((v, c) => expect(v).toBeCloseTo(BN_MOMENTUM * batchMean[c]!, 5));
    // Repeated training forwards on the same batch converge to its statistics; then evaluation ≈ training.
    for (let i = 0; i < 200; i++) net.forward(k, params, ws, rows, true);
    read(rm).forEach((v, c) => expect(v).toBeCloseTo(batchMean[c]!, 4));
    expect(read(rv).every((v) => v > 0)).toBe(true);
    const logitsTrain = f32(memory, net.logits(ws), rows * 3).slice();
    net.forward(k, params, ws, rows, false);
    const logitsEval = f32(memory, net.logits(ws), rows * 3).slice();
    // (unbiased running variance vs the biased batch variance: close, not equal)
    logitsEval.forEach((v, i) => expect(Math.abs(v - logitsTrain[i]!)).toBeLessThan(0.05 * (1 + Math.abs(logitsTrain[i]!))));
  });
});
