// 3×3 convolution, stride 1, padding 1, NCHW, by Winograd's minimal filtering F(2×2, 3×3) (Lavin &
// Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): each 2×2 output tile is
//   Y = Aᵀ [ Σ_i (G g_oi Gᵀ) ⊙ (Bᵀ d_i B) ] A
// over the 4×4 input tiles d_i (overlapping by 2), with
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Aᵀ = [1 1 1 0; 0 1 −1 −1].
// A tile then costs 16 multiply-adds per (output, input) channel pair instead of 36: the sum over
// input channels is, for each of the 16 positions ξ of the 4×4 transform, a GEMM
//   M[ξ][o][t] = Σ_i U[ξ][o][i] · V[ξ][i][t]     (t = tile, over a chunk of samples)
// and the transforms are additions only.
//
//   forward          y  = conv(x, w)
//   input gradient   dx = conv(dy, w transposed over channels and flipped over taps): the "full"
//                    correlation, which padding 1 of a 3×3 kernel makes another padding-1 3×3
//                    convolution, so it is the same code reading the weights through other strides
//   weight gradient  the chain rule through the same linear algorithm: dM = A·dY·Aᵀ per tile,
//                    dU[ξ][o][i] = Σ_t dM[ξ][o][t]·V[ξ][i][t], dw = Gᵀ·dU·G. It reads x and dy
//                    directly (no im2col, no col2im).
//
// Layouts. Tiles are numbered t = sample·TH·TW + th·TW + tw within a chunk of samples (TH = ⌈H/2⌉,
// TW = ⌈W/2⌉), chunks sized so a chunk has about CHUNK_TILES tiles (one transformed chunk stays in L2).
// V and M are [ξ][channel][Tp] with Tp = the chunk's tile count rounded up to 8 (zero columns past it).
// The transforms work on four horizontally adjacent tiles at once (one per lane); a row's last group
// starts at TW − 4 and recomputes tiles the previous group did, so no group is partial unless TW < 4.
// U is packed once per call, pre-broadcast ([ξ][block of ≤ 6 output rows][i][row][4 equal lanes]),
// for the same reason as in the shared GEMM: a broadcast load costs more than a plain one here.
//
// Scratch (floats; keep in sync with winogradScratchFloats in engine/kernels/abi.ts), for a layer
// with Ci inputs, Co outputs, C2 = max(Ci, Co) rounded up to even, and Tmax the largest chunk's Tp:
//   U   64·max(⌈Co⌉₂·Ci, ⌈Ci⌉₂·Co)     V, M   16·(⌈C2·Tmax⌉₃₂ + 16) + 8 each (ξ planes padded: xiFloats)
//   pad (2·TH + 2)·Wp, Wp = ⌈max(2·TW + 4, 12)⌉₄          dU  16·⌈Co⌉₂·⌈Ci⌉₂

import { madd } from "./simd";
import { tile2, tile4, tile6 } from "./tile";

/** Tiles per chunk the driver aims for (fewer samples when one sample has more). */
const CHUNK_TILES: i32 = 128;
const HALF: f32 = 0.5;

// @ts-ignore: decorator
@inline function tiles(n: i32): i32 { return (n + 1) >> 1; }
// @ts-ignore: decorator
@inline function up2(n: i32): i32 { return (n + 1) & ~1; }
// @ts-ignore: decorator
@inline function up4(n: i32): i32 { return (n + 3) & ~3; }
// @ts-ignore: decorator
@inline function up8(n: i32): i32 { return (n + 7) & ~7; }
// @ts-ignore: decorator
@inline function chunkSamples(P: i32): i32 { return (CHUNK_TILES + P - 1) / P; }
/**
 * Floats between the ξ planes of V or M: rows·Tp rounded so that the distance is an odd multiple of
 * 64 bytes. The transforms touch all 16 planes at once; planes a multiple of 4 KiB apart (128 tiles ×
 * 8 channels, say) would all fall into one L1 set and evict each other.
 */
// @ts-ignore: decorator
@inline function xiFloats(rows: i32, Tp: i32): i32 { return ((rows * Tp + 31) & ~31) + 16; }
// @ts-ignore: decorator
@inline function padWidth(W: i32): i32 { return up4(max(2 * tiles(W) + 4, 12)); }

