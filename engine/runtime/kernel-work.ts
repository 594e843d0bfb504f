/**
 * What one call of each kernel does, measured from its arguments (in the kernel ABI's order): the work
 * a cost is affine in (flops or elements), the bytes of its operands, and further terms where one
 * work measure does not fit. The cost table (costs.ts) prices these; calibrate fits them.
 */
/** Work of one call from its arguments, per kernel (arguments in the ABI's order). */
type Work = (a: number[]) => number;
const elements = (at: number): Work => (a) => a[at]!;
const gemm: Work = (a) => 2 * a[3]! * a[4]! * a[5]!;
/** Bytes of a GEMM's three operands: A (M×K), B (K×N), C (M×N). */
const gemmBytes: Work = (a) => 4 * (a[3]! * a[4]! + a[4]! * a[5]! + a[3]! * a[5]!);
/** Bytes of a convolution's input, weights and output from (N, Cin, H, W, Cout, KH, KW, stride, pad). */
const convBytes = ([N, Cin, H, W, Cout, KH, KW, stride, pad]: number[]): number => {
  const oh = Math.floor((H! + 2 * pad! - KH!) / stride!) + 1;
  const ow = Math.floor((W! + 2 * pad! - KW!) / stride!) + 1;
  return 4 * (N! * Cin! * H! * W! + Cout! * Cin! * KH! * KW! + N! * Cout! * oh * ow);
};
/** 2·N·Cout·Cin·KH·KW·OH·OW from (N, Cin, H, W, Cout, KH, KW, stride, pad). */
const convFlops = ([N, Cin, H, W, Cout, KH, KW, stride, pad]: number[]): number => {
  const oh = Math.floor((H! + 2 * pad! - KH!) / stride!) + 1;
  const ow = Math.floor((W! + 2 * pad! - KW!) / stride!) + 1;
  return 2 * N! * Cout! * Cin! * KH! * KW! * oh * ow;
};

/** 2×2 output tiles of a 3×3, stride-1, padding-1 (Winograd F(2×2, 3×3)) convolution from (N, Ci, H, W, Co). */
const winogradTiles = ([N, , H, W]: number[]): number => N! * Math.ceil(H! / 2) * Math.ceil(W! / 2);
/** Flops of its 16 per-frequency GEMMs: (tiles × Ci) · (Ci × Co) each. */
const winogradGemmFlops = (a: number[]): number => 2 * 16 * winogradTiles(a) * a[1]! * a[4]!;
/** Bytes of the transformed 4×4 tiles of input and output channels, which the transforms write and the GEMMs read. */
const winogradTileBytes = (a: number[]): number => 4 * 16 * winogradTiles(a) * (a[1]! + a[4]!);
/** Values of the transformed weights (4×4 per input-output channel pair), computed every call. */
const WINOGRAD_WEIGHTS = { what: "weight-transform values", of: (a: number[]) => 16 * a[4]! * a[7]! };
/**
 * Useful flops of causal attention's products from (B, T, C): per head, Q·Kᵀ and att·V each take
 * hs multiply-adds for each of the T(T+1)/2 visible (query, key) pairs, so 2·B·C·T(T+1) flops in all;
 * the backward's four products (d(att), dV, dQ, dK) twice that.
 */
const attentionFlops = ([B, T, C]: number[]): number => 2 * B! * C! * T! * (T! + 1);
/** Bytes attention streams from (B, T, C, NH): qkv (3C per position), the output (C) and the saved weights (NH·T² per sample). */
const attentionBytes = ([B, T, C, NH]: number[]): number => 4 * (B! * T! * 4 * C! + B! * NH! * T! * T!);
/** Output elements of the option-A shortcut from (N, Cin, H, W, Cout, stride): it touches ⌈H/s⌉·⌈W/s⌉ per input channel. */
const shortcutElements = ([N, Cin, H, W, , stride]: number[]): number => N! * Cin! * Math.ceil(H! / stride!) * Math.ceil(W! / stride!);

/**
 * Every kernel the simulator charges for: its work measure and that measure's unit. Every export of
 * the kernel module is either here or in NEVER_CHARGED (a test holds the two lists to the module).
 */
