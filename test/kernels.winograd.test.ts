/**
 * Winograd F(2×2, 3×3) convolution (stride 1, padding 1) against the f64 direct-loop reference, both
 * builds: forward, input gradient and weight gradient (overwrite and accumulate), on odd channel
 * counts (padding rows of the 6-row blocks and of the 2×6 dot products), odd sizes (tiles past the
 * edge) and widths under 8 (fewer than four tiles a row). The scratch size the TypeScript side
 * computes equals the kernel's own, and guards around every buffer catch writes past it.
 *
 * Tolerance: Winograd's transforms add and halve before the products, so its rounding error is
 * bounded normwise, not per element (Barabasz et al. 2020 bound it through the transform matrices'
 * norms): every element within 8× the direct sum's GEMM bound taken at the largest magnitude of the
 * output. (Per element it fails: a dw entry whose direct terms nearly cancel was off by 2.4× its own
 * bound, in a 2×2 map.)
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { winogradScratchFloats } from "../engine/kernels/abi.ts";
import { arenaFor, F32_EPS, randomFloats, VARIANTS } from "./kernels.harness.ts";
import * as ref from "./reference.ts";

const dim = fc.oneof(fc.constantFrom(1, 2, 3, 4, 7, 8, 9, 14, 16), fc.integer({ min: 1, max: 19 }));
const channels = fc.oneof(fc.constantFrom(1, 2, 3, 5, 6, 7, 8, 13, 16), fc.integer({ min: 1, max: 17 }));
const seed = fc.integer({ min: 1, max: 1e9 });
/** The GEMM bound of the direct sum, widened for the transforms' additions (see above). */
const WINOGRAD_SLACK = 8;

/** |got − want| ≤ 8·(terms + 2)·ε·max|terms| for every element (normwise; see above). */
function expectWinogradClose(got: Float32Array, ref: ref.GemmResult, terms: number, what: string): void {
  expect(got.length).toBe(ref.c.length);
  let scale = 0;
  for (let i = 0; i < ref.mag.length; i++) scale = Math.max(scale, ref.mag[i]!);
  const bound = WINOGRAD_SLACK * (terms + 2) * F32_EPS * scale + 1e-30;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - ref.c[i]!);
    if (!(err <= bound)) throw new Error(`${what}[${i}] = ${got[i]} but reference ${ref.c[i]} (|err| ${err.toExponential(2)} > ${bound.toExponential(2)})`);
  }
}

for (const variant of VARIANTS) {
  describe(`winograd 3×3 (${variant} build)`, () => {
    test("forward, input gradient and weight gradient equal the reference convolution", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 5 }), channels, channels, dim, dim, seed, fc.boolean(), (N, Ci, Co, H, W, s, accumulate) => {
          a.reset();
          const d: ref.ConvDims = { N, Cin: Ci, H, W, Cout: Co, KH: 3, KW: 3, stride: 1, pad: 1 };
          const x = randomFloats(N * Ci * H * W, s), w = randomFloats(Co * Ci * 9, s + 1), dy = randomFloats(N * Co * H * W, s + 2);
          const dw0 = randomFloats(Co * Ci * 9, s + 3);
          const px = a.put(x), pw = a.put(w), pdy = a.put(dy), pdw = a.put(dw0);
          const py = a.floats(N * Co * H * W), pdx = a.floats(N * Ci * H * W);
          expect(a.k.winograd_scratch_floats(Ci, Co, H, W)).toBe(winogradScratchFloats(Ci, Co, H, W));
          const scratch = a.floats(winogradScratchFloats(Ci, Co, H, W));
          a.k.winograd_forward(py, px, pw, N, Ci, H, W, Co, scratch);
          a.checkGuards();
          expectWinogradClose(a.read(py, N * Co * H * W), ref.conv2dForward(x, w, d), Ci * 9, "y");
          a.k.winograd_backward_input(pdx, pdy, pw, N, Ci, H, W, Co, scratch);
          a.checkGuards();
          const want = ref.conv2dBackward(dy, x, w, d, accumulate, dw0);
          expectWinogradClose(a.read(pdx, N * Ci * H * W), want.dx, Co * 9, "dx");
          a.k.winograd_backward_weights(pdw, px, pdy, N, Ci, H, W, Co, accumulate ? 1 : 0, scratch);
          a.checkGuards();
          expectWinogradClose(a.read(pdw, Co * Ci * 9), want.dw, N * H * W, "dw");
        }),
        { numRuns: 80 },
      );
    });
  });
}
