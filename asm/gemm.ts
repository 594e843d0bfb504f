// GEMM: C[M×N] (+)= op(A)·op(B), the three layouts training needs.
//
// Shape of the computation (GotoBLAS-style, sized for one wasm thread under JavaScriptCore):
//  - K is cut into blocks of at most KC; for each block, B is packed into panels of NR = 8 columns,
//    [panel][k][8] with zero columns past N, so the micro-kernel reads B with two aligned v128 loads;
//  - for each block of MR = 6 rows of A, A is packed *pre-broadcast*: [k][row][4 equal lanes]. The
//    micro-kernel then reads A with plain v128 loads at immediate offsets. (A broadcast from memory
//    in JSC either goes through a GPR or needs an extra address add per load; a broadcast from a
//    register costs a shuffle uop on the FMA ports. Pre-broadcast measured ~20% faster than both.)
//  - the 6×8 micro-kernel keeps 12 f32x4 accumulators + 2 B vectors + 1 A vector + 1 scratch for the
//    product (JSC lowers relaxed_madd to mul + add on x86, so both builds need it): exactly the 16
//    xmm registers JSC allocates on x86-64. Larger tiles spill.
//  - edge blocks (M mod 6 rows, N mod 8 columns) run a 2- or 4-row, 4- or 8-column instance of the
//    same kernel on the zero-padded packs, into a small tile buffer when it does not fit exactly;
//    a scalar loop then adds or copies the valid part into C. The last 7 or 8 rows go as 4 + 3 or
//    4 + 4 rather than 6 + 1 or 6 + 2 (see blockRows);
//  - B that is already row-major in whole 8-column panels, narrow, and multiplied by few rows of A
//    is read in place instead of packed (see the driver).
//
// Scratch layout in `pack` (bytes; the caller sizes it with GEMM_PACK_FLOATS in abi.ts):
//   [0, kcMax·Npad·4)          packed B for one K block (Npad = N rounded up to 8)
//   [.., + kcMax·MR·16)        packed, pre-broadcast A for one row block
//   [.., + MR·NR·4)            edge tile
// with kcMax = ⌈K / ⌈K/KC⌉⌉ ≤ min(K, KC) (even K blocks). Keep in sync with GEMM_PACK_FLOATS.

import { madd } from "./simd";

const MR: i32 = 6;
const NR: i32 = 8;
/** Largest K block: 6 rows · 256 · 16 B = 24 KiB of packed A stays in L1 beside a B panel. */
const KC: i32 = 256;
/** Unpacked B (see the driver): at most this many columns (1 KiB rows) and rows of A. */
const DIRECT_MAX_N: i32 = 256;
const DIRECT_MAX_M: i32 = 64;

/** How packed B reads its source. */
const B_ROWS: i32 = 0; // element (k, j) at B + k·ldb + 4j   (B is K×N, gemm_nn / gemm_tn)
const B_COLS: i32 = 1; // element (k, j) at B + j·ldb + 4k   (B is N×K, gemm_nt)

/** C[M×N] (+)= A[M×K] · B[K×N]. */
export function gemm_nn(C: usize, A: usize, B: usize, M: i32, K: i32, N: i32, accumulate: i32, pack: usize): void {
  gemm(C, A, <usize>K << 2, 4, B, B_ROWS, <usize>N << 2, M, K, N, accumulate, pack);
}

/** C[M×N] (+)= A[M×K] · B[N×K]ᵀ. */
export function gemm_nt(C: usize, A: usize, B: usize, M: i32, K: i32, N: i32, accumulate: i32, pack: usize): void {
  gemm(C, A, <usize>K << 2, 4, B, B_COLS, <usize>K << 2, M, K, N, accumulate, pack);
}

/**
 * C[M×N] (+)= A[K×M]ᵀ · B[K×N], A's rows `lda` floats apart (0: M, a whole matrix). With lda, a caller
 * computes rows [lo, hi) of a wider product on its own: C + lo·N, A + lo, M = hi − lo, lda = the full
 * M. Rows cut at multiples of MR, the last piece ending at the full M, come out bitwise as in one call:
 * every element is the same products summed in the same order by the same row blocks.
 */
