/**
 * The products of Winograd's transformed domain (winograd.ts), one per frequency ξ of the 4×4 tile:
 * M = U·V for the forward and the input gradient (gemmXi, on the shared register tiles), and
 * dU (+)= dM·Vᵀ for the weight gradient (dotXi, blocks of dot products).
 */
import { madd } from "./simd";
import { tile2, tile4, tile6 } from "./tile";

/** M[o][0..Tp) = Σ_k U[o][k]·V[k][0..Tp) for one ξ: OP (even) rows, K inner, Tp a multiple of 8. */
export function gemmXi(m: usize, u: usize, v: usize, OP: i32, K: i32, Tp: i32): void {
  const ld = <usize>Tp << 2;
  for (let o0 = 0; o0 < OP; o0 += 6) {
    const R = min(6, OP - o0);
    const ap = u + (<usize>(o0 * K) << 4);
    const mrow = m + <usize>o0 * ld;
    for (let t0 = 0; t0 < Tp; t0 += 8) {
      const off = <usize>t0 << 2;
      if (R == 6) tile6(mrow + off, ld, ap, v + off, ld, K);
      else if (R == 4) tile4(mrow + off, ld, ap, v + off, ld, K);
      else tile2(mrow + off, ld, ap, v + off, ld, K);
    }
  }
}

function dot6(du: usize, ldu: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(du, ldu, a, b, ld, n, 6); }
function dot4(du: usize, ldu: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(du, ldu, a, b, ld, n, 4); }
function dot2(du: usize, ldu: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(du, ldu, a, b, ld, n, 2); }

/**
 * du[r][c] += Σ_t a[r][t]·b[c][t] for 2 rows of a and C ∈ {2, 4, 6} rows of b, n floats each (a
 * multiple of 4); rows ld bytes apart in a and b, ldu bytes in du. Four lanes of partial sums per
 * pair, added across lanes once at the end.
 */
// @ts-ignore: decorator
@inline function dotKernel(du: usize, ldu: usize, a: usize, b: usize, ld: usize, n: i32, C: i32): void {
  const zero = f32x4.splat(0);
  let s00 = zero, s01 = zero, s02 = zero, s03 = zero, s04 = zero, s05 = zero;
  let s10 = zero, s11 = zero, s12 = zero, s13 = zero, s14 = zero, s15 = zero;
  const a1 = a + ld;
  const b1 = b + ld, b2 = b1 + ld, b3 = b2 + ld, b4 = b3 + ld, b5 = b4 + ld;
  const end = <usize>n << 2;
  for (let t: usize = 0; t < end; t += 16) {
    const x0 = v128.load(a + t), x1 = v128.load(a1 + t);
    let y = v128.load(b + t); s00 = madd(x0, y, s00); s10 = madd(x1, y, s10);
    y = v128.load(b1 + t); s01 = madd(x0, y, s01); s11 = madd(x1, y, s11);
    if (C > 2) {
      y = v128.load(b2 + t); s02 = madd(x0, y, s02); s12 = madd(x1, y, s12);
      y = v128.load(b3 + t); s03 = madd(x0, y, s03); s13 = madd(x1, y, s13);
    }
    if (C > 4) {
      y = v128.load(b4 + t); s04 = madd(x0, y, s04); s14 = madd(x1, y, s14);
      y = v128.load(b5 + t); s05 = madd(x0, y, s05); s15 = madd(x1, y, s15);
    }
  }
  addSum(du, s00, 0); addSum(du, s01, 4);
  if (C > 2) { addSum(du, s02, 8); addSum(du, s03, 12); }
  if (C > 4) { addSum(du, s04, 16); addSum(du, s05, 20); }
  const d1 = du + ldu;
  addSum(d1, s10, 0); addSum(d1, s11, 4);
  if (C > 2) { addSum(d1, s12, 8); addSum(d1, s13, 12); }
  if (C > 4) { addSum(d1, s14, 16); addSum(d1, s15, 20); }
}

// @ts-ignore: decorator
@inline function addSum(p: usize, s: v128, offset: usize): void {
  const q = p + offset;
  store<f32>(q, load<f32>(q) + ((f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3))));
}

/**
 * dU[o][i] += Σ_t dM[o][t]·V[i][t] for one ξ into a [⌈Co⌉₂][⌈Ci⌉₂] block of `acc` (the padded rows of dM and
 * V are zero), rows of dM and V Tp floats apart.
 */
export function dotXi(acc: usize, dm: usize, v: usize, CoP: i32, CiP: i32, Tp: i32): void {
  const ld = <usize>Tp << 2;
  const ldu = <usize>CiP << 2;
  for (let o0 = 0; o0 < CoP; o0 += 2) {
    const a = dm + <usize>o0 * ld;
    const du = acc + <usize>o0 * ldu;
    for (let i0 = 0; i0 < CiP; i0 += 6) {
      const C = min(6, CiP - i0);
      const b = v + <usize>i0 * ld;
      const d = du + (<usize>i0 << 2);
      if (C == 6) dot6(d, ldu, a, b, ld, Tp);
      else if (C == 4) dot4(d, ldu, a, b, ld, Tp);
      else dot2(d, ldu, a, b, ld, Tp);
    }
  }
}

