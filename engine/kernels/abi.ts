/**
 * The kernel ABI: every export of the AssemblyScript module (asm/), as TypeScript sees it.
 *
 * Conventions (why: every worker instantiates the same module on one shared memory):
 *  - every `Ptr` is a byte offset into the shared WebAssembly.Memory, 16-byte aligned for f32 tensors;
 *    0 means "absent" where a pointer is documented as optional;
 *  - all tensors are row-major f32 unless stated; labels and argmax indices are i32;
 *  - kernels never allocate and keep no state: any scratch they need is a region the caller planned
 *    (`pack` for GEMM panels, `cols` for im2col) and passes in, one per worker;
 *  - `accumulate` = 1 adds into the output, 0 overwrites it (gradient accumulation across microbatches
 *    and across im2col sample loops needs both).
 */
export type Ptr = number;

/** Activation codes shared by bias_act_* and act_* kernels. */
export const Act = { identity: 0, relu: 1, tanh: 2, gelu: 3 } as const;
export type ActCode = (typeof Act)[keyof typeof Act];

export interface KernelExports {
  // ---- GEMM, the three layouts training needs ---------------------------------------------------
  /** C[M×N] (+)= A[M×K] · B[K×N]  (forward: Y = X·W with W stored In×Out). */
  gemm_nn(C: Ptr, A: Ptr, B: Ptr, M: number, K: number, N: number, accumulate: number, pack: Ptr): void;
  /** C[M×N] (+)= A[M×K] · B[N×K]ᵀ (input gradient: dX = dY·Wᵀ, W stored In×Out so B = W, N = In). */
  gemm_nt(C: Ptr, A: Ptr, B: Ptr, M: number, K: number, N: number, accumulate: number, pack: Ptr): void;
  /**
   * C[M×N] (+)= A[K×M]ᵀ · B[K×N] (weight gradient: dW = Xᵀ·dY). `lda`: floats between A's rows, for
   * rows [lo, hi) of a wider product (C + lo·N, A + lo, M = hi − lo, lda = the full M); omitted or 0, M.
   * Cut at multiples of 6 rows with the last piece ending at the full M, the pieces are bitwise the whole.
   */
  gemm_tn(C: Ptr, A: Ptr, B: Ptr, M: number, K: number, N: number, accumulate: number, pack: Ptr, lda?: number): void;

  // ---- bias + activation -------------------------------------------------------------------------
  /** z[r,c] += b[c] (if b ≠ 0), then y = act(z). y may equal z only for identity. */
  bias_act_forward(y: Ptr, z: Ptr, b: Ptr, rows: number, cols: number, act: number): void;
  /** dz = dy ⊙ act'(z, y); if db ≠ 0: db (+)= column sums of dz. dz may alias dy. */
  bias_act_backward(dz: Ptr, dy: Ptr, z: Ptr, y: Ptr, db: Ptr, rows: number, cols: number, act: number, accumulate: number): void;
  /** Per-channel bias for NCHW maps: z[n,c,:] += b[c], then y = act(z). */
  channel_bias_act_forward(y: Ptr, z: Ptr, b: Ptr, batch: number, channels: number, spatial: number, act: number): void;
  /** dz = dy ⊙ act'(z, y); db[c] (+)= Σ over n and spatial of dz. */
  channel_bias_act_backward(dz: Ptr, dy: Ptr, z: Ptr, y: Ptr, db: Ptr, batch: number, channels: number, spatial: number, act: number, accumulate: number): void;

  // ---- loss ----------------------------------------------------------------------------------------
  /** Fused softmax cross-entropy: returns Σ_rows loss; dlogits = (softmax − onehot)·scale (dlogits may be 0 to skip). */
  softmax_xent(dlogits: Ptr, logits: Ptr, labels: Ptr, rows: number, classes: number, scale: number): number;
  /** Number of rows whose argmax equals the label. */
  count_correct(logits: Ptr, labels: Ptr, rows: number, classes: number): number;

