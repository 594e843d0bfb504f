/**
 * GEMM kernels (gemm_nn / gemm_nt / gemm_tn) against the naive f64 reference, both builds, on
 * fast-check shapes around the micro-kernel's edges (6 rows, 8 columns, K blocks of 256) and both
 * accumulate modes. Outputs start as NaN garbage, so "overwrite" really must not read them, and guard
 * bands catch writes past C or past the packing scratch.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { GEMM_PACK_FLOATS, gemmRowPieces } from "../engine/kernels/abi.ts";
import { floats } from "./arbitraries.ts";
import { arenaFor, expectGemmClose, randomFloats, VARIANTS, type KernelArena } from "./kernels.harness.ts";
import { gemmNN, gemmNT, gemmTN } from "./reference.ts";

type Layout = "nn" | "nt" | "tn";
const REFERENCE = { nn: gemmNN, nt: gemmNT, tn: gemmTN };

/** Sizes that hit every remainder of 6 and 8, plus a few ordinary ones. */
const dim = fc.oneof(fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 31, 33), fc.integer({ min: 1, max: 70 }));

interface GemmCase {
  M: number;
  K: number;
  N: number;
  accumulate: boolean;
  A: Float32Array;
  B: Float32Array;
  /** C before the call: read only when accumulating. */
  C0: Float32Array;
}

/** Shapes, then matrices of those shapes: a failure shrinks both. */
const gemmCase: fc.Arbitrary<GemmCase> = fc
  .tuple(dim, dim, dim, fc.boolean())
  .chain(([M, K, N, accumulate]) => fc.record({ M: fc.constant(M), K: fc.constant(K), N: fc.constant(N), accumulate: fc.constant(accumulate), A: floats(M * K), B: floats(K * N), C0: floats(M * N) }));

/** A fixed example's matrices (the K-block shapes below are too large to be worth shrinking). */
const example = (M: number, K: number, N: number, accumulate: boolean, seed: number): GemmCase => ({
  M, K, N, accumulate, A: randomFloats(M * K, seed), B: randomFloats(K * N, seed + 1), C0: randomFloats(M * N, seed + 2),
});

function runGemm(a: KernelArena, layout: Layout, { M, K, N, accumulate, A, B, C0 }: GemmCase): void {
  a.reset();
  const pA = a.put(A);
  const pB = a.put(B);
  const pC = accumulate ? a.put(C0) : a.floats(M * N);
  const pack = a.floats(GEMM_PACK_FLOATS(M, K, N));
  a.k[`gemm_${layout}`](pC, pA, pB, M, K, N, accumulate ? 1 : 0, pack);
  a.checkGuards();
  const ref = REFERENCE[layout](A, B, M, K, N, accumulate, C0);
  expectGemmClose(a.read(pC, M * N), ref, K + 1, `gemm_${layout} ${M}×${K}×${N}${accumulate ? " acc" : ""}`);
}

for (const variant of VARIANTS) {
  describe(`gemm (${variant} build)`, () => {
    for (const layout of ["nn", "nt", "tn"] as const) {
      test(`gemm_${layout} matches the reference on odd shapes, both accumulate modes`, async () => {
        const a = await arenaFor(variant);
        fc.assert(
          fc.property(gemmCase, (c) => runGemm(a, layout, c)),
          { numRuns: 100 },
        );
      });

      test(`gemm_${layout} across K blocks and larger tiles`, async () => {
        const a = await arenaFor(variant);
        // K > 256 splits into even K blocks (accumulating into C between them); 784 = 4 × 196.
        // B row-major with N a multiple of 8, N ≤ 256 and M ≤ 64 is read in place (gemm_nn, gemm_tn):
        // 64×784×256 at both limits, 65 rows and 264 columns just past them (packed).
        for (const [M, K, N, acc] of [
          [67, 300, 45, false], [13, 513, 19, true], [128, 784, 26, false], [6, 257, 8, true], [37, 64, 130, false],
          [64, 784, 256, true], [65, 300, 256, false], [8, 300, 264, true], [32, 520, 16, false],
        ] as const) {
          runGemm(a, layout, example(M, K, N, acc, M * 1000 + K + N));
        }
      });
    }

    test("gemm_tn in row pieces (its lda) is bitwise the whole product, for the pieces gemmRowPieces cuts", async () => {
      const a = await arenaFor(variant);
      const shape = fc.record({
        M: fc.oneof(fc.integer({ min: 1, max: 140 }), fc.constantFrom(784, 130, 67)),
        K: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(256, 300)),
        N: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constantFrom(8, 256, 264)),
        rows: fc.integer({ min: 1, max: 80 }),
        accumulate: fc.boolean(),
        seed: fc.integer({ min: 1, max: 1000 }),
      });
      fc.assert(
        fc.property(shape, ({ M, K, N, rows, accumulate, seed }) => {
          a.reset();
          const pA = a.put(randomFloats(K * M, seed));
          const pB = a.put(randomFloats(K * N, seed + 1));
          const C0 = randomFloats(M * N, seed + 2);
          const whole = a.put(C0);
          const pieced = a.put(C0);
          const pack = a.floats(GEMM_PACK_FLOATS(M, K, N));
          a.k.gemm_tn(whole, pA, pB, M, K, N, accumulate ? 1 : 0, pack);
          const pieces = gemmRowPieces(M, rows);
          expect(pieces[0]!.lo).toBe(0);
          expect(pieces[pieces.length - 1]!.hi).toBe(M);
          for (const { lo, hi } of pieces) a.k.gemm_tn(pieced + lo * N * 4, pA + lo * 4, pB, hi - lo, K, N, accumulate ? 1 : 0, pack, M);
          a.checkGuards();
          expect(a.read(pieced, M * N)).toEqual(a.read(whole, M * N));
        }),
        { numRuns: 60 },
      );
    });

    test("K = 0 zeroes C (overwrite) or leaves it (accumulate); empty M or N touch nothing", async () => {
      const a = await arenaFor(variant);
      a.reset();
      const pack = a.floats(GEMM_PACK_FLOATS(3, 0, 5));
      const c = a.put(randomFloats(15, 7));
      const before = a.read(c, 15);
      a.k.gemm_nn(c, 0, 0, 3, 0, 5, 1, pack);
      expect(a.read(c, 15)).toEqual(before);
      for (const layout of ["nn", "nt", "tn"] as const) {
        a.k[`gemm_${layout}`](c, 0, 0, 3, 0, 5, 0, pack);
        expect(Array.from(a.read(c, 15))).toEqual(new Array(15).fill(0));
        a.k[`gemm_${layout}`](c, 0, 0, 0, 4, 5, 0, pack);
        a.k[`gemm_${layout}`](c, 0, 0, 3, 4, 0, 0, pack);
      }
      a.checkGuards();
    });

    test("GEMM_PACK_FLOATS is enough: guard bands after `pack` stay intact at the formula's edges", async () => {
      const a = await arenaFor(variant);
      // the guard check inside runGemm covers pack; these are the shapes where each term is tight
      for (const [M, K, N] of [[1, 256, 1], [7, 256, 9], [6, 255, 8], [5, 1, 17], [6, 512, 7]] as const) {
        runGemm(a, "nt", example(M, K, N, false, K + N));
        runGemm(a, "tn", example(M, K, N, true, K + M));
      }
    });
  });
}
