/**
 * Every layer's backward against finite differences of its forward.
 *
 * The check is directional: for a generated direction v, (L(θ+εv) − L(θ−εv)) / 2ε must match ⟨∇L, v⟩,
 * with L = Σ y ⊙ r for a generated r (so dy = r). Directional checks see every coordinate at once and are
 * robust to f32 rounding; a wrong index anywhere in a backward shows up as a mismatch.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Conv2d } from "../engine/model/conv2d.ts";
import { Activation, Dense, Flatten, Pool2d, type Layer, type LayerBuffers, shapeSize } from "../engine/model/layers.ts";
import { GEMM_PACK_FLOATS } from "../engine/kernels/abi.ts";
import { Network } from "../engine/model/network.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../engine/memory/arena.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { Rng } from "../engine/rng.ts";
import { floats } from "./arbitraries.ts";
import { dot, randomFloats, testMemory } from "./helpers.ts";
import { directional } from "./finite-differences.ts";

/**
 * Relu and max-pool are piecewise: a finite difference that crosses a kink (a pre-activation changing
 * sign, a pooling window changing winner) measures a different piece. The regime is the sign pattern
 * of every relu input and every max-pool winner; ε shrinks until θ±εv stay in θ's regime.
 */
function regime(memory: WebAssembly.Memory, layers: Layer[], buffers: LayerBuffers[], rows: number): string {
  const parts: string[] = [];
  layers.forEach((layer, i) => {
    const b = buffers[i]!;
    const act = (layer as { activation?: string }).activation;
    if (act === "relu") {
      const n = rows * shapeSize(layer.kind === "relu" ? layer.inShape : layer.outShape);
      const z = new Float32Array(memory.buffer, layer.kind === "relu" ? b.x : b.z, n);
      parts.push(Array.from(z, (v) => (v > 0 ? "1" : "0")).join(""));
    }
    if (layer.kind === "maxpool") parts.push(new Int32Array(memory.buffer, b.argmax, rows * layer.argmaxPerSample).join(","));
  });
  return parts.join("|");
}

/** A layer's test data: input, parameters, the loss weights r, and a probe direction for each. */
interface LayerCase {
  layer: Layer;
  rows: number;
  x: Float32Array;
  params: Float32Array[];
  r: Float32Array;
  dirX: Float32Array;
  dirParams: Float32Array[];
}

/** A layer and a row count, then data of its shapes: a failure shrinks the layer and the numbers. */
function layerCase(layers: fc.Arbitrary<Layer>, rows: fc.Arbitrary<number>): fc.Arbitrary<LayerCase> {
  return fc.tuple(layers, rows).chain(([layer, rows]) => {
    const inF = rows * shapeSize(layer.inShape);
    const outF = rows * shapeSize(layer.outShape);
    const perParam = (scale: number) => fc.tuple(...layer.params.map((p) => floats(shapeSize(p.shape), scale)));
    return fc.record({ layer: fc.constant(layer), rows: fc.constant(rows), x: floats(inF), params: perParam(0.5), r: floats(outF), dirX: floats(inF), dirParams: perParam(1) });
  });
}