  // ---- conv2d (NCHW, weights [Cout, Cin, KH, KW], im2col + GEMM) ----------------------------------
  /** y[N,Cout,OH,OW] = conv(x[N,Cin,H,W], w) (no bias; channel_bias_act_forward adds it). cols: convColsFloats(...) floats; pack is not used. */
  conv2d_forward(y: Ptr, x: Ptr, w: Ptr, N: number, Cin: number, H: number, W: number, Cout: number, KH: number, KW: number, stride: number, pad: number, cols: Ptr, pack: Ptr): void;
  /** dw (+)= ∂/∂w, dx = ∂/∂x (dx may be 0 to skip, e.g. the first layer). */
  conv2d_backward(dx: Ptr, dw: Ptr, dy: Ptr, x: Ptr, w: Ptr, N: number, Cin: number, H: number, W: number, Cout: number, KH: number, KW: number, stride: number, pad: number, accumulate: number, cols: Ptr, pack: Ptr): void;
  /** dx = ∂/∂x alone (conv2d_backward's dx, bitwise): the input-gradient step of a split backward. */
  conv2d_backward_input(dx: Ptr, dy: Ptr, w: Ptr, N: number, Cin: number, H: number, W: number, Cout: number, KH: number, KW: number, stride: number, pad: number, cols: Ptr, pack: Ptr): void;

  // ---- pooling (NCHW; planes = N·C) ---------------------------------------------------------------
  maxpool_forward(y: Ptr, argmax: Ptr, x: Ptr, planes: number, H: number, W: number, K: number, stride: number): void;
  maxpool_backward(dx: Ptr, dy: Ptr, argmax: Ptr, planes: number, H: number, W: number, K: number, stride: number): void;
  avgpool_forward(y: Ptr, x: Ptr, planes: number, H: number, W: number, K: number, stride: number): void;
  avgpool_backward(dx: Ptr, dy: Ptr, planes: number, H: number, W: number, K: number, stride: number): void;

  // ---- optimizer updates, one fused pass per tensor ------------------------------------------------
  /** w −= lr·(g + wd·w). */
  sgd_update(w: Ptr, g: Ptr, n: number, lr: number, wd: number): void;
  /** g' = g + wd·w; m = μ·m + (1−dampening)·g'; w −= lr·(nesterov ? g' + μ·m : m). */
  momentum_update(w: Ptr, g: Ptr, m: Ptr, n: number, lr: number, mu: number, dampening: number, wd: number, nesterov: number): void;
  /** Adam (decoupled = 0: g += wd·w) or AdamW (decoupled = 1: w −= lr·wd·w). bc1 = 1−β1ᵗ, bc2 = 1−β2ᵗ. */
  adam_update(w: Ptr, g: Ptr, m: Ptr, v: Ptr, n: number, lr: number, beta1: number, beta2: number, eps: number, wd: number, decoupled: number, bc1: number, bc2: number): void;
  /** g' = g + wd·w; v = α·v + (1−α)·g'²; w −= lr·g'/(√v + eps). */
  rmsprop_update(w: Ptr, g: Ptr, v: Ptr, n: number, lr: number, alpha: number, eps: number, wd: number): void;

  // ---- weight prediction for pipelines (Ŵ = W − a·Δ, a = lr·s; one fused pass, Δ never stored) -------
  /** out = w − a·d (SGD: d = last gradient; momentum: d = m). out may alias w. */
  predict_linear(out: Ptr, w: Ptr, d: Ptr, n: number, a: number): void;
  /** out = w − a·(g + μ·m) (Nesterov). */
  predict_nesterov(out: Ptr, w: Ptr, g: Ptr, m: Ptr, n: number, a: number, mu: number): void;
  /** out = w − (a/bc1)·m/(√v/√bc2 + eps) (Adam, AdamW: no weight-decay term). */
  predict_adam(out: Ptr, w: Ptr, m: Ptr, v: Ptr, n: number, a: number, bc1: number, bc2: number, eps: number): void;
  /** out = w − a·g/(√v + eps) (RMSprop). */
  predict_rmsprop(out: Ptr, w: Ptr, g: Ptr, v: Ptr, n: number, a: number, eps: number): void;