// Where each part of the scratch starts, for a layer of Ci inputs and Co outputs on H×W maps (bytes from scratch).
// @ts-ignore: decorator
@inline function tmaxOf(H: i32, W: i32): i32 {
  const P = tiles(H) * tiles(W);
  return up8(chunkSamples(P) * P);
}
// @ts-ignore: decorator
@inline function uFloats(Ci: i32, Co: i32): i32 { return 64 * max(up2(Co) * Ci, up2(Ci) * Co); }
// @ts-ignore: decorator
@inline function vFloats(Ci: i32, Co: i32, H: i32, W: i32): i32 { return 16 * xiFloats(up2(max(Ci, Co)), tmaxOf(H, W)) + 8; }
// @ts-ignore: decorator
@inline function padFloats(H: i32, W: i32): i32 { return (2 * tiles(H) + 2) * padWidth(W); }
// @ts-ignore: decorator
@inline function regionV(s: usize, Ci: i32, Co: i32): usize { return s + (<usize>uFloats(Ci, Co) << 2); }
// @ts-ignore: decorator
@inline function regionM(s: usize, Ci: i32, Co: i32, H: i32, W: i32): usize { return regionV(s, Ci, Co) + (<usize>vFloats(Ci, Co, H, W) << 2); }
// @ts-ignore: decorator
@inline function regionPad(s: usize, Ci: i32, Co: i32, H: i32, W: i32): usize { return regionM(s, Ci, Co, H, W) + (<usize>vFloats(Ci, Co, H, W) << 2); }
// @ts-ignore: decorator
@inline function regionDu(s: usize, Ci: i32, Co: i32, H: i32, W: i32): usize { return regionPad(s, Ci, Co, H, W) + (<usize>padFloats(H, W) << 2); }

/** Floats of scratch the winograd_* kernels need for this layer (the TypeScript side mirrors it). */
export function winograd_scratch_floats(Ci: i32, Co: i32, H: i32, W: i32): i32 {
  return uFloats(Ci, Co) + 2 * vFloats(Ci, Co, H, W) + padFloats(H, W) + 16 * up2(Ci) * up2(Co);
}

// ---- weights -----------------------------------------------------------------------------------

/**
 * dst = U = G·g·Gᵀ for every (o < O, i < K), pre-broadcast; rows o ∈ [O, ⌈O⌉₂) are zero. The tap
 * (kh, kw) of g_oi is w[o·strideOut + i·strideIn + (flip ? 8 − (3kh + kw) : 3kh + kw)].
 */
function packWeights(dst: usize, w: usize, O: i32, K: i32, strideOut: i32, strideIn: i32, flip: bool): void {
  const OP = up2(O);
  const xiBytes = <usize>(OP * K) << 4;
  for (let o = 0; o < OP; o++) {
    const o0 = o - o % 6;
    const R = min(6, OP - o0);
    const r = o - o0;
    for (let i = 0; i < K; i++) {
      let p = dst + (<usize>(o0 * K + i * R + r) << 4);
      if (o >= O) {
        for (let xi = 0; xi < 16; xi++) { v128.store(p, f32x4.splat(0)); p += xiBytes; }
        continue;
      }
      const src = w + (<usize>(o * strideOut + i * strideIn) << 2);
      // g[kh][kw]
      const g00 = tap(src, 0, flip), g01 = tap(src, 1, flip), g02 = tap(src, 2, flip);
      const g10 = tap(src, 3, flip), g11 = tap(src, 4, flip), g12 = tap(src, 5, flip);
      const g20 = tap(src, 6, flip), g21 = tap(src, 7, flip), g22 = tap(src, 8, flip);
      // G·g: rows q = 0..3, columns kw
      const q00 = g00, q01 = g01, q02 = g02;
      const q10 = HALF * (g00 + g10 + g20), q11 = HALF * (g01 + g11 + g21), q12 = HALF * (g02 + g12 + g22);
      const q20 = HALF * (g00 - g10 + g20), q21 = HALF * (g01 - g11 + g21), q22 = HALF * (g02 - g12 + g22);
      const q30 = g20, q31 = g21, q32 = g22;
      // (G·g)·Gᵀ, row by row, ξ = 4q + j
      p = storeRow(p, xiBytes, q00, q01, q02);
      p = storeRow(p, xiBytes, q10, q11, q12);
      p = storeRow(p, xiBytes, q20, q21, q22);
      storeRow(p, xiBytes, q30, q31, q32);
    }
  }
}

// @ts-ignore: decorator
@inline function tap(src: usize, t: i32, flip: bool): f32 {
  return load<f32>(src + (<usize>(flip ? 8 - t : t) << 2));
}

