/**
 * A decoder-only transformer for characters, `--model gpt:LAYERS-HEADS-EMBED-CONTEXT` (Radford et al.
 * 2019's GPT-2 layout, as karpathy/llm.c writes it):
 *
 *   token + position embedding → LAYERS × block → LayerNorm → linear head over the vocabulary
 *   block: x + proj(attention(LN1(x)))  then  x + fc2(gelu(fc1(LN2(x))))      (pre-LayerNorm)
 *
 * A sample is CONTEXT + 1 token ids (the text loaders cut windows that long): positions 0..T−1 are
 * the input and every position t predicts token t + 1, so the loss is the cross-entropy at every
 * position. The network reports it per sample as the mean over positions, so the test loss is in
 * nats per character and accuracy is next-character accuracy.
 *
 * As with residual CNNs, a block is one layer (its residual adds and attention never cross a
 * pipeline cut), with every tensor named inside it. Initialisation as GPT-2: weights normal with std
 * 0.02, the two projections into the residual stream scaled by 1/√(2·LAYERS), LayerNorm γ = 1.
 */
import { UserError } from "../errors.ts";
import { Act, attentionScratchFloats, type KernelExports, type Ptr } from "../kernels/abi.ts";
import { type GemmShape, type Layer, type LayerBuffers, type ParamSpec, type Scratch, type Shape, shapeSize } from "./layers.ts";

export const LN_EPS = 1e-5;

export interface GptShape {
  layers: number;
  heads: number;
  embed: number;
  context: number;
}

/** Parses gpt:LAYERS-HEADS-EMBED-CONTEXT; heads must divide the embedding. */
export function parseGpt(text: string, rest: string[]): GptShape {
  const usage = `--model ${text}: expected gpt:LAYERS-HEADS-EMBED-CONTEXT, e.g. gpt:4-4-128-64`;
  if (rest.length !== 1) throw new UserError(usage);
  const parts = rest[0]!.split("-");
  if (parts.length !== 4 || !parts.every((p) => /^\d+$/.test(p))) throw new UserError(usage);
  const [layers, heads, embed, context] = parts.map(Number) as [number, number, number, number];
  if (layers < 1 || heads < 1 || embed < 1 || context < 1 || layers > 256 || embed > 8192 || context > 4096) throw new UserError(usage);
  if (embed % heads !== 0) throw new UserError(`--model ${text}: ${heads} heads do not divide the embedding width ${embed}`);
  return { layers, heads, embed, context };
}

const normal = (name: string, shape: number[], std: number): ParamSpec => ({ name, shape, fanIn: shape[0]!, std });
const ones = (name: string, n: number): ParamSpec => ({ name, shape: [n], fanIn: 1, init: "ones" });
const zeros = (name: string, n: number): ParamSpec => ({ name, shape: [n], fanIn: 1, init: "zeros" });

/** A dense map applied at every position of [rows, T, In]: Y = X·W + b over rows·T rows. */
function denseForward(k: KernelExports, y: Ptr, x: Ptr, w: Ptr, b: Ptr, rows: number, In: number, Out: number, act: number, z: Ptr, pack: Ptr): void {
  k.gemm_nn(z, x, w, rows, In, Out, 0, pack);
  k.bias_act_forward(y, z, b, rows, Out, act);
}

/** dz = dy ⊙ act' (in place over dy), dW (+)= Xᵀ·dz, db (+)= Σ dz, dX = dz·Wᵀ (when dx ≠ 0). */
function denseBackward(k: KernelExports, dx: Ptr, dw: Ptr, db: Ptr, dy: Ptr, x: Ptr, w: Ptr, z: Ptr, y: Ptr, rows: number, In: number, Out: number, act: number, acc: number, pack: Ptr): void {
  k.bias_act_backward(dy, dy, z, y, db, rows, Out, act, acc);
  k.gemm_tn(dw, x, dy, In, rows, Out, acc, pack);
  if (dx !== 0) k.gemm_nt(dx, dy, w, rows, Out, In, 0, pack);
}