  // ---- vector ops the algorithms need ---------------------------------------------------------------
  /** y += a·x */
  axpy(y: Ptr, x: Ptr, n: number, a: number): void;
  /** x *= a */
  scale(x: Ptr, n: number, a: number): void;
  /** dst[0..n) = src[0..n) (f32 count; regions must not overlap). */
  copy(dst: Ptr, src: Ptr, n: number): void;
  /** dst = 0 */
  fill_zero(dst: Ptr, n: number): void;
  /** out = Σ_i weights[i] · tensors[i]; `tensors` is an i32 array of k Ptrs, `weights` an f32 array of k. out may alias one input. */
  weighted_sum(out: Ptr, tensors: Ptr, weights: Ptr, k: number, n: number): void;
  /** DC-ASGD's delay compensation: g += λ · g ⊙ g ⊙ (wNow − wRead). */
  delay_compensate(g: Ptr, wNow: Ptr, wRead: Ptr, n: number, lambda: number): void;
  /** Σ (a − b)² accumulated in f64. */
  squared_distance(a: Ptr, b: Ptr, n: number): number;

  // ---- data ----------------------------------------------------------------------------------------
  /** For i < count: out[i, :] = bytes[indices[i], :] · scale + shift (u8 → f32), labelsOut[i] = labelBytes[indices[i]]. */
  gather_batch(out: Ptr, labelsOut: Ptr, bytes: Ptr, labelBytes: Ptr, indices: Ptr, count: number, sampleBytes: number, scale: number, shift: number): void;

  // ---- residual CNNs (asm/resnet.ts): batch norm, option-A shortcut, global average pooling --------
  /** Batch norm over x[N,C,HW] per channel: training = 1 uses batch statistics (stats = [mean | 1/√(var+ε)], folded into rmean/rvar when momentum > 0), 0 the running ones; y = act(γ·x̂ + β), act identity or relu. y may alias x. */
  batchnorm_forward(y: Ptr, stats: Ptr, x: Ptr, gamma: Ptr, beta: Ptr, rmean: Ptr, rvar: Ptr, N: number, C: number, HW: number, eps: number, momentum: number, training: number, act: number): void;
  /** Training-mode backward: dy ⊙= act'(y) in place; dγ, dβ (+)= their sums; dx (skipped when 0, never aliasing dy). */
  batchnorm_backward(dx: Ptr, dgamma: Ptr, dbeta: Ptr, dy: Ptr, x: Ptr, y: Ptr, stats: Ptr, gamma: Ptr, N: number, C: number, HW: number, act: number, accumulate: number): void;
  /** y[n, c + (Cout−Cin)/2, oh, ow] += x[n, c, oh·s, ow·s]: He et al.'s option-A shortcut (a residual add at stride 1, Cin = Cout). */
  shortcut_forward(y: Ptr, x: Ptr, N: number, Cin: number, H: number, W: number, Cout: number, stride: number): void;
  /** dx[n, c, oh·s, ow·s] += dy[n, c + (Cout−Cin)/2, oh, ow]. */
  shortcut_backward(dx: Ptr, dy: Ptr, N: number, Cin: number, H: number, W: number, Cout: number, stride: number): void;
  /** y[p] = mean over HW of plane p (planes = N·C). */
  global_avgpool_forward(y: Ptr, x: Ptr, planes: number, HW: number): void;
  /** dx[p, :] = dy[p] / HW (overwrites). */
  global_avgpool_backward(dx: Ptr, dy: Ptr, planes: number, HW: number): void;