/** Stores splat([a, ½(a+b+c), ½(a−b+c), c][j]) at p + j·xiBytes; returns p + 4·xiBytes. */
// @ts-ignore: decorator
@inline function storeRow(p: usize, xiBytes: usize, a: f32, b: f32, c: f32): usize {
  v128.store(p, f32x4.splat(a)); p += xiBytes;
  v128.store(p, f32x4.splat(HALF * (a + b + c))); p += xiBytes;
  v128.store(p, f32x4.splat(HALF * (a - b + c))); p += xiBytes;
  v128.store(p, f32x4.splat(c)); p += xiBytes;
  return p;
}

/** dw[o, i, :] (+)= Gᵀ·dU[ξ][o][i]·G for every pair (dU is [ξ][CoP][CiP]). */
function unpackWeightGradient(dw: usize, du: usize, Co: i32, Ci: i32, CoP: i32, CiP: i32, accumulate: bool): void {
  const xi = <usize>(CoP * CiP) << 2;
  for (let o = 0; o < Co; o++) {
    for (let i = 0; i < Ci; i++) {
      const p = du + (<usize>(o * CiP + i) << 2);
      // each row q of dU times G (4 → 3 columns): [x0 + ½(x1 + x2), ½(x1 − x2), ½(x1 + x2) + x3]
      let x0 = load<f32>(p), x1 = load<f32>(p + xi), x2 = load<f32>(p + 2 * xi), x3 = load<f32>(p + 3 * xi);
      const r00 = x0 + HALF * (x1 + x2), r01 = HALF * (x1 - x2), r02 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 4 * xi); x1 = load<f32>(p + 5 * xi); x2 = load<f32>(p + 6 * xi); x3 = load<f32>(p + 7 * xi);
      const r10 = x0 + HALF * (x1 + x2), r11 = HALF * (x1 - x2), r12 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 8 * xi); x1 = load<f32>(p + 9 * xi); x2 = load<f32>(p + 10 * xi); x3 = load<f32>(p + 11 * xi);
      const r20 = x0 + HALF * (x1 + x2), r21 = HALF * (x1 - x2), r22 = HALF * (x1 + x2) + x3;
      x0 = load<f32>(p + 12 * xi); x1 = load<f32>(p + 13 * xi); x2 = load<f32>(p + 14 * xi); x3 = load<f32>(p + 15 * xi);
      const r30 = x0 + HALF * (x1 + x2), r31 = HALF * (x1 - x2), r32 = HALF * (x1 + x2) + x3;
      // Gᵀ over the rows
      const d = dw + (<usize>((o * Ci + i) * 9) << 2);
      addOrStore(d, 0, r00 + HALF * (r10 + r20), accumulate);
      addOrStore(d, 4, r01 + HALF * (r11 + r21), accumulate);
      addOrStore(d, 8, r02 + HALF * (r12 + r22), accumulate);
      addOrStore(d, 12, HALF * (r10 - r20), accumulate);
      addOrStore(d, 16, HALF * (r11 - r21), accumulate);
      addOrStore(d, 20, HALF * (r12 - r22), accumulate);
      addOrStore(d, 24, HALF * (r10 + r20) + r30, accumulate);
      addOrStore(d, 28, HALF * (r11 + r21) + r31, accumulate);
      addOrStore(d, 32, HALF * (r12 + r22) + r32, accumulate);
    }
  }
}

// @ts-ignore: decorator
@inline function addOrStore(p: usize, offset: usize, v: f32, accumulate: bool): void {
  const q = p + offset;
  store<f32>(q, accumulate ? load<f32>(q) + v : v);
}

// ---- transforms ----------------------------------------------------------------------------------

/** pad[1 + h][1 + w] = x[h][w] (top = 1: the input transform; 0: the gradient transform), zeros elsewhere. */
function padPlane(pad: usize, x: usize, H: i32, W: i32, rows: i32, Wp: i32, border: i32): void {
  memory.fill(pad, 0, <usize>(rows * Wp) << 2);
  const dst = pad + (<usize>(border * Wp + border) << 2);
  for (let h = 0; h < H; h++) memory.copy(dst + (<usize>(h * Wp) << 2), x + (<usize>(h * W) << 2), <usize>W << 2);
}