/** Token + position embedding: [T + 1] token ids → [T, E] (the last id is only a target). */
export class Embedding implements Layer {
  readonly kind = "embedding";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample = 0;
  readonly argmaxPerSample = 0;

  constructor(readonly vocab: number, readonly context: number, readonly embed: number) {
    this.inShape = [context + 1];
    this.outShape = [context, embed];
    this.params = [normal("wte", [vocab, embed], 0.02), normal("wpe", [context, embed], 0.01)];
  }
  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }
  macsPerSample(): number {
    return this.context * this.embed;
  }
  forward(k: KernelExports, [wte, wpe]: Ptr[], b: LayerBuffers, rows: number): void {
    k.embedding_forward(b.y, b.x, this.context + 1, wte!, wpe!, rows, this.context, this.embed);
  }
  backward(k: KernelExports, _p: Ptr[], [dwte, dwpe]: Ptr[], b: LayerBuffers, rows: number, acc: number): void {
    k.embedding_backward(dwte!, dwpe!, b.dy, b.x, this.context + 1, rows, this.context, this.embed, this.vocab, acc);
  }
  /** Token ids have no gradient: the whole backward is the weight gradient. */
  backwardInput(): void {}
  backwardWeight(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, acc: number): void {
    this.backward(k, [], dp, b, rows, acc);
  }
}

/** LayerNorm over the last axis of [T, E], then (optionally) a linear head E → V at every position. */
export class LayerNormHead implements Layer {
  readonly kind = "head";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  /** LN output [T, E] and its stats (2T). */
  readonly savedFloatsPerSample: number;
  readonly argmaxPerSample = 0;

  constructor(readonly context: number, readonly embed: number, readonly vocab: number) {
    this.inShape = [context, embed];
    this.outShape = [context, vocab];
    this.params = [ones("ln.weight", embed), zeros("ln.bias", embed), normal("linear.weight", [embed, vocab], 0.02), zeros("linear.bias", vocab)];
    this.savedFloatsPerSample = context * embed + 2 * context;
  }
  gemmShapes(rows: number): GemmShape[] {
    const M = rows * this.context;
    return [{ M, K: this.embed, N: this.vocab }, { M: this.embed, K: M, N: this.vocab }, { M, K: this.vocab, N: this.embed }];
  }
  colsFloats(): number {
    return 0;
  }
  get tempFloatsPerSample(): number {
    return this.context * this.embed;
  }
  macsPerSample(): number {
    return this.context * this.embed * this.vocab;
  }
  forward(k: KernelExports, [g, beta, w, bias]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    const M = rows * this.context;
    const ln = b.z;
    const stats = b.z + M * this.embed * 4;
    k.layernorm_forward(ln, stats, b.x, g!, beta!, M, this.embed, LN_EPS);
    denseForward(k, b.y, ln, w!, bias!, M, this.embed, this.vocab, Act.identity, b.y, s.pack);
  }
  backward(k: KernelExports, [g, , w]: Ptr[], [dg, dbeta, dw, dbias]: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const M = rows * this.context;
    const ln = b.z;
    const stats = b.z + M * this.embed * 4;
    const dln = s.temp!;
    denseBackward(k, dln, dw!, dbias!, b.dy, ln, w!, b.y, b.y, M, this.embed, this.vocab, Act.identity, acc, s.pack);
    // (the embedding below is always trainable, so dx is always wanted)
    k.layernorm_backward(b.dx, dg!, dbeta!, dln, b.x, stats, g!, M, this.embed, acc);
  }

  /** I keeps the LayerNorm's output gradient (T·E) for W, and 2E floats for the dγ, dβ it computes on the way. */
  get heldFloatsPerSample(): number {
    return this.context * this.embed + 2 * this.embed;
  }

  backwardInput(k: KernelExports, [g, , w]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    const M = rows * this.context;
    const stats = b.z + M * this.embed * 4;
    const dln = b.held!;
    const unused = b.held! + M * this.embed * 4;
    // The head is linear (dz = dy): d(ln) = dy·Wᵀ.
    k.gemm_nt(dln, b.dy, w!, M, this.vocab, this.embed, 0, s.pack);
    k.layernorm_backward(b.dx, unused, unused + this.embed * 4, dln, b.x, stats, g!, M, this.embed, 0);
  }

