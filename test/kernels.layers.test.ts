/**
 * Layer kernels against the f64 references, both builds: bias + activation (dense and per-channel),
 * softmax cross-entropy and accuracy, conv2d forward/backward (direct-loop reference, no im2col),
 * max/avg pooling. Odd sizes exercise every SIMD tail.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Act, convColsFloats, GEMM_PACK_FLOATS } from "../engine/kernels/abi.ts";
import { floats, ints, wholeFloats } from "./arbitraries.ts";
import { arenaFor, expectClose, expectGemmClose, randomFloats, VARIANTS } from "./kernels.harness.ts";
import * as ref from "./reference.ts";

const ACTS = [Act.identity, Act.relu, Act.tanh, Act.gelu] as const;
const size = fc.oneof(fc.constantFrom(1, 3, 4, 5, 7, 8, 17, 33), fc.integer({ min: 1, max: 40 }));
/** rows × cols, then data sized from them (a failure shrinks the shape and the data). */
const matrix = <T,>(data: (rows: number, cols: number) => fc.Arbitrary<T>) =>
  fc.tuple(size, size).chain(([rows, cols]) => fc.tuple(fc.constant(rows), fc.constant(cols), data(rows, cols)));

for (const variant of VARIANTS) {
  describe(`activations (${variant} build)`, () => {
    test("tanh and gelu stay within a few ulp over a wide range", async () => {
      const a = await arenaFor(variant);
      a.reset();
      const n = 4001;
      const z = Float32Array.from({ length: n }, (_, i) => (i - 2000) / 100); // −20 … 20
      for (const act of [Act.tanh, Act.gelu]) {
        const pz = a.put(z);
        const py = a.floats(n);
        a.k.bias_act_forward(py, pz, 0, 1, n, act);
        expectClose(a.read(py, n), Array.from(z, (v) => ref.actForward(v, act)), 2e-6, 2e-7, `act ${act}`);
      }
      // tiny inputs keep relative precision
      const tiny = Float32Array.from([1e-8, -3e-6, 2e-4, -3.9e-4, 4.1e-4, 1e-30]);
      const pt = a.put(tiny);
      const po = a.floats(tiny.length);
      a.k.bias_act_forward(po, pt, 0, 1, tiny.length, Act.tanh);
      expectClose(a.read(po, tiny.length), Array.from(tiny, Math.tanh), 1e-6, 0, "tanh tiny");
      a.checkGuards();
    });

    test("bias_act_forward: z += b, y = act(z), with and without bias", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(matrix((r, c) => fc.record({ z: floats(r * c, 3), b: floats(c) })), fc.constantFrom(...ACTS), fc.boolean(), fc.boolean(), ([rows, cols, { z, b }], act, withBias, inPlace) => {
          a.reset();
          const pz = a.put(z);
          const pb = withBias ? a.put(b) : 0;
          const py = act === Act.identity && withBias && inPlace ? pz : a.floats(rows * cols); // identity may run in place
          a.k.bias_act_forward(py, pz, pb, rows, cols, act);
          a.checkGuards();
          const want = ref.biasActForward(z, withBias ? b : null, rows, cols, act);
          expectClose(a.read(pz, rows * cols), want.z, 1e-6, 1e-7, "z");
          expectClose(a.read(py, rows * cols), want.y, 2e-6, 2e-7, "y");
        }),
        { numRuns: 80 },
      );
    });

    test("bias_act_backward: dz = dy·act'(z), db (+)= column sums, dz may alias dy", async () => {
      const a = await arenaFor(variant);
      const data = matrix((r, c) => fc.record({ z: floats(r * c, 3), dy: floats(r * c), db0: floats(c) }));
      fc.assert(
        fc.property(data, fc.constantFrom(...ACTS), fc.boolean(), fc.boolean(), fc.boolean(), ([rows, cols, { z, dy, db0 }], act, withDb, acc, alias) => {
          a.reset();
          const y = Float32Array.from(z, (v) => ref.actForward(v, act));
          const pz = a.put(z);
          const py = a.put(y);
          const pdy = a.put(dy);
          const pdz = alias ? pdy : a.floats(rows * cols);
          const pdb = withDb ? (acc ? a.put(db0) : a.floats(cols)) : 0;
          a.k.bias_act_backward(pdz, pdy, pz, py, pdb, rows, cols, act, acc ? 1 : 0);
          a.checkGuards();
          // tanh's backward uses y (rounded to f32), the reference differentiates z exactly
          const want = ref.biasActBackward(dy, z, rows, cols, act, acc, db0);
          expectClose(a.read(pdz, rows * cols), want.dz, 1e-5, 1e-6, "dz");
          if (withDb) expectClose(a.read(pdb, cols), want.db, 1e-5, 1e-5 * rows, "db");
        }),
        { numRuns: 80 },
      );
    });

    test("channel_bias_act_forward / backward over NCHW maps", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(
          fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 5 }), size).chain(([batch, channels, spatial]) => {
            const n = batch * channels * spatial;
            return fc.record({ batch: fc.constant(batch), channels: fc.constant(channels), spatial: fc.constant(spatial), z: floats(n, 3), b: floats(channels), dy: floats(n), db0: floats(channels) });
          }),
          fc.constantFrom(...ACTS), fc.boolean(), fc.boolean(),
          ({ batch, channels, spatial, z, b, dy, db0 }, act, withBias, acc) => {
            a.reset();
            const n = batch * channels * spatial;
            const pz = a.put(z);
            const py = a.floats(n);
            a.k.channel_bias_act_forward(py, pz, withBias ? a.put(b) : 0, batch, channels, spatial, act);
            const fwd = ref.channelBiasActForward(z, withBias ? b : null, batch, channels, spatial, act);
            expectClose(a.read(pz, n), fwd.z, 1e-6, 1e-7, "z");
            expectClose(a.read(py, n), fwd.y, 2e-6, 2e-7, "y");
            const pdy = a.put(dy);
            const pdz = a.floats(n);
            const pdb = acc ? a.put(db0) : a.floats(channels);
            a.k.channel_bias_act_backward(pdz, pdy, pz, py, pdb, batch, channels, spatial, act, acc ? 1 : 0);
            a.checkGuards();
            const bwd = ref.channelBiasActBackward(dy, a.read(pz, n), batch, channels, spatial, act, acc, db0);
            expectClose(a.read(pdz, n), bwd.dz, 1e-5, 1e-6, "dz");
            expectClose(a.read(pdb, channels), bwd.db, 1e-5, 1e-5 * batch * spatial, "db");
          }),
        { numRuns: 60 },
      );
    });
  });

  describe(`loss (${variant} build)`, () => {
    test("softmax_xent: loss sum and scaled gradient, stable for large logits", async () => {
      const a = await arenaFor(variant);
      const batch = fc.tuple(size, fc.integer({ min: 1, max: 37 }), fc.constantFrom(1, 10, 80)).chain(([rows, classes, spread]) =>
        fc.record({ rows: fc.constant(rows), classes: fc.constant(classes), logits: floats(rows * classes, spread), labels: ints(rows, classes) }),
      );
      fc.assert(
        fc.property(batch, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), ({ rows, classes, logits, labels }, withGrad, shifted, ignoreOne, alias) => {
          a.reset();
          logits = logits.slice();
          labels = labels.slice();
          if (shifted) for (let i = 0; i < classes; i++) logits[i]! += 1000; // shifted row: no overflow
          if (rows > 2 && ignoreOne) labels[1] = -1; // an ignored row
          const scale = 1 / rows;
          const pl = a.put(logits);
          const pd = withGrad ? (alias ? pl : a.floats(rows * classes)) : 0; // dlogits may alias logits
          const loss = a.k.softmax_xent(pd, pl, a.putI32(labels), rows, classes, scale);
          a.checkGuards();
          const want = ref.softmaxXent(logits, labels, rows, classes, scale);
          expect(Math.abs(loss - want.loss)).toBeLessThanOrEqual(1e-5 * Math.max(1, want.loss) + 1e-5 * rows);
          // dlogits = scale·(p − onehot): at the label, p − 1 cancels, so the error is the f32
          // probability's own (a few ulps of 1, from exp and the division) times scale.
          if (withGrad) expectClose(a.read(pd, rows * classes), want.dlogits, 1e-5, 2 ** -21 * scale, "dlogits");
        }),
        { numRuns: 80 },
      );
    });

    test("count_correct counts first-argmax hits", async () => {
      const a = await arenaFor(variant);
      // coarse values (−2 … 2) so ties happen: the first maximum must win
      const batch = fc.tuple(size, fc.integer({ min: 1, max: 12 })).chain(([rows, classes]) =>
        fc.record({ rows: fc.constant(rows), classes: fc.constant(classes), logits: wholeFloats(rows * classes, -2, 2), labels: ints(rows, classes) }),
      );
      fc.assert(
        fc.property(batch, ({ rows, classes, logits, labels }) => {
          a.reset();
          expect(a.k.count_correct(a.put(logits), a.putI32(labels), rows, classes)).toBe(ref.countCorrect(logits, labels, rows, classes));
        }),
        { numRuns: 60 },
      );
    });
  });

  describe(`conv2d (${variant} build)`, () => {
    const convDims = fc
      .record({
        N: fc.integer({ min: 1, max: 3 }),
        Cin: fc.integer({ min: 1, max: 4 }),
        H: fc.integer({ min: 1, max: 11 }),
        W: fc.integer({ min: 1, max: 11 }),
        Cout: fc.integer({ min: 1, max: 9 }),
        KH: fc.integer({ min: 1, max: 4 }),
        KW: fc.integer({ min: 1, max: 4 }),
        stride: fc.integer({ min: 1, max: 3 }),
        pad: fc.integer({ min: 0, max: 2 }),
      })
      .filter((d) => d.H + 2 * d.pad >= d.KH && d.W + 2 * d.pad >= d.KW);

    interface ConvData {
      x: Float32Array;
      w: Float32Array;
      dy: Float32Array;
      dw0: Float32Array;
    }
    const sizes = (d: ref.ConvDims) => {
      const { OH, OW } = ref.convOutSize(d);
      return { x: d.N * d.Cin * d.H * d.W, w: d.Cout * d.Cin * d.KH * d.KW, dy: d.N * d.Cout * OH * OW };
    };
    /** Dimensions, then tensors of those dimensions. */
    const convData = convDims.chain((d) => {
      const n = sizes(d);
      return fc.record({ d: fc.constant(d), data: fc.record({ x: floats(n.x), w: floats(n.w), dy: floats(n.dy), dw0: floats(n.w) }) });
    });
    /** A fixed example's tensors (the larger shapes below). */
    const example = (d: ref.ConvDims, s: number): ConvData => {
      const n = sizes(d);
      return { x: randomFloats(n.x, s), w: randomFloats(n.w, s + 1), dy: randomFloats(n.dy, s + 2), dw0: randomFloats(n.w, s + 3) };
    };

    function convCase(a: Awaited<ReturnType<typeof arenaFor>>, d: ref.ConvDims, acc: boolean, withDx: boolean, { x, w, dy, dw0 }: ConvData): void {
      a.reset();
      const { OH, OW } = ref.convOutSize(d);
      const CKK = d.Cin * d.KH * d.KW;
      const OHW = OH * OW;
      const px = a.put(x);
      const pw = a.put(w);
      const cols = a.floats(convColsFloats(d.Cin, d.KH, d.KW, OH, OW, d.Cout));
      const pack = 0; // not used by the convolution kernels
      const py = a.floats(d.N * d.Cout * OHW);
      a.k.conv2d_forward(py, px, pw, d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.stride, d.pad, cols, pack);
      a.checkGuards();
      expectGemmClose(a.read(py, d.N * d.Cout * OHW), ref.conv2dForward(x, w, d), CKK + 1, "y");

      const pdy = a.put(dy);
      const pdw = acc ? a.put(dw0) : a.floats(d.Cout * CKK);
      const pdx = withDx ? a.floats(x.length) : 0;
      a.k.conv2d_backward(pdx, pdw, pdy, px, pw, d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.stride, d.pad, acc ? 1 : 0, cols, pack);
      a.checkGuards();
      const want = ref.conv2dBackward(dy, x, w, d, acc, dw0);
      expectGemmClose(a.read(pdw, d.Cout * CKK), want.dw, d.N * OHW + 2, "dw");
      if (withDx) expectGemmClose(a.read(pdx, x.length), want.dx, d.Cout * d.KH * d.KW + 2, "dx");
    }

    test("forward and backward match direct convolution (stride, padding, odd sizes)", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(convData, fc.boolean(), fc.boolean(), ({ d, data }, acc, withDx) => convCase(a, d, acc, withDx, data)),
        { numRuns: 60 },
      );
    });

    test("larger deterministic shapes: LeNet-like 5×5, 3×3 pad 1, 1×1 pointwise, strided", async () => {
      const a = await arenaFor(variant);
      const shapes: ref.ConvDims[] = [
        { N: 2, Cin: 1, H: 28, W: 28, Cout: 6, KH: 5, KW: 5, stride: 1, pad: 0 },
        { N: 2, Cin: 6, H: 14, W: 14, Cout: 16, KH: 3, KW: 3, stride: 1, pad: 1 },
        { N: 2, Cin: 16, H: 7, W: 9, Cout: 13, KH: 1, KW: 1, stride: 1, pad: 0 },
        { N: 1, Cin: 3, H: 17, W: 15, Cout: 8, KH: 3, KW: 3, stride: 2, pad: 1 },
      ];
      for (const [i, d] of shapes.entries()) convCase(a, d, i % 2 === 1, true, example(d, 100 + i));
    });
  });

  describe(`pooling (${variant} build)`, () => {
    const poolCase = fc.oneof(
      fc
        .record({
          planes: fc.integer({ min: 1, max: 5 }),
          H: fc.integer({ min: 1, max: 13 }),
          W: fc.integer({ min: 1, max: 13 }),
          K: fc.integer({ min: 1, max: 4 }),
          stride: fc.integer({ min: 1, max: 3 }),
        })
        .filter((p) => p.H >= p.K && p.W >= p.K),
      // LeNet's 2×2 stride-2 pooling, which has its own vector path from 8 columns (odd sizes too)
      fc.record({ planes: fc.integer({ min: 1, max: 4 }), H: fc.integer({ min: 2, max: 13 }), W: fc.integer({ min: 2, max: 21 }), K: fc.constant(2), stride: fc.constant(2) }),
    );
    /** A pooling shape, then x (from `xs`) and dy of that shape. */
    const poolData = (xs: (n: number) => fc.Arbitrary<Float32Array>) =>
      poolCase.chain((p) => {
        const { OH, OW } = ref.poolOutSize(p.H, p.W, p.K, p.stride);
        return fc.record({ p: fc.constant(p), x: xs(p.planes * p.H * p.W), dy: floats(p.planes * OH * OW) });
      });

    test("maxpool forward (value + argmax) and backward", async () => {
      const a = await arenaFor(variant);
      // coarse values (−3 … 3) so windows hold ties: the first maximum must be recorded
      const coarse = (n: number) => wholeFloats(n, -3, 3);
      fc.assert(
        fc.property(poolData(coarse), ({ p: { planes, H, W, K, stride }, x, dy }) => {
          a.reset();
          const { OH, OW } = ref.poolOutSize(H, W, K, stride);
          const py = a.floats(planes * OH * OW);
          const pam = a.alloc(planes * OH * OW * 4);
          a.k.maxpool_forward(py, pam, a.put(x), planes, H, W, K, stride);
          const want = ref.maxpoolForward(x, planes, H, W, K, stride);
          expect(Array.from(a.read(py, want.y.length))).toEqual(Array.from(want.y));
          expect(Array.from(a.readI32(pam, want.argmax.length))).toEqual(Array.from(want.argmax));
          const pdx = a.floats(planes * H * W);
          a.k.maxpool_backward(pdx, a.put(dy), pam, planes, H, W, K, stride);
          a.checkGuards();
          expectClose(a.read(pdx, planes * H * W), ref.maxpoolBackward(dy, want.argmax, planes, H, W, K, stride), 1e-5, 1e-6, "dx");
        }),
        { numRuns: 60 },
      );
    });

    test("avgpool forward and backward", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(poolData((n) => floats(n)), ({ p: { planes, H, W, K, stride }, x, dy }) => {
          a.reset();
          const { OH, OW } = ref.poolOutSize(H, W, K, stride);
          const py = a.floats(planes * OH * OW);
          a.k.avgpool_forward(py, a.put(x), planes, H, W, K, stride);
          expectClose(a.read(py, planes * OH * OW), ref.avgpoolForward(x, planes, H, W, K, stride), 1e-5, 1e-6, "y");
          const pdx = a.floats(planes * H * W);
          a.k.avgpool_backward(pdx, a.put(dy), planes, H, W, K, stride);
          a.checkGuards();
          expectClose(a.read(pdx, planes * H * W), ref.avgpoolBackward(dy, planes, H, W, K, stride), 1e-5, 1e-6, "dx");
        }),
        { numRuns: 60 },
      );
    });
  });
}