/** Stores lanes [0, n) of v at p. */
// @ts-ignore: decorator
@inline function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) { v128.store(p, v); return; }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/**
 * The even (rowE) and odd (rowO) columns of the 8 floats at p: for four adjacent tiles of a padded
 * row (tile l reads p[2l .. 2l + 3]) their d0 and d1; d2 and d3 are the same shifted by one lane.
 */
// @ts-ignore: decorator
@inline function rowE(p: usize): v128 { return v128.shuffle<f32>(v128.load(p), v128.load(p, 16), 0, 2, 4, 6); }
// @ts-ignore: decorator
@inline function rowO(p: usize): v128 { return v128.shuffle<f32>(v128.load(p), v128.load(p, 16), 1, 3, 5, 7); }

/**
 * V[ξ][t] for the tiles of one H×W plane: v points at V[0][channel][first tile of this plane],
 * xiBytes is the distance between ξ planes of V. pad: the padPlane scratch.
 */
function transformInput(v: usize, xiBytes: usize, x: usize, H: i32, W: i32, pad: usize): void {
  const TH = tiles(H), TW = tiles(W);
  const Wp = padWidth(W);
  padPlane(pad, x, H, W, 2 * TH + 2, Wp, 1);
  const rowBytes = <usize>Wp << 2;
  const lanes = min(TW, 4);
  for (let th = 0; th < TH; th++) {
    for (let g = 0; g < TW; g += 4) {
      const tw0 = max(0, min(g, TW - 4));
      const p0 = pad + (<usize>(2 * th) * rowBytes) + (<usize>(2 * tw0) << 2);
      const p1 = p0 + rowBytes, p2 = p1 + rowBytes, p3 = p2 + rowBytes;
      // column transform of rows 1 and 2
      let e = rowE(p1), o = rowO(p1), x8 = v128.load(p1, 32);
      let e2 = v128.shuffle<f32>(e, x8, 1, 2, 3, 4), o3 = v128.shuffle<f32>(o, x8, 1, 2, 3, 5);
      const a0 = f32x4.sub(e, e2), a1 = f32x4.add(o, e2), a2 = f32x4.sub(e2, o), a3 = f32x4.sub(o, o3);
      e = rowE(p2); o = rowO(p2); x8 = v128.load(p2, 32);
      e2 = v128.shuffle<f32>(e, x8, 1, 2, 3, 4); o3 = v128.shuffle<f32>(o, x8, 1, 2, 3, 5);
      const b0 = f32x4.sub(e, e2), b1 = f32x4.add(o, e2), b2 = f32x4.sub(e2, o), b3 = f32x4.sub(o, o3);
      let dst = v + (<usize>(th * TW + tw0) << 2);
      const d4 = dst + 4 * xiBytes, d8 = d4 + 4 * xiBytes, d12 = d8 + 4 * xiBytes;
      // ξ rows 1 (r1 + r2) and 2 (r2 − r1)
      storeLanes(d4, f32x4.add(a0, b0), lanes); storeLanes(d4 + xiBytes, f32x4.add(a1, b1), lanes);
      storeLanes(d4 + 2 * xiBytes, f32x4.add(a2, b2), lanes); storeLanes(d4 + 3 * xiBytes, f32x4.add(a3, b3), lanes);
      storeLanes(d8, f32x4.sub(b0, a0), lanes); storeLanes(d8 + xiBytes, f32x4.sub(b1, a1), lanes);
      storeLanes(d8 + 2 * xiBytes, f32x4.sub(b2, a2), lanes); storeLanes(d8 + 3 * xiBytes, f32x4.sub(b3, a3), lanes);
      // ξ row 0 (r0 − r2)
      e = rowE(p0); o = rowO(p0); x8 = v128.load(p0, 32);
      e2 = v128.shuffle<f32>(e, x8, 1, 2, 3, 4); o3 = v128.shuffle<f32>(o, x8, 1, 2, 3, 5);
      storeLanes(dst, f32x4.sub(f32x4.sub(e, e2), b0), lanes); storeLanes(dst + xiBytes, f32x4.sub(f32x4.add(o, e2), b1), lanes);
      storeLanes(dst + 2 * xiBytes, f32x4.sub(f32x4.sub(e2, o), b2), lanes); storeLanes(dst + 3 * xiBytes, f32x4.sub(f32x4.sub(o, o3), b3), lanes);
      // ξ row 3 (r1 − r3)
      e = rowE(p3); o = rowO(p3); x8 = v128.load(p3, 32);
      e2 = v128.shuffle<f32>(e, x8, 1, 2, 3, 4); o3 = v128.shuffle<f32>(o, x8, 1, 2, 3, 5);
      storeLanes(d12, f32x4.sub(a0, f32x4.sub(e, e2)), lanes); storeLanes(d12 + xiBytes, f32x4.sub(a1, f32x4.add(o, e2)), lanes);
      storeLanes(d12 + 2 * xiBytes, f32x4.sub(a2, f32x4.sub(e2, o)), lanes); storeLanes(d12 + 3 * xiBytes, f32x4.sub(a3, f32x4.sub(o, o3)), lanes);
    }
  }
}