function checkLayer({ layer, rows, x: xValues, params: paramValues, r, dirX, dirParams }: LayerCase): void {
  const t = testMemory(32);
  const inF = rows * shapeSize(layer.inShape);
  const outF = rows * shapeSize(layer.outShape);
  const x = t.put(xValues);
  const y = layer.aliasesInput ? x : t.floats(outF);
  const z = layer.savedFloatsPerSample > 0 ? t.floats(rows * layer.savedFloatsPerSample) : y;
  const argmax = layer.argmaxPerSample > 0 ? t.floats(rows * layer.argmaxPerSample) : 0;
  const dx = t.floats(inF);
  const dy = layer.aliasesInput ? dx : t.floats(outF);
  const buffers: LayerBuffers = { x, y, z, argmax, dx, dy };
  const params = paramValues.map((values) => t.put(values));
  const grads = layer.params.map((p) => t.floats(shapeSize(p.shape)));
  let pack = 0;
  for (const g of layer.gemmShapes(rows)) pack = Math.max(pack, GEMM_PACK_FLOATS(g.M, g.K, g.N));
  const scratch = { pack: t.floats(pack), cols: t.floats(layer.colsFloats()) };

  const loss = (): number => {
    layer.forward(t.k, params, buffers, rows, scratch);
    return dot(t.read(y, outF), r);
  };
  loss();
  t.write(dy, r);
  layer.backward(t.k, params, grads, buffers, rows, 0, scratch);
  const analytic = { x: t.read(dx, inF), params: grads.map((g, i) => t.read(g, shapeSize(layer.params[i]!.shape))) };

  const signature = () => regime(t.memory, [layer], [buffers], rows);
  const probe = (ptr: number, n: number, grad: Float32Array, what: string, v: Float32Array) => {
    const numeric = directional(loss, signature, () => t.read(ptr, n), (values) => t.write(ptr, values), v);
    if (numeric === null) return;
    const exact = dot(grad, v);
    const tol = 2e-2 * Math.max(1, Math.abs(exact));
    if (Math.abs(numeric - exact) > tol) throw new Error(`${layer.kind} d/d${what}: finite difference ${numeric} vs backward ${exact}`);
  };
  if (!layer.aliasesInput) probe(x, inF, analytic.x, "x", dirX);
  params.forEach((p, i) => probe(p, shapeSize(layer.params[i]!.shape), analytic.params[i]!, layer.params[i]!.name, dirParams[i]!));

  // accumulate = 1 adds to what is there: a second backward doubles the parameter gradients.
  if (params.length > 0) {
    loss();
    t.write(dy, r);
    layer.backward(t.k, params, grads, buffers, rows, 1, scratch);
    grads.forEach((g, i) => {
      const twice = t.read(g, analytic.params[i]!.length);
      twice.forEach((value, e) => expect(value).toBeCloseTo(2 * analytic.params[i]![e]!, 3));
    });
  }
}

const acts = fc.constantFrom("identity", "relu", "tanh", "gelu") as fc.Arbitrary<"identity" | "relu" | "tanh" | "gelu">;

describe("layers match finite differences", () => {
  test("dense, any widths and activation", () => {
    fc.assert(
      fc.property(
        layerCase(fc.tuple(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 1, max: 23 }), acts).map(([i, o, act]) => new Dense(i, o, act)), fc.integer({ min: 1, max: 9 })),
        checkLayer,
      ),
      { numRuns: 40 },
    );
  });

  test("conv2d, odd sizes, stride and padding", () => {
    fc.assert(
      fc.property(
        layerCase(
          fc
            .tuple(
              fc.record({ c: fc.integer({ min: 1, max: 3 }), h: fc.integer({ min: 3, max: 9 }), w: fc.integer({ min: 3, max: 9 }), co: fc.integer({ min: 1, max: 5 }) }),
              fc.integer({ min: 1, max: 3 }),
              fc.integer({ min: 1, max: 2 }),
              fc.integer({ min: 0, max: 2 }),
              acts,
            )
            .map(([{ c, h, w, co }, kernel, stride, pad, act]) => new Conv2d([c, h, w], co, kernel, stride, pad, act)),
          fc.integer({ min: 1, max: 3 }),
        ),
        checkLayer,
      ),
      { numRuns: 30 },
    );
  });

  test("conv2d on the Winograd path (3×3, stride 1, padding 1, ≥ 4 channels in and out), odd sizes", () => {
    fc.assert(
      fc.property(
        layerCase(
          fc
            .tuple(fc.record({ c: fc.integer({ min: 4, max: 6 }), h: fc.integer({ min: 1, max: 9 }), w: fc.integer({ min: 1, max: 9 }), co: fc.integer({ min: 4, max: 7 }) }), acts)
            .map(([{ c, h, w, co }, act]) => {
              const layer = new Conv2d([c, h, w], co, 3, 1, 1, act);
              expect(layer.winograd).toBe(true);
              return layer;
            }),
          fc.integer({ min: 1, max: 3 }),
        ),
        checkLayer,
      ),
      { numRuns: 20 },
    );
  });

  test("max and average pooling", () => {
    fc.assert(
      fc.property(
        layerCase(
          fc
            .tuple(fc.constantFrom("max", "avg") as fc.Arbitrary<"max" | "avg">, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 9 }), fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 3 }))
            .map(([mode, c, h, w, size]) => {
              const k = Math.min(size, h, w);
              return new Pool2d([c, h, w], mode, k, k);
            }),
          fc.integer({ min: 1, max: 3 }),
        ),
        checkLayer,
      ),
      { numRuns: 30 },
    );
  });

  test("standalone activations", () => {
    fc.assert(
      fc.property(
        layerCase(fc.tuple(fc.constantFrom("relu", "tanh", "gelu") as fc.Arbitrary<"relu" | "tanh" | "gelu">, fc.integer({ min: 1, max: 50 })).map(([act, n]) => new Activation([n], act)), fc.constant(3)),
        checkLayer,
      ),
      { numRuns: 20 },
    );
  });

  test("flatten is a view", () => {
    const f = new Flatten([2, 3, 4]);
    expect(f.outShape).toEqual([24]);
    expect(f.aliasesInput).toBe(true);
  });
});

