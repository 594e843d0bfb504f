/**
 * The direct 3×3 convolution (stride 1, padding 1) against the f64 direct-loop reference, both builds:
 * forward and input gradient, on odd channel counts (partial 4-channel tiles) and widths that leave
 * partial 8-column tiles.
 */
import { describe, test } from "bun:test";
import fc from "fast-check";
import { conv3x3PadFloats } from "../engine/kernels/abi.ts";
import { arenaFor, expectGemmClose, randomFloats, VARIANTS } from "./kernels.harness.ts";
import * as ref from "./reference.ts";


const dim = fc.oneof(fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 9, 16), fc.integer({ min: 1, max: 19 }));
const channels = fc.oneof(fc.constantFrom(1, 3, 4, 5, 8), fc.integer({ min: 1, max: 11 }));
const seed = fc.integer({ min: 1, max: 1e9 });

for (const variant of VARIANTS) {
  describe(`conv3x3 direct (${variant} build)`, () => {
    test("forward and input gradient equal the reference convolution", async () => {
      const a = await arenaFor(variant);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 3 }), channels, channels, dim, dim, seed, (N, Cin, Cout, H, W, s) => {
          a.reset();
          const d: ref.ConvDims = { N, Cin, H, W, Cout, KH: 3, KW: 3, stride: 1, pad: 1 };
          const x = randomFloats(N * Cin * H * W, s), w = randomFloats(Cout * Cin * 9, s + 1), dy = randomFloats(N * Cout * H * W, s + 2);
          const px = a.put(x), pw = a.put(w), pdy = a.put(dy);
          const py = a.floats(N * Cout * H * W), pdx = a.floats(N * Cin * H * W);
          const pad = a.floats(conv3x3PadFloats(Math.max(Cin, Cout), H, W));
          a.k.conv3x3_forward(py, px, pw, N, Cin, H, W, Cout, pad);
          a.checkGuards();
          expectGemmClose(a.read(py, N * Cout * H * W), ref.conv2dForward(x, w, d), Cin * 9, "y");
          a.k.conv3x3_backward_input(pdx, pdy, pw, N, Cin, H, W, Cout, pad);
          a.checkGuards();
          expectGemmClose(a.read(pdx, N * Cin * H * W), ref.conv2dBackward(dy, x, w, d).dx, Cout * 9, "dx");
        }),
        { numRuns: 60 },
      );
    });
  });
}