/**
 * dM[ξ][t] = (A·dY·Aᵀ)[ξ] for the tiles of one H×W gradient plane dy (zero past its edges); dm
 * points at dM[0][channel][first tile of this plane].
 */
function transformGradient(dm: usize, xiBytes: usize, dy: usize, H: i32, W: i32, pad: usize): void {
  const TH = tiles(H), TW = tiles(W);
  const Wp = padWidth(W);
  padPlane(pad, dy, H, W, 2 * TH, Wp, 0);
  const rowBytes = <usize>Wp << 2;
  const lanes = min(TW, 4);
  for (let th = 0; th < TH; th++) {
    for (let g = 0; g < TW; g += 4) {
      const tw0 = max(0, min(g, TW - 4));
      const p0 = pad + (<usize>(2 * th) * rowBytes) + (<usize>(2 * tw0) << 2);
      const p1 = p0 + rowBytes;
      // A·e over columns: [e0, e0 + e1, e0 − e1, −e1]
      const e0 = rowE(p0), o0 = rowO(p0), e1 = rowE(p1), o1 = rowO(p1);
      const r00 = e0, r01 = f32x4.add(e0, o0), r02 = f32x4.sub(e0, o0), r03 = f32x4.neg(o0);
      const r10 = e1, r11 = f32x4.add(e1, o1), r12 = f32x4.sub(e1, o1), r13 = f32x4.neg(o1);
      const dst = dm + (<usize>(th * TW + tw0) << 2);
      const d4 = dst + 4 * xiBytes, d8 = d4 + 4 * xiBytes, d12 = d8 + 4 * xiBytes;
      storeLanes(dst, r00, lanes); storeLanes(dst + xiBytes, r01, lanes); storeLanes(dst + 2 * xiBytes, r02, lanes); storeLanes(dst + 3 * xiBytes, r03, lanes);
      storeLanes(d4, f32x4.add(r00, r10), lanes); storeLanes(d4 + xiBytes, f32x4.add(r01, r11), lanes);
      storeLanes(d4 + 2 * xiBytes, f32x4.add(r02, r12), lanes); storeLanes(d4 + 3 * xiBytes, f32x4.add(r03, r13), lanes);
      storeLanes(d8, f32x4.sub(r00, r10), lanes); storeLanes(d8 + xiBytes, f32x4.sub(r01, r11), lanes);
      storeLanes(d8 + 2 * xiBytes, f32x4.sub(r02, r12), lanes); storeLanes(d8 + 3 * xiBytes, f32x4.sub(r03, r13), lanes);
      storeLanes(d12, f32x4.neg(r10), lanes); storeLanes(d12 + xiBytes, f32x4.neg(r11), lanes);
      storeLanes(d12 + 2 * xiBytes, f32x4.neg(r12), lanes); storeLanes(d12 + 3 * xiBytes, f32x4.neg(r13), lanes);
    }
  }
}

/** Stores the first n (≤ 8) floats of [lo | hi] at p. */
// @ts-ignore: decorator
@inline function store8(p: usize, lo: v128, hi: v128, n: i32): void {
  if (n >= 8) { v128.store(p, lo); v128.store(p, hi, 16); return; }
  storeLanes(p, lo, n);
  storeLanes(p + 16, hi, n - 4);
}

/**
 * y = Aᵀ·M[ξ]·A for the tiles of one H×W output plane; m points at M[0][channel][first tile].
 * Tiles past the plane's edge (odd H or W) are computed and not stored.
 */