export function gemm_tn(C: usize, A: usize, B: usize, M: i32, K: i32, N: i32, accumulate: i32, pack: usize, lda: i32): void {
  gemm(C, A, 4, <usize>(lda > 0 ? lda : M) << 2, B, B_ROWS, <usize>N << 2, M, K, N, accumulate, pack);
}

/**
 * The shared driver. A's element (i, k) is at A + i·aRow + k·aK (bytes); B per `bMode`.
 */
function gemm(
  C: usize, A: usize, aRow: usize, aK: usize, B: usize, bMode: i32, ldb: usize,
  M: i32, K: i32, N: i32, accumulate: i32, pack: usize,
): void {
  if (M <= 0 || N <= 0) return;
  const ldc = <usize>N << 2;
  if (K <= 0) {
    if (!accumulate) memory.fill(C, 0, <usize>M * ldc);
    return;
  }
  // Even K blocks (784 → 4 × 196, not 3 × 256 + 16): no block is left nearly empty.
  const kBlocks = (K + KC - 1) / KC;
  const kcMax = (K + kBlocks - 1) / kBlocks;
  const panels = (N + NR - 1) / NR;
  const aPack = pack + (<usize>kcMax * <usize>panels << 5);
  const tile = aPack + <usize>kcMax * <usize>(MR * 16);

  // B read in place, unpacked, when it is row-major with whole 8-column panels (gemm_nn, gemm_tn) and
  // few rows of A share each panel: packing B costs a pass over it per K block, which only M/6 row
  // blocks amortize. Narrow B only, so a panel's K rows stay at most 1 KiB apart (wider rows alias in
  // L1 and miss the TLB: 1024³ ran at 55% of the ceiling unpacked, 88% packed). Same products in the
  // same order as from a pack: bitwise the same C.
  const direct = bMode == B_ROWS && (N & 7) == 0 && N <= DIRECT_MAX_N && M <= DIRECT_MAX_M;
  const bStep: usize = direct ? ldb : NR << 2;
  for (let k0 = 0; k0 < K; k0 += kcMax) {
    const kc = min(kcMax, K - k0);
    if (!direct) {
      if (bMode == B_ROWS) packBRows(pack, B + <usize>k0 * ldb, ldb, kc, N);
      else packBCols(pack, B + (<usize>k0 << 2), ldb, kc, N);
    }
    const loadC = accumulate != 0 || k0 > 0;
    const panelBytes: usize = direct ? NR << 2 : <usize>kc << 5;
    const bStart = direct ? B + <usize>k0 * ldb : pack;
    for (let i0 = 0; i0 < M; ) {
      const rows = blockRows(M - i0);
      packA(aPack, A + <usize>i0 * aRow + <usize>k0 * aK, aRow, aK, rows, kc);
      let cp = C + <usize>i0 * ldc;
      let bp = bStart;
      for (let j0 = 0; j0 < N; j0 += NR) {
        const cols = min(NR, N - j0);
        // the smallest kernel covering the block; straight into C when it fits exactly
        const R = rows > 4 ? 6 : rows > 2 ? 4 : 2;
        const W = cols > 4 ? 8 : 4;
        const exact = rows == R && cols == W;
        const dst = exact ? cp : tile;
        const ld: usize = exact ? ldc : NR << 2;
        const acc = exact && loadC;
        if (direct) {
          if (R == 6) kernel6x8B(dst, ld, aPack, bp, bStep, kc, acc);
          else if (R == 4) kernel4x8B(dst, ld, aPack, bp, bStep, kc, acc);
          else kernel2x8B(dst, ld, aPack, bp, bStep, kc, acc);
        } else if (R == 6) {
          if (W == 8) kernel6x8(dst, ld, aPack, bp, kc, acc);
          else kernel6x4(dst, ld, aPack, bp, kc, acc);
        } else if (R == 4) {
          if (W == 8) kernel4x8(dst, ld, aPack, bp, kc, acc);
          else kernel4x4(dst, ld, aPack, bp, kc, acc);
        } else {
          if (W == 8) kernel2x8(dst, ld, aPack, bp, kc, acc);
          else kernel2x4(dst, ld, aPack, bp, kc, acc);
        }
        if (!exact) mergeTile(cp, ldc, tile, rows, cols, loadC);
        cp += NR << 2;
        bp += panelBytes;
      }
      i0 += rows;
    }
  }
}