  // ---- Winograd F(2×2, 3×3) convolution, stride 1, padding 1 (asm/winograd.ts) --------------------
  /** y[N,Co,H,W] = conv3×3(x[N,Ci,H,W], w[Co,Ci,3,3]), no bias. scratch: winogradScratchFloats(Ci, Co, H, W) floats. */
  winograd_forward(y: Ptr, x: Ptr, w: Ptr, N: number, Ci: number, H: number, W: number, Co: number, scratch: Ptr): void;
  /** dx[N,Ci,H,W] = ∂/∂x given dy[N,Co,H,W] (overwrites). Same scratch. */
  winograd_backward_input(dx: Ptr, dy: Ptr, w: Ptr, N: number, Ci: number, H: number, W: number, Co: number, scratch: Ptr): void;
  /** dw[Co,Ci,3,3] (+)= ∂/∂w given x and dy (accumulate = 1 adds). Same scratch. */
  winograd_backward_weights(dw: Ptr, x: Ptr, dy: Ptr, N: number, Ci: number, H: number, W: number, Co: number, accumulate: number, scratch: Ptr): void;
  /** Floats of scratch the winograd_* kernels need for a Ci → Co layer on H×W maps (the same formula as winogradScratchFloats). */
  winograd_scratch_floats(Ci: number, Co: number, H: number, W: number): number;

  // ---- decoder-only transformer (asm/gpt.ts); activations [B, T, C] --------------------------------
  /** y[b,t,:] = wte[tokens[b·stride + t],:] + wpe[t,:]; tokens are f32 ids, a sample's `stride` floats apart. */
  embedding_forward(y: Ptr, tokens: Ptr, stride: number, wte: Ptr, wpe: Ptr, B: number, T: number, C: number): void;
  /** Scatter-add dy into dwte rows (by token) and dwpe rows (by position); accumulate = 0 zeroes dwte (V rows) and dwpe (T rows) first. */
  embedding_backward(dwte: Ptr, dwpe: Ptr, dy: Ptr, tokens: Ptr, stride: number, B: number, T: number, C: number, V: number, accumulate: number): void;
  /** labels[b·T + t] = i32(tokens[b·stride + t + 1]): next-token targets. */
  next_token_labels(labels: Ptr, tokens: Ptr, stride: number, B: number, T: number): void;
  /** Per row of C: y = γ·x̂ + β; stats = [mean (rows) | rstd (rows)]. y may alias x. */
  layernorm_forward(y: Ptr, stats: Ptr, x: Ptr, gamma: Ptr, beta: Ptr, rows: number, C: number, eps: number): void;
  /** dγ, dβ (+)= over rows; dx overwritten (must not alias dy). */
  layernorm_backward(dx: Ptr, dgamma: Ptr, dbeta: Ptr, dy: Ptr, x: Ptr, stats: Ptr, gamma: Ptr, rows: number, C: number, accumulate: number): void;
  /** dγ (+)= Σ dy·x̂, dβ (+)= Σ dy alone (layernorm_backward's, bitwise): the weight-gradient step of a split backward. */
  layernorm_backward_params(dgamma: Ptr, dbeta: Ptr, dy: Ptr, x: Ptr, stats: Ptr, rows: number, C: number, accumulate: number): void;
  /** Causal softmax attention over qkv [B,T,3C] with NH heads (C divisible by NH) as batched GEMMs; out [B,T,C]; att [B,NH,T,T] saved. scratch: attentionScratchFloats(T, C/NH) floats. */
  attention_forward(out: Ptr, att: Ptr, qkv: Ptr, B: number, T: number, C: number, NH: number, scratch: Ptr): void;
  /** dqkv [B,T,3C] (overwritten) from dout, qkv and the saved att; the same scratch. */
  attention_backward(dqkv: Ptr, dout: Ptr, qkv: Ptr, att: Ptr, B: number, T: number, C: number, NH: number, scratch: Ptr): void;
  /** attentionScratchFloats, from the kernel module itself. */
  attention_scratch_floats(T: number, hs: number): number;

  // ---- benchmarks ------------------------------------------------------------------------------------
  /** Pure multiply-add loop, no memory traffic: `iters` × 96 flops. Returns a value so it is not eliminated. */
  fma_ceiling(iters: number): number;
}