  backwardWeight(k: KernelExports, [dg, dbeta, dw, dbias]: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const M = rows * this.context;
    const ln = b.z;
    const stats = b.z + M * this.embed * 4;
    k.bias_act_backward(b.dy, b.dy, b.dy, b.dy, dbias!, M, this.vocab, Act.identity, acc);
    k.gemm_tn(dw!, ln, b.dy, this.embed, M, this.vocab, acc, s.pack);
    k.layernorm_backward_params(dg!, dbeta!, b.held!, b.x, stats, M, this.embed, acc);
  }
}

/**
 * One pre-LN transformer block over [T, E]:
 *   x1 = x + proj(attention(qkv(LN1(x))))      x2 = x1 + fc2(gelu(fc1(LN2(x1))))
 * Saved per sample: LN1 out, qkv, attention weights [H, T, T], attention out, x1, LN2 out, fc1's
 * pre-activation and output, and both LayerNorms' statistics.
 */
export class TransformerBlock implements Layer {
  readonly kind = "block";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample: number;
  readonly tempFloatsPerSample: number;
  readonly argmaxPerSample = 0;

  constructor(readonly context: number, readonly embed: number, readonly heads: number, layers: number) {
    const E = embed;
    this.inShape = [context, E];
    this.outShape = [context, E];
    const residualStd = 0.02 / Math.sqrt(2 * layers);
    this.params = [
      ones("ln1.weight", E), zeros("ln1.bias", E),
      normal("attn.qkv.weight", [E, 3 * E], 0.02), zeros("attn.qkv.bias", 3 * E),
      normal("attn.proj.weight", [E, E], residualStd), zeros("attn.proj.bias", E),
      ones("ln2.weight", E), zeros("ln2.bias", E),
      normal("mlp.fc.weight", [E, 4 * E], 0.02), zeros("mlp.fc.bias", 4 * E),
      normal("mlp.proj.weight", [4 * E, E], residualStd), zeros("mlp.proj.bias", E),
    ];
    const T = context;
    this.savedFloatsPerSample = T * (E + 3 * E + E + E + E + 4 * E + 4 * E) + heads * T * T + 4 * T;
    // the backward's buffers, then the attention kernels' scratch (the forward uses it alone)
    this.tempFloatsPerSample = T * (4 * E + 3 * E + E + E) + attentionScratchFloats(T, E / heads);
  }

  /** Where each saved tensor sits for a batch of `rows` samples (M = rows·T positions). */
  private saved(z: Ptr, rows: number) {
    const T = this.context, E = this.embed, M = rows * T;
    let at = z;
    const take = (floats: number) => ((at += floats * 4), at - floats * 4);
    return {
      ln1: take(M * E), qkv: take(M * 3 * E), att: take(rows * this.heads * T * T), attOut: take(M * E),
      x1: take(M * E), ln2: take(M * E), fcz: take(M * 4 * E), fch: take(M * 4 * E), stats1: take(2 * M), stats2: take(2 * M),
    };
  }

  gemmShapes(rows: number): GemmShape[] {
    const M = rows * this.context, E = this.embed;
    const dense = (In: number, Out: number): GemmShape[] => [{ M, K: In, N: Out }, { M: In, K: M, N: Out }, { M, K: Out, N: In }];
    return [...dense(E, 3 * E), ...dense(E, E), ...dense(E, 4 * E), ...dense(4 * E, E)];
  }
  colsFloats(): number {
    return 0;
  }
  macsPerSample(): number {
    const T = this.context, E = this.embed;
    return T * 12 * E * E + 2 * T * T * E;
  }

