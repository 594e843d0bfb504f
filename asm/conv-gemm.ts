/**
 * The GEMMs of the im2col convolutions (conv.ts), on their own rather than the shared GEMM: the
 * weights packed pre-broadcast once per call, the unfolded input read in place (rowsGemm over the
 * shared register tiles), and the weight gradient as blocks of dot products (rowsDot), so nothing is
 * transposed or packed per sample.
 */
import { madd } from "./simd";
import { tile2, tile4, tile6, up2 } from "./tile";


/**
 * Pre-broadcast pack of A (element (i, k) at A + i·aRow + k·aK bytes), M × K: blocks of ≤ 6 rows,
 * each [k][row][4 equal lanes]; rows from M up to ⌈M⌉₂ are zero.
 */
export function packRows(dst: usize, A: usize, aRow: usize, aK: usize, M: i32, K: i32): void {
  const MP = up2(M);
  for (let i0 = 0; i0 < MP; i0 += 6) {
    const R = min(6, MP - i0);
    let d = dst + (<usize>(i0 * K) << 4);
    for (let k = 0; k < K; k++) {
      const src = A + <usize>k * aK;
      for (let r = 0; r < R; r++) {
        const i = i0 + r;
        v128.store(d, i < M ? v128.load32_splat(src + <usize>i * aRow) : f32x4.splat(0));
        d += 16;
      }
    }
  }
}


/**
 * C[M × N] = A·B (overwrites) with A packed by packRows (K inner) and B[K × N] read in place, rows
 * N floats apart. Column blocks of 8; the last one starts at N − 8 and rewrites columns the one
 * before wrote, with the same values. N < 8: B is first copied, zero-padded, to `narrow`. An odd
 * M's last block runs into `tile` and only its real rows are copied out.
 */
export function rowsGemm(C: usize, ap: usize, B: usize, M: i32, K: i32, N: i32, tile: usize, narrow: usize): void {
  if (M <= 0 || N <= 0) return;
  const ldc = <usize>N << 2;
  let b = B;
  let ldb = ldc;
  if (N < 8) {
    for (let k = 0; k < K; k++) {
      const d = narrow + (<usize>k << 5);
      v128.store(d, f32x4.splat(0)); v128.store(d, f32x4.splat(0), 16);
      memory.copy(d, B + <usize>k * ldc, <usize>N << 2);
    }
    b = narrow;
    ldb = 32;
  }
  const MP = up2(M);
  for (let i0 = 0; i0 < MP; i0 += 6) {
    const R = min(6, MP - i0);
    const rows = min(R, M - i0);
    const a = ap + (<usize>(i0 * K) << 4);
    for (let j0 = 0; j0 < N; j0 += 8) {
      const j = N >= 8 ? min(j0, N - 8) : 0;
      const bj = b + (<usize>j << 2);
      const direct = rows == R && N >= 8;
      const dst = direct ? C + <usize>i0 * ldc + (<usize>j << 2) : tile;
      const ld: usize = direct ? ldc : 32;
      if (R == 6) tile6(dst, ld, a, bj, ldb, K);
      else if (R == 4) tile4(dst, ld, a, bj, ldb, K);
      else tile2(dst, ld, a, bj, ldb, K);
      if (!direct) {
        const cols = min(8, N - j);
        for (let r = 0; r < rows; r++) memory.copy(C + <usize>(i0 + r) * ldc + (<usize>j << 2), tile + (<usize>r << 5), <usize>cols << 2);
      }
    }
  }
}

function dot2x6(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 6); }
function dot2x4(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 4); }
function dot2x2(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 2); }
function dot2x1(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 2, 1); }
function dot1x6(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 6); }
function dot1x4(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 4); }
function dot1x2(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 2); }
function dot1x1(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32): void { dotKernel(c, ldc, a, b, ld, n, 1, 1); }

/**
 * c[r][q] += Σ_t a[r][t]·b[q][t] for R ∈ {1, 2} rows of a and Q ∈ {1, 2, 4, 6} rows of b, n floats
 * each; rows ld bytes apart in a and b, ldc bytes in c. Four lanes of partial sums per pair, added
 * across lanes at the end, then the n mod 4 last terms.
 */