/**
 * Rows of the next row block when `left` rows of A remain: 6 (the full kernel) except that the last 7
 * or 8 go as 4 + 3 or 4 + 4. A last block of 1 or 2 rows would run the 2-row kernel, whose 4
 * accumulator chains leave the adder waiting on its own latency (about 2/3 of full speed); the 4-row
 * kernel keeps 8 chains busy.
 */
// @ts-ignore: decorator
@inline
function blockRows(left: i32): i32 {
  return left == 7 || left == 8 ? 4 : min(MR, left);
}

// One function per tile shape, each instantiating the template with literals. (Selecting the shape
// with literal arguments to one inlined template inside the driver does not work: Binaryen folds the
// near-identical copies back into one loop with run-time selects, at half the speed.)
function kernel6x8(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 6, 8); }
function kernel6x4(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 6, 4); }
function kernel4x8(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 4, 8); }
function kernel4x4(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 4, 4); }
function kernel2x8(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 2, 8); }
function kernel2x4(C: usize, ldc: usize, ap: usize, bp: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, NR << 2, kc, loadC, 2, 4); }
// B read in place: the panel's rows `bStep` bytes apart (full 8-column panels only).
function kernel6x8B(C: usize, ldc: usize, ap: usize, bp: usize, bStep: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, bStep, kc, loadC, 6, 8); }
function kernel4x8B(C: usize, ldc: usize, ap: usize, bp: usize, bStep: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, bStep, kc, loadC, 4, 8); }
function kernel2x8B(C: usize, ldc: usize, ap: usize, bp: usize, bStep: usize, kc: i32, loadC: bool): void { kernel(C, ldc, ap, bp, bStep, kc, loadC, 2, 8); }

/**
 * The micro-kernel template: C[R×W] (+)= Apacked[kc×6 (pre-broadcast)] · Bpanel[kc×8], for R ∈ {2, 4, 6} rows
 * and W ∈ {4, 8} columns (R and W are literals at every call site, so each instance is straight-line
 * code with only its own accumulators). kc ≥ 1. Pointers are advanced by hand and every load uses an
 * immediate offset. The 6×8 instance does nearly all the work; the smaller ones keep thin edges
 * (M mod 6, N mod 8, e.g. a 32-row worker batch or 10 classes) from paying for a full tile.
 */
// @ts-ignore: decorator
@inline
function kernel(C: usize, ldc: usize, ap: usize, bp: usize, bStep: usize, kc: i32, loadC: bool, R: i32, W: i32): void {
  const zero = f32x4.splat(0);
  let c00 = zero, c01 = zero, c10 = zero, c11 = zero, c20 = zero, c21 = zero;
  let c30 = zero, c31 = zero, c40 = zero, c41 = zero, c50 = zero, c51 = zero;
  if (loadC) {
    let p = C;
    c00 = v128.load(p, 0); if (W > 4) c01 = v128.load(p, 16); p += ldc;
    c10 = v128.load(p, 0); if (W > 4) c11 = v128.load(p, 16); p += ldc;
    if (R > 2) {
      c20 = v128.load(p, 0); if (W > 4) c21 = v128.load(p, 16); p += ldc;
      c30 = v128.load(p, 0); if (W > 4) c31 = v128.load(p, 16); p += ldc;
    }
    if (R > 4) {
      c40 = v128.load(p, 0); if (W > 4) c41 = v128.load(p, 16); p += ldc;
      c50 = v128.load(p, 0); if (W > 4) c51 = v128.load(p, 16);
    }
  }
  const end = ap + <usize>kc * (MR * 16);
  do {
    const b0 = v128.load(bp, 0);
    const b1 = W > 4 ? v128.load(bp, 16) : zero;
    let a = v128.load(ap, 0); c00 = madd(a, b0, c00); if (W > 4) c01 = madd(a, b1, c01);
    a = v128.load(ap, 16); c10 = madd(a, b0, c10); if (W > 4) c11 = madd(a, b1, c11);
    if (R > 2) {
      a = v128.load(ap, 32); c20 = madd(a, b0, c20); if (W > 4) c21 = madd(a, b1, c21);
      a = v128.load(ap, 48); c30 = madd(a, b0, c30); if (W > 4) c31 = madd(a, b1, c31);
    }
    if (R > 4) {
      a = v128.load(ap, 64); c40 = madd(a, b0, c40); if (W > 4) c41 = madd(a, b1, c41);
      a = v128.load(ap, 80); c50 = madd(a, b0, c50); if (W > 4) c51 = madd(a, b1, c51);
    }
    ap += 96;
    bp += bStep;
  } while (ap < end);
  let p = C;
  v128.store(p, c00, 0); if (W > 4) v128.store(p, c01, 16); p += ldc;
  v128.store(p, c10, 0); if (W > 4) v128.store(p, c11, 16); p += ldc;
  if (R > 2) {
    v128.store(p, c20, 0); if (W > 4) v128.store(p, c21, 16); p += ldc;
    v128.store(p, c30, 0); if (W > 4) v128.store(p, c31, 16); p += ldc;
  }
  if (R > 4) {
    v128.store(p, c40, 0); if (W > 4) v128.store(p, c41, 16); p += ldc;
    v128.store(p, c50, 0); if (W > 4) v128.store(p, c51, 16);
  }
}