function transformOutput(y: usize, m: usize, xiBytes: usize, H: i32, W: i32): void {
  const TH = tiles(H), TW = tiles(W);
  for (let th = 0; th < TH; th++) {
    for (let g = 0; g < TW; g += 4) {
      const tw0 = max(0, min(g, TW - 4));
      const p = m + (<usize>(th * TW + tw0) << 2);
      const p4 = p + 4 * xiBytes, p8 = p4 + 4 * xiBytes, p12 = p8 + 4 * xiBytes;
      // Aᵀ over rows: s = m0 + m1 + m2, d = m1 − m2 − m3, per column j
      let m1 = v128.load(p4), m2 = v128.load(p8);
      const s0 = f32x4.add(f32x4.add(v128.load(p), m1), m2), d0 = f32x4.sub(f32x4.sub(m1, m2), v128.load(p12));
      m1 = v128.load(p4 + xiBytes); m2 = v128.load(p8 + xiBytes);
      const s1 = f32x4.add(f32x4.add(v128.load(p + xiBytes), m1), m2), d1 = f32x4.sub(f32x4.sub(m1, m2), v128.load(p12 + xiBytes));
      m1 = v128.load(p4 + 2 * xiBytes); m2 = v128.load(p8 + 2 * xiBytes);
      const s2 = f32x4.add(f32x4.add(v128.load(p + 2 * xiBytes), m1), m2), d2 = f32x4.sub(f32x4.sub(m1, m2), v128.load(p12 + 2 * xiBytes));
      m1 = v128.load(p4 + 3 * xiBytes); m2 = v128.load(p8 + 3 * xiBytes);
      const s3 = f32x4.add(f32x4.add(v128.load(p + 3 * xiBytes), m1), m2), d3 = f32x4.sub(f32x4.sub(m1, m2), v128.load(p12 + 3 * xiBytes));
      // Aᵀ over columns
      const y00 = f32x4.add(f32x4.add(s0, s1), s2), y01 = f32x4.sub(f32x4.sub(s1, s2), s3);
      const y10 = f32x4.add(f32x4.add(d0, d1), d2), y11 = f32x4.sub(f32x4.sub(d1, d2), d3);
      const n = W - 2 * tw0;
      const out = y + (<usize>(2 * th * W + 2 * tw0) << 2);
      store8(out, v128.shuffle<f32>(y00, y01, 0, 4, 1, 5), v128.shuffle<f32>(y00, y01, 2, 6, 3, 7), n);
      if (2 * th + 1 < H) store8(out + (<usize>W << 2), v128.shuffle<f32>(y10, y11, 0, 4, 1, 5), v128.shuffle<f32>(y10, y11, 2, 6, 3, 7), n);
    }
  }
}

// ---- the GEMMs per ξ (on the shared tile kernels) -------------------------------------------------