// @ts-ignore: decorator
@inline function dotKernel(c: usize, ldc: usize, a: usize, b: usize, ld: usize, n: i32, R: i32, Q: i32): void {
  const zero = f32x4.splat(0);
  let s00 = zero, s01 = zero, s02 = zero, s03 = zero, s04 = zero, s05 = zero;
  let s10 = zero, s11 = zero, s12 = zero, s13 = zero, s14 = zero, s15 = zero;
  const a1 = a + ld;
  const b1 = b + ld, b2 = b1 + ld, b3 = b2 + ld, b4 = b3 + ld, b5 = b4 + ld;
  const end4 = <usize>(n & ~3) << 2;
  for (let t: usize = 0; t < end4; t += 16) {
    const x0 = v128.load(a + t);
    const x1 = R > 1 ? v128.load(a1 + t) : zero;
    let y = v128.load(b + t); s00 = madd(x0, y, s00); if (R > 1) s10 = madd(x1, y, s10);
    if (Q > 1) { y = v128.load(b1 + t); s01 = madd(x0, y, s01); if (R > 1) s11 = madd(x1, y, s11); }
    if (Q > 2) {
      y = v128.load(b2 + t); s02 = madd(x0, y, s02); if (R > 1) s12 = madd(x1, y, s12);
      y = v128.load(b3 + t); s03 = madd(x0, y, s03); if (R > 1) s13 = madd(x1, y, s13);
    }
    if (Q > 4) {
      y = v128.load(b4 + t); s04 = madd(x0, y, s04); if (R > 1) s14 = madd(x1, y, s14);
      y = v128.load(b5 + t); s05 = madd(x0, y, s05); if (R > 1) s15 = madd(x1, y, s15);
    }
  }
  const tail = <usize>n << 2;
  if (end4 == tail) {
    // No scalar terms: the lanes' sums of 2 or 4 accumulators at once, added into c with vectors
    // (the same additions in the same order as addDot, a lane per accumulator).
    if (Q == 1) addDot(c, 0, s00, a, b, end4, tail);
    else if (Q == 2) addDots2(c, s00, s01);
    else { addDots4(c, s00, s01, s02, s03); if (Q > 4) addDots2(c + 16, s04, s05); }
    if (R > 1) {
      const c1 = c + ldc;
      if (Q == 1) addDot(c1, 0, s10, a1, b, end4, tail);
      else if (Q == 2) addDots2(c1, s10, s11);
      else { addDots4(c1, s10, s11, s12, s13); if (Q > 4) addDots2(c1 + 16, s14, s15); }
    }
    return;
  }
  addDot(c, 0, s00, a, b, end4, tail);
  if (Q > 1) addDot(c, 4, s01, a, b1, end4, tail);
  if (Q > 2) { addDot(c, 8, s02, a, b2, end4, tail); addDot(c, 12, s03, a, b3, end4, tail); }
  if (Q > 4) { addDot(c, 16, s04, a, b4, end4, tail); addDot(c, 20, s05, a, b5, end4, tail); }
  if (R > 1) {
    const c1 = c + ldc;
    addDot(c1, 0, s10, a1, b, end4, tail);
    if (Q > 1) addDot(c1, 4, s11, a1, b1, end4, tail);
    if (Q > 2) { addDot(c1, 8, s12, a1, b2, end4, tail); addDot(c1, 12, s13, a1, b3, end4, tail); }
    if (Q > 4) { addDot(c1, 16, s14, a1, b4, end4, tail); addDot(c1, 20, s15, a1, b5, end4, tail); }
  }
}