/** C[rows×cols] = (loadC ? C : 0) + tile[rows×cols] (tile row stride NR floats). */
function mergeTile(C: usize, ldc: usize, tile: usize, rows: i32, cols: i32, loadC: bool): void {
  for (let r = 0; r < rows; r++) {
    const cr = C + <usize>r * ldc;
    const tr = tile + (<usize>(r * NR) << 2);
    for (let c = 0; c < cols; c++) {
      const o = <usize>c << 2;
      const v = load<f32>(tr + o);
      store<f32>(cr + o, loadC ? load<f32>(cr + o) + v : v);
    }
  }
}

/**
 * Packs `rows` (≤ 6) rows × kc of A, pre-broadcast: dst[k][r] = splat(A(r, k)); rows past `rows`
 * are zero up to the rows of the kernel that runs on the block (2, 4 or 6), which reads no further.
 */
function packA(dst: usize, A: usize, aRow: usize, aK: usize, rows: i32, kc: i32): void {
  if (rows == MR) {
    let a0 = A;
    let a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow, a4 = a3 + aRow, a5 = a4 + aRow;
    for (let k = 0; k < kc; k++) {
      v128.store(dst, v128.load32_splat(a0), 0);
      v128.store(dst, v128.load32_splat(a1), 16);
      v128.store(dst, v128.load32_splat(a2), 32);
      v128.store(dst, v128.load32_splat(a3), 48);
      v128.store(dst, v128.load32_splat(a4), 64);
      v128.store(dst, v128.load32_splat(a5), 80);
      a0 += aK; a1 += aK; a2 += aK; a3 += aK; a4 += aK; a5 += aK;
      dst += 96;
    }
  } else if (rows == 4) {
    // the common edge (the last 8 rows go as 4 + 4, see blockRows): the 4-row kernel reads slots 0..3
    let a0 = A;
    let a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow;
    for (let k = 0; k < kc; k++) {
      v128.store(dst, v128.load32_splat(a0), 0);
      v128.store(dst, v128.load32_splat(a1), 16);
      v128.store(dst, v128.load32_splat(a2), 32);
      v128.store(dst, v128.load32_splat(a3), 48);
      a0 += aK; a1 += aK; a2 += aK; a3 += aK;
      dst += 96;
    }
  } else {
    // An edge block runs the 4-row kernel (3 or 4 rows), the 2-row one (1 or 2) or the 6-row one (5):
    // write the slots that kernel reads, zeros past `rows`. The row tests do not change along k.
    const zero = f32x4.splat(0);
    const R = rows > 4 ? 6 : rows > 2 ? 4 : 2;
    let a0 = A;
    let a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow, a4 = a3 + aRow;
    for (let k = 0; k < kc; k++) {
      v128.store(dst, v128.load32_splat(a0), 0);
      if (rows > 1) v128.store(dst, v128.load32_splat(a1), 16); else v128.store(dst, zero, 16);
      if (R > 2) {
        if (rows > 2) v128.store(dst, v128.load32_splat(a2), 32); else v128.store(dst, zero, 32);
        if (rows > 3) v128.store(dst, v128.load32_splat(a3), 48); else v128.store(dst, zero, 48);
      }
      if (R > 4) {
        v128.store(dst, v128.load32_splat(a4), 64); // rows == 5 here
        v128.store(dst, zero, 80);
      }
      a0 += aK; a1 += aK; a2 += aK; a3 += aK; a4 += aK;
      dst += 96;
    }
  }
}

