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

import { dotXi, gemmXi } from "./winograd-gemm";
import { packWeights, unpackWeightGradient } from "./winograd-weights";
import { up2 } from "./tile";

/** Tiles per chunk the driver aims for (fewer samples when one sample has more). */
const CHUNK_TILES: i32 = 128;

// @ts-ignore: decorator
@inline function tiles(n: i32): i32 { return (n + 1) >> 1; }
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