/** c[0..4) += (l0 + l1) + (l2 + l3) of s0..s3: a 4×4 transpose, then addDot's additions lane-wise. */
// @ts-ignore: decorator
@inline function addDots4(c: usize, s0: v128, s1: v128, s2: v128, s3: v128): void {
  const t0 = v128.shuffle<f32>(s0, s1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(s0, s1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(s2, s3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(s2, s3, 2, 6, 3, 7);
  const l0 = v128.shuffle<f32>(t0, t2, 0, 1, 4, 5);
  const l1 = v128.shuffle<f32>(t0, t2, 2, 3, 6, 7);
  const l2 = v128.shuffle<f32>(t1, t3, 0, 1, 4, 5);
  const l3 = v128.shuffle<f32>(t1, t3, 2, 3, 6, 7);
  v128.store(c, f32x4.add(v128.load(c), f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3))));
}

/** c[0..2) += (l0 + l1) + (l2 + l3) of s0, s1. */
// @ts-ignore: decorator
@inline function addDots2(c: usize, s0: v128, s1: v128): void {
  // lanes (s0.0 + s0.1, s1.0 + s1.1, s0.2 + s0.3, s1.2 + s1.3), then the first pair plus the second
  const p = f32x4.add(v128.shuffle<f32>(s0, s1, 0, 4, 2, 6), v128.shuffle<f32>(s0, s1, 1, 5, 3, 7));
  const sum = f32x4.add(p, v128.shuffle<f32>(p, p, 2, 3, 2, 3));
  v128.store64_lane(c, f32x4.add(v128.load64_zero(c), sum), 0);
}

/** c[offset] += the lanes of s + Σ a[t]·b[t] over the byte range [from, to). */
// @ts-ignore: decorator
@inline function addDot(c: usize, offset: usize, s: v128, a: usize, b: usize, from: usize, to: usize): void {
  let sum = (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
  for (let t = from; t < to; t += 4) sum += load<f32>(a + t) * load<f32>(b + t);
  const p = c + offset;
  store<f32>(p, load<f32>(p) + sum);
}

/** C[M × N] += A[M × K]·B[N × K]ᵀ, rows of A and B K floats apart (contiguous), C rows N floats apart. */
export function rowsDot(C: usize, A: usize, B: usize, M: i32, N: i32, K: i32): void {
  const ld = <usize>K << 2;
  const ldc = <usize>N << 2;
  for (let i0 = 0; i0 < M; i0 += 2) {
    const two = M - i0 >= 2;
    const a = A + <usize>i0 * ld;
    const c = C + <usize>i0 * ldc;
    let j0 = 0;
    while (j0 < N) {
      const left = N - j0;
      const Q = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const cj = c + (<usize>j0 << 2);
      const b = B + <usize>j0 * ld;
      if (two) {
        if (Q == 6) dot2x6(cj, ldc, a, b, ld, K);
        else if (Q == 4) dot2x4(cj, ldc, a, b, ld, K);
        else if (Q == 2) dot2x2(cj, ldc, a, b, ld, K);
        else dot2x1(cj, ldc, a, b, ld, K);
      } else {
        if (Q == 6) dot1x6(cj, ldc, a, b, ld, K);
        else if (Q == 4) dot1x4(cj, ldc, a, b, ld, K);
        else if (Q == 2) dot1x2(cj, ldc, a, b, ld, K);
        else dot1x1(cj, ldc, a, b, ld, K);
      }
      j0 += Q;
    }
  }
}


// ---- the direct convolution's products (conv.ts, convolutions with outputs a whole number of vectors wide) ----
//
// The unfolded input's row k, at output row oh, is the zero-padded input itself shifted by the tap's
// offset: cols[k][oh·OW + ow] = xpad[oh·Wp + ow + off[k]]. These read B there instead of from a
// copy, with off[k] (bytes) from a table; the products and their order are rowsGemm's and rowsDot's.

export function tileAt6(c: usize, ldc: usize, ap: usize, b: usize, offs: usize, K: i32): void { tileAtKernel(c, ldc, ap, b, offs, K, 6); }
export function tileAt4(c: usize, ldc: usize, ap: usize, b: usize, offs: usize, K: i32): void { tileAtKernel(c, ldc, ap, b, offs, K, 4); }
export function tileAt2(c: usize, ldc: usize, ap: usize, b: usize, offs: usize, K: i32): void { tileAtKernel(c, ldc, ap, b, offs, K, 2); }

/** tileKernel's c[r][0..8) = Σ_k A(r, k)·b_k[0..8) with b_k at b + offs[k] (i32 bytes). K ≥ 1. */
// @ts-ignore: decorator
@inline function tileAtKernel(c: usize, ldc: usize, ap: usize, b: usize, offs: usize, K: i32, R: i32): void {
  const zero = f32x4.splat(0);
  let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
  let c30 = zero, c31 = zero, c40 = zero, c41 = zero, c50 = zero, c51 = zero;
  const end = ap + (<usize>(K * R) << 4);
  let o = offs;
  do {
    const bk = b + <usize>load<i32>(o);
    const b0 = v128.load(bk, 0);
    const b1 = v128.load(bk, 16);
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
    o += 4;
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

function dotAt2x6(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 2, 6); }
function dotAt2x4(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 2, 4); }
function dotAt2x2(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 2, 2); }
function dotAt2x1(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 2, 1); }
function dotAt1x6(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 1, 6); }
function dotAt1x4(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 1, 4); }
function dotAt1x2(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 1, 2); }
function dotAt1x1(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32): void { dotAtKernel(c, ldc, a, ld, x, offs, OH, OW, Wp, 1, 1); }