/**
 * Floats of GEMM packing scratch (`pack`) any gemm_* call with these dims needs; conv2d_* need the max
 * over their three GEMMs (forward M=Cout,K=CKK,N=OHW; dW M=Cout,K=OHW,N=CKK; dcols M=CKK,K=Cout,N=OHW).
 * Layout (asm/gemm.ts): one K block (≤ 256) of B packed in 8-column panels, one 6-row block of A
 * packed pre-broadcast (24 floats per k), one 6×8 edge tile. M does not matter; it is in the
 * signature so callers need not change if a future packing depends on it. Keep in sync with asm/gemm.ts.
 */
export const GEMM_PACK_FLOATS = (_M: number, K: number, N: number): number =>
  Math.min(Math.max(K, 1), 256) * (Math.ceil(Math.max(N, 1) / 8) * 8 + 24) + 64;

/** Rows of A the GEMM micro-kernel takes at a time (asm/gemm.ts MR): row pieces cut at its multiples. */
export const GEMM_ROW_BLOCK = 6;

/**
 * Rows [0, M) of a gemm_tn product cut into pieces of about `rows` (rounded down to a multiple of 6,
 * at least 6) that gemm_tn computes one by one (its lda argument) bitwise as in one call: every cut
 * at a multiple of 6, and the last piece, which ends at M, no shorter than the others, so the kernel
 * blocks the product's last rows (7 or 8 of them as 4 + 3 or 4 + 4) inside it, as the whole call does.
 */
export function gemmRowPieces(M: number, rows: number): { lo: number; hi: number }[] {
  const size = Math.max(GEMM_ROW_BLOCK, rows - (rows % GEMM_ROW_BLOCK));
  const count = Math.max(1, Math.floor(M / size));
  return Array.from({ length: count }, (_, p) => ({ lo: p * size, hi: p === count - 1 ? M : (p + 1) * size }));
}


/**
 * Floats of scratch winograd_* need for a Ci → Co layer on H×W maps (any batch: they work through it
 * in chunks of about 128 2×2 tiles). Keep in sync with asm/winograd.ts: pre-broadcast transformed
 * weights, transformed inputs and products for one chunk, one zero-padded plane, the weight gradient's
 * transformed accumulator.
 */
export function winogradScratchFloats(Ci: number, Co: number, H: number, W: number): number {
  const up2 = (n: number) => n + (n & 1);
  const th = Math.ceil(H / 2), tw = Math.ceil(W / 2);
  const P = th * tw;
  const tmax = Math.ceil((Math.ceil(128 / P) * P) / 8) * 8;
  const padWidth = Math.ceil(Math.max(2 * tw + 4, 12) / 4) * 4;
  const vm = 16 * (Math.ceil((up2(Math.max(Ci, Co)) * tmax) / 32) * 32 + 16) + 8;
  return 64 * Math.max(up2(Co) * Ci, up2(Ci) * Co) + 2 * vm + (2 * th + 2) * padWidth + 16 * up2(Ci) * up2(Co);
}

/**
 * Floats of the `cols` scratch conv2d_forward/backward need (asm/conv.ts; keep in sync): one sample's
 * im2col matrix, the weights packed pre-broadcast (or their transpose), a 6×8 edge tile and a
 * zero-padded copy of an operand narrower than 8 columns.
 */
export function convColsFloats(Cin: number, KH: number, KW: number, OH: number, OW: number, Cout: number): number {
  const up2 = (n: number) => n + (n & 1);
  const ckk = Cin * KH * KW;
  return ckk * OH * OW + 4 * Math.max(up2(Cout) * ckk, up2(ckk) * Cout) + 48 + 8 * Math.max(ckk, Cout);
}

/**
 * Floats of scratch attention_forward/backward need for context T and head size hs (asm/gpt.ts; keep
 * in sync): a padded T × T score block, a transposed K or V, and six padded T × hs head slices.
 */
export function attentionScratchFloats(T: number, hs: number): number {
  const up8 = (n: number) => Math.ceil(n / 8) * 8;
  return up8(T) * up8(T) + up8(hs) * up8(T) + 6 * T * up8(hs);
}