/** Packs B (element (k, j) at B + k·ldb + 4j) into [panel][k][8], zero past N. */
function packBRows(dst: usize, B: usize, ldb: usize, kc: i32, N: i32): void {
  for (let j0 = 0; j0 < N; j0 += NR) {
    const cols = N - j0;
    let src = B + (<usize>j0 << 2);
    if (cols >= NR) {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src, 0), 0);
        v128.store(dst, v128.load(src, 16), 16);
        src += ldb;
        dst += 32;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, f32x4.splat(0), 0);
        v128.store(dst, f32x4.splat(0), 16);
        for (let c = 0; c < cols; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + (<usize>c << 2)));
        src += ldb;
        dst += 32;
      }
    }
  }
}

/**
 * Packs Bᵀ (element (k, j) at B + j·ldb + 4k, i.e. B stored N×K) into [panel][k][8], zero past N.
 * Full panels go 4 k at a time through 4×4 register transposes of the 8 source rows.
 */
function packBCols(dst: usize, B: usize, ldb: usize, kc: i32, N: i32): void {
  for (let j0 = 0; j0 < N; j0 += NR) {
    const cols = N - j0;
    let r0 = B + <usize>j0 * ldb;
    if (cols >= NR) {
      let r1 = r0 + ldb, r2 = r1 + ldb, r3 = r2 + ldb, r4 = r3 + ldb, r5 = r4 + ldb, r6 = r5 + ldb, r7 = r6 + ldb;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        // rows j0..j0+3 → columns 0..3 of k..k+3
        let x0 = v128.load(r0), x1 = v128.load(r1), x2 = v128.load(r2), x3 = v128.load(r3);
        let t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5);
        let t1 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7);
        let t2 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5);
        let t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
        v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5), 0);
        v128.store(dst, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 32);
        v128.store(dst, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 64);
        v128.store(dst, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 96);
        x0 = v128.load(r4); x1 = v128.load(r5); x2 = v128.load(r6); x3 = v128.load(r7);
        t0 = v128.shuffle<f32>(x0, x1, 0, 4, 1, 5);
        t1 = v128.shuffle<f32>(x0, x1, 2, 6, 3, 7);
        t2 = v128.shuffle<f32>(x2, x3, 0, 4, 1, 5);
        t3 = v128.shuffle<f32>(x2, x3, 2, 6, 3, 7);
        v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5), 16);
        v128.store(dst, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 48);
        v128.store(dst, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 80);
        v128.store(dst, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 112);
        r0 += 16; r1 += 16; r2 += 16; r3 += 16; r4 += 16; r5 += 16; r6 += 16; r7 += 16;
        dst += 128;
      }
      for (; k < kc; k++) {
        store<f32>(dst, load<f32>(r0), 0); store<f32>(dst, load<f32>(r1), 4);
        store<f32>(dst, load<f32>(r2), 8); store<f32>(dst, load<f32>(r3), 12);
        store<f32>(dst, load<f32>(r4), 16); store<f32>(dst, load<f32>(r5), 20);
        store<f32>(dst, load<f32>(r6), 24); store<f32>(dst, load<f32>(r7), 28);
        r0 += 4; r1 += 4; r2 += 4; r3 += 4; r4 += 4; r5 += 4; r6 += 4; r7 += 4;
        dst += 32;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, f32x4.splat(0), 0);
        v128.store(dst, f32x4.splat(0), 16);
        const src = r0 + (<usize>k << 2);
        for (let c = 0; c < cols; c++) store<f32>(dst + (<usize>c << 2), load<f32>(src + <usize>c * ldb));
        dst += 32;
      }
    }
  }
}