  forward(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    const [g1, b1, wqkv, bqkv, wproj, bproj, g2, b2, wfc, bfc, wfc2, bfc2] = p as [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr];
    const T = this.context, E = this.embed, M = rows * T;
    const v = this.saved(b.z, rows);
    k.layernorm_forward(v.ln1, v.stats1, b.x, g1, b1, M, E, LN_EPS);
    denseForward(k, v.qkv, v.ln1, wqkv, bqkv, M, E, 3 * E, Act.identity, v.qkv, s.pack);
    if (!s.temp) throw new Error("transformer block: attention needs the workspace's temp scratch");
    k.attention_forward(v.attOut, v.att, v.qkv, rows, T, E, this.heads, s.temp);
    denseForward(k, v.x1, v.attOut, wproj, bproj, M, E, E, Act.identity, v.x1, s.pack);
    k.axpy(v.x1, b.x, M * E, 1); // residual
    k.layernorm_forward(v.ln2, v.stats2, v.x1, g2, b2, M, E, LN_EPS);
    denseForward(k, v.fch, v.ln2, wfc, bfc, M, E, 4 * E, Act.gelu, v.fcz, s.pack);
    denseForward(k, b.y, v.fch, wfc2, bfc2, M, 4 * E, E, Act.identity, b.y, s.pack);
    k.axpy(b.y, v.x1, M * E, 1); // residual
  }

  backward(k: KernelExports, p: Ptr[], dp: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const [g1, , wqkv, , wproj, , g2, , wfc, , wfc2] = p as Ptr[];
    const [dg1, db1, dwqkv, dbqkv, dwproj, dbproj, dg2, db2, dwfc, dbfc, dwfc2, dbfc2] = dp as [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr];
    const T = this.context, E = this.embed, M = rows * T;
    const v = this.saved(b.z, rows);
    let at = s.temp!;
    const take = (floats: number) => ((at += floats * 4), at - floats * 4);
    const dWide = take(M * 4 * E); // d(fc1 output), then d(qkv) in its first 3E columns
    const dx1 = take(M * E);
    const dNarrow = take(M * E);
    const attScratch = take(attentionScratchFloats(T, E / this.heads));
    // MLP half: dy is d(x2); it reaches x1 through the residual and through the MLP.
    k.copy(dx1, b.dy, M * E);
    denseBackward(k, dWide, dwfc2, dbfc2, b.dy, v.fch, wfc2!, b.y, b.y, M, 4 * E, E, Act.identity, acc, s.pack);
    denseBackward(k, dNarrow, dwfc, dbfc, dWide, v.ln2, wfc!, v.fcz, v.fch, M, E, 4 * E, Act.gelu, acc, s.pack);
    k.layernorm_backward(dWide, dg2, db2, dNarrow, v.x1, v.stats2, g2!, M, E, acc);
    k.axpy(dx1, dWide, M * E, 1);
    // Attention half: d(x1) reaches x through the residual and through attention.
    k.copy(dNarrow, dx1, M * E); // the dense backward works in place on its dy
    const dAttOut = dWide; // M·E floats
    const dQkv = dWide + M * E * 4; // M·3E floats: the rest of the wide buffer
    denseBackward(k, dAttOut, dwproj, dbproj, dNarrow, v.attOut, wproj!, v.x1, v.x1, M, E, E, Act.identity, acc, s.pack);
    k.attention_backward(dQkv, dAttOut, v.qkv, v.att, rows, T, E, this.heads, attScratch);
    denseBackward(k, dNarrow, dwqkv, dbqkv, dQkv, v.ln1, wqkv!, v.qkv, v.qkv, M, E, 3 * E, Act.identity, acc, s.pack);
    if (b.dx !== 0) {
      k.layernorm_backward(b.dx, dg1, db1, dNarrow, b.x, v.stats1, g1!, M, E, acc);
      k.axpy(b.dx, dx1, M * E, 1);
    }
  }

  /**
   * A split backward keeps, from I for W, the output gradient of every dense map but the last (whose
   * is dy itself) and the input gradients of both LayerNorms: dz of fc (4E), of proj (E), of qkv (3E),
   * d(ln2) and d(ln1) (E each) per position, plus 2E floats for the dγ, dβ I computes on the way.
   */
  get heldFloatsPerSample(): number {
    return 10 * this.context * this.embed + 2 * this.embed;
  }

