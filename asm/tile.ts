/**
 * The register-tiled micro-kernel the convolutions' own GEMMs share (im2col in conv.ts, the
 * per-frequency products of winograd.ts): an R × 8 block of C from R pre-broadcast rows of A and
 * 8-float rows of B, with the accumulators in registers. One function per row count, each
 * instantiating the template with literals (Binaryen would otherwise fold the copies into one loop
 * with run-time selects).
 */
import { madd } from "./simd";

/** A row count rounded up to even: the tiles take 2, 4 or 6 rows, so operands are padded to even rows. */
// @ts-ignore: decorator
@inline export function up2(n: i32): i32 { return (n + 1) & ~1; }

export function tile6(c: usize, ldc: usize, ap: usize, b: usize, ldb: usize, K: i32): void { tileKernel(c, ldc, ap, b, ldb, K, 6); }
export function tile4(c: usize, ldc: usize, ap: usize, b: usize, ldb: usize, K: i32): void { tileKernel(c, ldc, ap, b, ldb, K, 4); }
export function tile2(c: usize, ldc: usize, ap: usize, b: usize, ldb: usize, K: i32): void { tileKernel(c, ldc, ap, b, ldb, K, 2); }

/** c[r][0..8) = Σ_k A(r, k)·b[k][0..8) for R ∈ {2, 4, 6}: A pre-broadcast at ap, b rows ldb bytes apart. K ≥ 1. */
// @ts-ignore: decorator
@inline function tileKernel(c: usize, ldc: usize, ap: usize, b: usize, ldb: usize, K: i32, R: i32): void {
  const zero = f32x4.splat(0);
  let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
  let c30 = zero, c31 = zero, c40 = zero, c41 = zero, c50 = zero, c51 = zero;
  const end = ap + (<usize>(K * R) << 4);
  do {
    const b0 = v128.load(b, 0);
    const b1 = v128.load(b, 16);
    let a = v128.load(ap, 0); c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load(ap, 16); c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    if (R > 2) {
      a = v128.load(ap, 32); c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
      a = v128.load(ap, 48); c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    }
    if (R > 4) {
      a = v128.load(ap, 64); c40 = madd(a, b0, c40); c41 = madd(a, b1, c41);
      a = v128.load(ap, 80); c50 = madd(a, b0, c50); c51 = madd(a, b1, c51);
    }
    ap += <usize>(R << 4);
    b += ldb;
  } while (ap < end);
  v128.store(c, c00, 0); v128.store(c, c01, 16); c += ldc;
  v128.store(c, c10, 0); v128.store(c, c11, 16); c += ldc;
  if (R > 2) {
    v128.store(c, c20, 0); v128.store(c, c21, 16); c += ldc;
    v128.store(c, c30, 0); v128.store(c, c31, 16); c += ldc;
  }
  if (R > 4) {
    v128.store(c, c40, 0); v128.store(c, c41, 16); c += ldc;
    v128.store(c, c50, 0); v128.store(c, c51, 16);
  }
}