export const WORK: Record<string, { unit: "flops" | "elements"; work: Work; bytes?: Work; more?: { what: string; of: Work }[] }> = {
  gemm_nn: { unit: "flops", work: gemm, bytes: gemmBytes },
  gemm_nt: { unit: "flops", work: gemm, bytes: gemmBytes },
  gemm_tn: { unit: "flops", work: gemm, bytes: gemmBytes },
  bias_act_forward: { unit: "elements", work: (a) => a[3]! * a[4]! },
  bias_act_backward: { unit: "elements", work: (a) => a[5]! * a[6]! },
  channel_bias_act_forward: { unit: "elements", work: (a) => a[3]! * a[4]! * a[5]! },
  channel_bias_act_backward: { unit: "elements", work: (a) => a[5]! * a[6]! * a[7]! },
  softmax_xent: { unit: "elements", work: (a) => a[3]! * a[4]! },
  count_correct: { unit: "elements", work: (a) => a[2]! * a[3]! },
  conv2d_forward: { unit: "flops", work: (a) => convFlops(a.slice(3, 12)), bytes: (a) => convBytes(a.slice(3, 12)) },
  // dx = 0 skips the input gradient: one GEMM instead of two.
  conv2d_backward: { unit: "flops", work: (a) => convFlops(a.slice(5, 14)) * (a[0] === 0 ? 1 : 2), bytes: (a) => convBytes(a.slice(5, 14)) * 2 },
  maxpool_forward: { unit: "elements", work: (a) => a[3]! * a[4]! * a[5]! },
  maxpool_backward: { unit: "elements", work: (a) => a[3]! * a[4]! * a[5]! },
  avgpool_forward: { unit: "elements", work: (a) => a[2]! * a[3]! * a[4]! },
  avgpool_backward: { unit: "elements", work: (a) => a[2]! * a[3]! * a[4]! },
  sgd_update: { unit: "elements", work: elements(2) },
  momentum_update: { unit: "elements", work: elements(3) },
  adam_update: { unit: "elements", work: elements(4) },
  rmsprop_update: { unit: "elements", work: elements(3) },
  predict_linear: { unit: "elements", work: elements(3) },
  predict_nesterov: { unit: "elements", work: elements(4) },
  predict_adam: { unit: "elements", work: elements(4) },
  predict_rmsprop: { unit: "elements", work: elements(4) },
  axpy: { unit: "elements", work: elements(2) },
  scale: { unit: "elements", work: elements(1) },
  copy: { unit: "elements", work: elements(2) },
  fill_zero: { unit: "elements", work: elements(1) },
  weighted_sum: { unit: "elements", work: (a) => a[3]! * a[4]! },
  delay_compensate: { unit: "elements", work: elements(3) },
  squared_distance: { unit: "elements", work: elements(2) },
  gather_batch: { unit: "elements", work: (a) => a[5]! * a[6]! },
  fma_ceiling: { unit: "flops", work: (a) => 96 * a[0]! },
  // The input-gradient half of conv2d_backward (zero-bubble pipelines' split backward): one GEMM and a col2im.
  conv2d_backward_input: { unit: "flops", work: (a) => convFlops(a.slice(3, 12)), bytes: (a) => convBytes(a.slice(3, 12)) },
  // Winograd F(2×2, 3×3): 16 per-frequency GEMMs over the 2×2 output tiles (flops), and the
  // transforms around them: of every input and output tile (bytes), and of the weights (more).
  winograd_forward: { unit: "flops", work: (a) => winogradGemmFlops(a.slice(3, 8)), bytes: (a) => winogradTileBytes(a.slice(3, 8)), more: [WINOGRAD_WEIGHTS] },
  winograd_backward_input: { unit: "flops", work: (a) => winogradGemmFlops(a.slice(3, 8)), bytes: (a) => winogradTileBytes(a.slice(3, 8)), more: [WINOGRAD_WEIGHTS] },
  winograd_backward_weights: { unit: "flops", work: (a) => winogradGemmFlops(a.slice(3, 8)), bytes: (a) => winogradTileBytes(a.slice(3, 8)), more: [WINOGRAD_WEIGHTS] },
  // Residual CNNs: batch norm over N·C·HW values, with costs per plane (N·C: the per-channel
  // reductions) and, in training, further passes over the values (sums, squares) before normalizing.
  batchnorm_forward: { unit: "elements", work: (a) => a[7]! * a[8]! * a[9]!, more: [{ what: "planes", of: (a) => a[7]! * a[8]! }, { what: "values in training", of: (a) => (a[12] === 0 ? 0 : a[7]! * a[8]! * a[9]!) }] },
  // Its per-channel reductions cost per plane (N·C) beyond per value, and a fused activation's mask is
  // one more pass over the values.
  batchnorm_backward: {
    unit: "elements",
    work: (a) => a[8]! * a[9]! * a[10]!,
    more: [{ what: "planes", of: (a) => a[8]! * a[9]! }, { what: "activation values", of: (a) => (a[11] === 0 ? 0 : a[8]! * a[9]! * a[10]!) }],
  },
  shortcut_forward: { unit: "elements", work: (a) => shortcutElements(a.slice(2, 8)) },
  shortcut_backward: { unit: "elements", work: (a) => shortcutElements(a.slice(2, 8)) },
  global_avgpool_forward: { unit: "elements", work: (a) => a[2]! * a[3]! },
  global_avgpool_backward: { unit: "elements", work: (a) => a[2]! * a[3]! },
  // Transformers: embedding rows B·T·C (the backward also zeroes V + T rows of C when not accumulating).
  embedding_forward: { unit: "elements", work: (a) => a[5]! * a[6]! * a[7]! },
  // The scatter-add of B·T·C rows, and (when not accumulating) zeroing V + T rows of C first: a plain
  // fill, far cheaper per value than the scatter.
  embedding_backward: { unit: "elements", work: (a) => a[5]! * a[6]! * a[7]!, more: [{ what: "values zeroed", of: (a) => (a[9] === 0 ? (a[8]! + a[6]!) * a[7]! : 0) }] },
  next_token_labels: { unit: "elements", work: (a) => a[3]! * a[4]! },
  layernorm_forward: { unit: "elements", work: (a) => a[5]! * a[6]! },
  layernorm_backward: { unit: "elements", work: (a) => a[7]! * a[8]! },
  layernorm_backward_params: { unit: "elements", work: (a) => a[5]! * a[6]! },
  // Batched GEMMs over the causal triangle, plus a softmax over the saved weights: flops and bytes.
  attention_forward: { unit: "flops", work: (a) => attentionFlops(a.slice(3, 6)), bytes: (a) => attentionBytes(a.slice(3, 7)) },
  attention_backward: { unit: "flops", work: (a) => 2 * attentionFlops(a.slice(4, 7)), bytes: (a) => 2 * attentionBytes(a.slice(4, 8)) },
};

/**
 * Exports of the kernel module the simulator never charges, each with why. A new export must go
 * either here or into WORK (the costs test fails until it does).
 */
export const NEVER_CHARGED: Record<string, string> = {
  // Scratch-size queries: arithmetic on four integers, and the layers size scratch with the
  // TypeScript twins of these (winogradScratchFloats, attentionScratchFloats) anyway.
  winograd_scratch_floats: "a scratch-size query",
  attention_scratch_floats: "a scratch-size query",
};