  private held(at: Ptr, rows: number) {
    const M = rows * this.context, E = this.embed;
    const take = (floats: number) => ((at += floats * 4), at - floats * 4);
    return { fc: take(M * 4 * E), ln2: take(M * E), proj: take(M * E), qkv: take(M * 3 * E), ln1: take(M * E), unused: take(2 * E) };
  }

  backwardInput(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    const [g1, , wqkv, , wproj, , g2, , wfc, , wfc2] = p as Ptr[];
    const T = this.context, E = this.embed, M = rows * T;
    const v = this.saved(b.z, rows);
    const h = this.held(b.held!, rows);
    let at = s.temp!;
    const take = (floats: number) => ((at += floats * 4), at - floats * 4);
    const dx1 = take(M * E);
    const dNarrow = take(M * E);
    const attScratch = take(T);
    // MLP half (the last dense map is linear: its dz is dy).
    k.copy(dx1, b.dy, M * E);
    k.gemm_nt(h.fc, b.dy, wfc2!, M, E, 4 * E, 0, s.pack);
    k.bias_act_backward(h.fc, h.fc, v.fcz, v.fch, 0, M, 4 * E, Act.gelu, 0);
    k.gemm_nt(h.ln2, h.fc, wfc!, M, 4 * E, E, 0, s.pack);
    k.layernorm_backward(dNarrow, h.unused, h.unused + E * 4, h.ln2, v.x1, v.stats2, g2!, M, E, 0);
    k.axpy(dx1, dNarrow, M * E, 1);
    // Attention half.
    k.copy(h.proj, dx1, M * E);
    k.gemm_nt(dNarrow, h.proj, wproj!, M, E, E, 0, s.pack); // d(attention output)
    k.attention_backward(h.qkv, dNarrow, v.qkv, v.att, rows, T, E, this.heads, attScratch);
    k.gemm_nt(h.ln1, h.qkv, wqkv!, M, 3 * E, E, 0, s.pack);
    if (b.dx !== 0) {
      k.layernorm_backward(b.dx, h.unused, h.unused + E * 4, h.ln1, b.x, v.stats1, g1!, M, E, 0);
      k.axpy(b.dx, dx1, M * E, 1);
    }
  }

  backwardWeight(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const [dg1, db1, dwqkv, dbqkv, dwproj, dbproj, dg2, db2, dwfc, dbfc, dwfc2, dbfc2] = dp as [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr];
    const T = this.context, E = this.embed, M = rows * T;
    const v = this.saved(b.z, rows);
    const h = this.held(b.held!, rows);
    const linear = (dw: Ptr, db: Ptr, x: Ptr, dz: Ptr, In: number, Out: number) => {
      k.bias_act_backward(dz, dz, dz, dz, db, M, Out, Act.identity, acc);
      k.gemm_tn(dw, x, dz, In, M, Out, acc, s.pack);
    };
    linear(dwfc2, dbfc2, v.fch, b.dy, 4 * E, E);
    linear(dwfc, dbfc, v.ln2, h.fc, E, 4 * E);
    k.layernorm_backward_params(dg2, db2, h.ln2, v.x1, v.stats2, M, E, acc);
    linear(dwproj, dbproj, v.attOut, h.proj, E, E);
    linear(dwqkv, dbqkv, v.ln1, h.qkv, E, 3 * E);
    k.layernorm_backward_params(dg1, db1, h.ln1, b.x, v.stats1, M, E, acc);
  }
}

/** gpt:L-H-E-T for data of [T + 1]-token windows over a vocabulary of `classes` tokens. */
export function buildGpt(text: string, g: GptShape, inputShape: Shape, classes: number): Layer[] {
  const window = shapeSize(inputShape);
  if (window !== g.context + 1) {
    throw new UserError(`--model ${text} reads ${g.context + 1}-token windows (context ${g.context} + its target); this data has ${window}-value samples (use --data text:NAME:${g.context})`);
  }
  const layers: Layer[] = [new Embedding(classes, g.context, g.embed)];
  for (let i = 0; i < g.layers; i++) layers.push(new TransformerBlock(g.context, g.embed, g.heads, g.layers));
  layers.push(new LayerNormHead(g.context, g.embed, classes));
  return layers;
}