/** M[o][0..Tp) = Σ_k U[o][k]·V[k][0..Tp) for one ξ: OP (even) rows, K inner, Tp a multiple of 8. */
function gemmXi(m: usize, u: usize, v: usize, OP: i32, K: i32, Tp: i32): void {
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
function dotXi(acc: usize, dm: usize, v: usize, CoP: i32, CiP: i32, Tp: i32): void {
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

// ---- drivers --------------------------------------------------------------------------------------

/** dst[c][T .. Tp) = 0 for rows c < rows, each ξ (rows Tp floats apart, ξ planes xiBytes apart). */
function zeroTail(v: usize, xiBytes: usize, rows: i32, T: i32, Tp: i32): void {
  if (T == Tp) return;
  for (let xi = 0; xi < 16; xi++) {
    for (let c = 0; c < rows; c++) memory.fill(v + <usize>xi * xiBytes + (<usize>(c * Tp + T) << 2), 0, <usize>(Tp - T) << 2);
  }
}

/**
 * out[N, O, H, W] = conv3×3(inp[N, K, H, W]) with the weights seen through (strideOut, strideIn,
 * flip); Ci/Co name the layer (for the scratch layout), K/O the roles in this call.
 */
function convolve(out: usize, inp: usize, w: usize, N: i32, K: i32, H: i32, W: i32, O: i32, strideOut: i32, strideIn: i32, flip: bool, Ci: i32, Co: i32, scratch: usize): void {
  const u = scratch, V = regionV(scratch, Ci, Co), M = regionM(scratch, Ci, Co, H, W), pad = regionPad(scratch, Ci, Co, H, W);
  const OP = up2(O);
  packWeights(u, w, O, K, strideOut, strideIn, flip);
  const P = tiles(H) * tiles(W);
  const S = chunkSamples(P);
  const inPlane = <usize>(H * W) << 2;
  for (let n0 = 0; n0 < N; n0 += S) {
    const s = min(S, N - n0);
    const T = s * P;
    const Tp = up8(T);
    const vXi = <usize>xiFloats(up2(K), Tp) << 2;
    const mXi = <usize>xiFloats(OP, Tp) << 2;
    for (let j = 0; j < s; j++) {
      for (let c = 0; c < K; c++) {
        transformInput(V + (<usize>(c * Tp + j * P) << 2), vXi, inp + <usize>((n0 + j) * K + c) * inPlane, H, W, pad);
      }
    }
    zeroTail(V, vXi, K, T, Tp);
    for (let xi = 0; xi < 16; xi++) {
      gemmXi(M + <usize>xi * mXi, u + (<usize>(xi * OP * K) << 4), V + <usize>xi * vXi, OP, K, Tp);
    }
    for (let j = 0; j < s; j++) {
      for (let o = 0; o < O; o++) {
        transformOutput(out + <usize>((n0 + j) * O + o) * inPlane, M + (<usize>(o * Tp + j * P) << 2), mXi, H, W);
      }
    }
  }
}

/** y[N, Co, H, W] = conv3×3(x[N, Ci, H, W], w[Co, Ci, 3, 3]), stride 1, padding 1, no bias. */
export function winograd_forward(y: usize, x: usize, w: usize, N: i32, Ci: i32, H: i32, W: i32, Co: i32, scratch: usize): void {
  convolve(y, x, w, N, Ci, H, W, Co, Ci * 9, 9, false, Ci, Co, scratch);
}

/** dx[N, Ci, H, W] = ∂/∂x of winograd_forward given dy[N, Co, H, W] (overwrites dx). */
export function winograd_backward_input(dx: usize, dy: usize, w: usize, N: i32, Ci: i32, H: i32, W: i32, Co: i32, scratch: usize): void {
  convolve(dx, dy, w, N, Co, H, W, Ci, 9, Ci * 9, true, Ci, Co, scratch);
}

/** dw[Co, Ci, 3, 3] (+)= ∂/∂w of winograd_forward given x and dy; reads x and dy directly. */
export function winograd_backward_weights(dw: usize, x: usize, dy: usize, N: i32, Ci: i32, H: i32, W: i32, Co: i32, accumulate: i32, scratch: usize): void {
  const V = regionV(scratch, Ci, Co), M = regionM(scratch, Ci, Co, H, W), pad = regionPad(scratch, Ci, Co, H, W), dU = regionDu(scratch, Ci, Co, H, W);
  const CiP = up2(Ci), CoP = up2(Co);
  const duXi = <usize>(CoP * CiP) << 2;
  memory.fill(dU, 0, 16 * duXi);
  const P = tiles(H) * tiles(W);
  const S = chunkSamples(P);
  const plane = <usize>(H * W) << 2;
  for (let n0 = 0; n0 < N; n0 += S) {
    const s = min(S, N - n0);
    const T = s * P;
    const Tp = up8(T);
    const vXi = <usize>xiFloats(CiP, Tp) << 2;
    const mXi = <usize>xiFloats(CoP, Tp) << 2;
    for (let j = 0; j < s; j++) {
      for (let c = 0; c < Ci; c++) {
        transformInput(V + (<usize>(c * Tp + j * P) << 2), vXi, x + <usize>((n0 + j) * Ci + c) * plane, H, W, pad);
      }
      for (let o = 0; o < Co; o++) {
        transformGradient(M + (<usize>(o * Tp + j * P) << 2), mXi, dy + <usize>((n0 + j) * Co + o) * plane, H, W, pad);
      }
    }
    zeroTail(V, vXi, Ci, T, Tp);
    zeroTail(M, mXi, Co, T, Tp);
    for (let xi = 0; xi < 16; xi++) {
      // an odd channel count's padding row takes part in the dot products as zeros
      if (Ci < CiP) memory.fill(V + <usize>xi * vXi + (<usize>(Ci * Tp) << 2), 0, <usize>Tp << 2);
      if (Co < CoP) memory.fill(M + <usize>xi * mXi + (<usize>(Co * Tp) << 2), 0, <usize>Tp << 2);
      dotXi(dU + <usize>xi * duXi, M + <usize>xi * mXi, V + <usize>xi * vXi, CoP, CiP, Tp);
    }
  }
  unpackWeightGradient(dw, dU, Co, Ci, CoP, CiP, accumulate != 0);
}