/**
 * dotKernel with b's rows at x + offs[q] + oh·Wp·4 + ow·4 (output row oh, column ow < OW, OW a
 * multiple of 4): position t = oh·OW + ow goes to lane t mod 4 = ow mod 4, positions in increasing
 * order, so every lane sums the same products in the same order as dotKernel over the unfolded rows.
 */
// @ts-ignore: decorator
@inline function dotAtKernel(c: usize, ldc: usize, a: usize, ld: usize, x: usize, offs: usize, OH: i32, OW: i32, Wp: i32, R: i32, Q: i32): void {
  const zero = f32x4.splat(0);
  let s00 = zero, s01 = zero, s02 = zero, s03 = zero, s04 = zero, s05 = zero;
  let s10 = zero, s11 = zero, s12 = zero, s13 = zero, s14 = zero, s15 = zero;
  let a0 = a;
  let a1 = a + ld;
  let b0 = x + <usize>load<i32>(offs);
  let b1 = Q > 1 ? x + <usize>load<i32>(offs, 4) : 0;
  let b2 = Q > 2 ? x + <usize>load<i32>(offs, 8) : 0;
  let b3 = Q > 2 ? x + <usize>load<i32>(offs, 12) : 0;
  let b4 = Q > 4 ? x + <usize>load<i32>(offs, 16) : 0;
  let b5 = Q > 4 ? x + <usize>load<i32>(offs, 20) : 0;
  const rowBytes = <usize>OW << 2;
  const rowStep = <usize>Wp << 2;
  for (let oh = 0; oh < OH; oh++) {
    for (let v: usize = 0; v < rowBytes; v += 16) {
      const x0 = v128.load(a0 + v);
      const x1 = R > 1 ? v128.load(a1 + v) : zero;
      let y = v128.load(b0 + v); s00 = madd(x0, y, s00); if (R > 1) s10 = madd(x1, y, s10);
      if (Q > 1) { y = v128.load(b1 + v); s01 = madd(x0, y, s01); if (R > 1) s11 = madd(x1, y, s11); }
      if (Q > 2) {
        y = v128.load(b2 + v); s02 = madd(x0, y, s02); if (R > 1) s12 = madd(x1, y, s12);
        y = v128.load(b3 + v); s03 = madd(x0, y, s03); if (R > 1) s13 = madd(x1, y, s13);
      }
      if (Q > 4) {
        y = v128.load(b4 + v); s04 = madd(x0, y, s04); if (R > 1) s14 = madd(x1, y, s14);
        y = v128.load(b5 + v); s05 = madd(x0, y, s05); if (R > 1) s15 = madd(x1, y, s15);
      }
    }
    a0 += rowBytes; a1 += rowBytes;
    b0 += rowStep; b1 += rowStep; b2 += rowStep; b3 += rowStep; b4 += rowStep; b5 += rowStep;
  }
  if (Q == 1) addDots1(c, s00);
  else if (Q == 2) addDots2(c, s00, s01);
  else { addDots4(c, s00, s01, s02, s03); if (Q > 4) addDots2(c + 16, s04, s05); }
  if (R > 1) {
    const c1 = c + ldc;
    if (Q == 1) addDots1(c1, s10);
    else if (Q == 2) addDots2(c1, s10, s11);
    else { addDots4(c1, s10, s11, s12, s13); if (Q > 4) addDots2(c1 + 16, s14, s15); }
  }
}