const module = (await loadKernelModule()).module;

describe("network", () => {

  /** A network with real buffers from the planner, softmax loss and its gradient w.r.t. all parameters. */
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

  test("softmax loss gradient of a whole mlp and lenet matches finite differences", () => {
    for (const [spec, shape] of [
      ["mlp:12-9-7-4:gelu", [12]],
      ["mlp:1-5-4", [1]],
      ["lenet", [1, 28, 28]],
    ] as const) {
      const classes = spec === "lenet" ? 10 : 4;
      const rows = 3;
      const { net, k, memory, params, grads, ws } = setupNetwork(spec, [...shape], classes, rows, 7);
      net.gradient(k, params, grads, ws, rows, 1 / rows);
      const g = f32(memory, grads, net.paramFloats).slice();
      const p = f32(memory, params, net.paramFloats);
      const loss = () => net.evaluate(k, params, ws, rows).lossSum / rows;
      const signature = () => regime(memory, net.layers, ws.layers, rows);
      // Single coordinates of every tensor: each moves few units, so few kinks are in reach.
      let compared = 0;
      for (const layer of net.params) {
        for (const t of layer.tensors) {
          for (const e of [0, Math.floor(t.floats / 2), t.floats - 1]) {
            const v = new Float32Array(net.paramFloats);
            v[t.offset + e] = 1;
            const numeric = directional(loss, signature, () => p.slice(), (values) => p.set(values), v);
            if (numeric === null) continue;
            compared++;
            const exact = g[t.offset + e]!;
            expect({ spec, tensor: t.name, e, err: Math.abs(numeric - exact) < 3e-3 + 2e-2 * Math.abs(exact) }).toEqual({ spec, tensor: t.name, e, err: true });
          }
        }
      }
      expect(compared).toBeGreaterThan(net.params.reduce((a, l) => a + l.tensors.length, 0) * 2);
    }
  });

  test("parameter regions: one contiguous, 64-byte aligned block per layer, padding untouched by training", () => {
    const net = new Network("lenet", [3, 32, 32], 10);
    let end = 0;
    for (const layer of net.params) {
      expect(layer.offset).toBe(end);
      for (const t of layer.tensors) expect((t.offset * 4) % 64).toBe(0);
      end = layer.offset + layer.floats;
    }
    expect(end).toBe(net.paramFloats);
    expect(net.trainableLayers).toEqual([0, 2, 5, 6, 7]);
  });

  test("bad model specs are user errors", () => {
    for (const bad of ["mlp", "mlp:", "mlp:784", "mlp:784-x-10", "mlp:784-10:softplus", "resnet", "lenet:5", "mlp:784-0-10"]) {
      expect(() => new Network(bad, [1, 28, 28], 10)).toThrow(/--model/);
    }
    expect(() => new Network("lenet", [1, 20, 20], 10)).toThrow(/28×28 or 32×32/);
  });
});