/** c[0] += (l0 + l1) + (l2 + l3) of s. */
// @ts-ignore: decorator
@inline function addDots1(c: usize, s: v128): void {
  store<f32>(c, load<f32>(c) + ((f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3))));
}

/**
 * C[M × N] += A[M × K]·B[N × K]ᵀ as rowsDot, A's rows contiguous (K = OH·OW floats), B's row j the
 * shifted view x + offs[j] described above.
 */
export function rowsDotAt(C: usize, A: usize, x: usize, offs: usize, M: i32, N: i32, OH: i32, OW: i32, Wp: i32): void {
  const ld = <usize>(OH * OW) << 2;
  const ldc = <usize>N << 2;
  for (let i0 = 0; i0 < M; i0 += 2) {
    const two = M - i0 >= 2;
    const a = A + <usize>i0 * ld;
    const c = C + <usize>i0 * ldc;
    let j0 = 0;
    while (j0 < N) {
      const left = N - j0;
      const Q = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const cj = c + (<usize>j0 << 2);
      const o = offs + (<usize>j0 << 2);
      if (two) {
        if (Q == 6) dotAt2x6(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else if (Q == 4) dotAt2x4(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else if (Q == 2) dotAt2x2(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else dotAt2x1(cj, ldc, a, ld, x, o, OH, OW, Wp);
      } else {
        if (Q == 6) dotAt1x6(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else if (Q == 4) dotAt1x4(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else if (Q == 2) dotAt1x2(cj, ldc, a, ld, x, o, OH, OW, Wp);
        else dotAt1x1(cj, ldc, a, ld, x, o, OH, OW, Wp);
      }
      j0 += Q;
    }
  }
}

/**
 * rowsGemm's C[M × OH·OW] = A·B over B's shifted views: for each output row and block of 8 columns
 * (the last block starting at OW − 8 and rewriting columns the one before wrote, with the same
 * values), the tiles of every row block. OW ≥ 8. An odd M's last block runs into `tile`.
 */
export function rowsGemmAt(C: usize, ap: usize, x: usize, offs: usize, M: i32, K: i32, OH: i32, OW: i32, Wp: i32, tile: usize): void {
  const ldc = <usize>(OH * OW) << 2;
  const MP = up2(M);
  for (let oh = 0; oh < OH; oh++) {
    for (let j0 = 0; j0 < OW; j0 += 8) {
      const j = min(j0, OW - 8);
      const b = x + (<usize>(oh * Wp + j) << 2);
      const cj = C + (<usize>(oh * OW + j) << 2);
      for (let i0 = 0; i0 < MP; i0 += 6) {
        const R = min(6, MP - i0);
        const rows = min(R, M - i0);
        const a = ap + (<usize>(i0 * K) << 4);
        const direct = rows == R;
        const dst = direct ? cj + <usize>i0 * ldc : tile;
        const ld: usize = direct ? ldc : 32;
        if (R == 6) tileAt6(dst, ld, a, b, offs, K);
        else if (R == 4) tileAt4(dst, ld, a, b, offs, K);
        else tileAt2(dst, ld, a, b, offs, K);
        if (!direct) {
          for (let r = 0; r < rows; r++) memory.copy(cj + <usize>(i0 + r) * ldc, tile + (<usize>r << 5), 32);
        }
      }
    }
  }
}
