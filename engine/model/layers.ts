/**
 * Layers with explicit forward and backward, llm.c style: each layer is a small object that knows its
 * shapes and parameters and calls kernels on pointers it is handed. It owns no memory: the network
 * plans every buffer in the arena, so the same layer object serves any worker, slot or replica.
 */
import { Act, type KernelExports, type Ptr } from "../kernels/abi.ts";

export type ActName = keyof typeof Act;
export type Shape = readonly number[]; // per sample: [features] or [channels, height, width]

export const shapeSize = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export interface ParamSpec {
  /** "weight", "bias", or a path inside a composite layer ("conv1.weight", "bn2.running_var"). */
  name: string;
  shape: number[];
  /** Inputs feeding one output unit: sets the initialisation scale. */
  fanIn: number;
  /**
   * How the network initialises it: "he" = normal with std √(2/fanIn); "ones"/"zeros" constant.
   * Absent: the dense/conv rule (weights normal with a gain from the layer's activation, biases 0).
   */
  init?: "he" | "ones" | "zeros";
  /** Normal with this std (GPT-2's 0.02), whatever the fan-in. */
  std?: number;
  /**
   * false for state that lives in the parameter vector but is not learned by gradient (batch norm's
   * running statistics): backward writes a zero gradient for it, so every optimizer leaves it alone
   * except for weight decay's shrink, which the next training forward's running average outweighs.
   */
  trainable?: boolean;
}

/** The buffers of one layer for a batch of rows, planned by the network. */
export interface LayerBuffers {
  x: Ptr; // input [rows, ...inShape]
  y: Ptr; // output [rows, ...outShape]
  z: Ptr; // pre-activation saved for backward (= y when the layer keeps none)
  argmax: Ptr; // max-pool winners, i32 [rows, ...outShape]
  dx: Ptr; // gradient w.r.t. input; 0 for the first layer (nobody needs it)
  dy: Ptr; // gradient w.r.t. output (the layer may overwrite it)
  /** What a split backward keeps from its I for its W (Layer.heldFloatsPerSample); planned only where a backward is split. */
  held?: Ptr;
}

/** Per-worker scratch shared by all layers (kernels never allocate). */
export interface Scratch {
  pack: Ptr; // GEMM panels
  cols: Ptr; // im2col
  /** Backward temporaries of composite layers (rows × the largest tempFloatsPerSample); absent when none needs it. */
  temp?: Ptr;
}

/** A GEMM a layer will issue: the network sizes the packing scratch from the largest. */
export interface GemmShape {
  M: number;
  K: number;
  N: number;
}

export interface Layer {
  readonly kind: string;
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  /** Output is the input itself (flatten): no buffer of its own, gradients pass straight through. */
  readonly aliasesInput: boolean;
  /** Floats per sample saved between forward and backward besides the output. */
  readonly savedFloatsPerSample: number;
  readonly argmaxPerSample: number;
  /** Floats per sample of per-worker scratch (Scratch.temp) the backward uses and then forgets. */
  readonly tempFloatsPerSample?: number;
  /** Multiply-adds per sample of the forward, where the weight count does not say it (pipeline balance). */
  macsPerSample?(): number;
  gemmShapes(rows: number): GemmShape[];
  colsFloats(): number;
  /**
   * training (default true) matters to batch norm only: batch statistics, folded into the running
   * statistics; false (evaluation) normalizes with the running statistics and writes nothing.
   */
  forward(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch, training?: boolean): void;
  /** Gradients go to dp (added when accumulate = 1) and to b.dx when it is not 0. */
  backward(k: KernelExports, p: Ptr[], dp: Ptr[], b: LayerBuffers, rows: number, accumulate: number, s: Scratch): void;
  /*
   * The backward split in two (zero-bubble pipelines, Qi et al., arXiv 2401.10241): I, the input
   * gradient the previous stage waits for, and W, the weight gradient nobody waits for, run later
   * from the saved activations and what I kept. I then W gives exactly what `backward` gives, bitwise.
   * Layers with parameters implement both; a layer without any runs `backward` as its I and has no W.
   */
  /** Floats per sample I keeps for W beyond the saved activations (b.held). */
  readonly heldFloatsPerSample?: number;
  /** I: b.dx (when not 0), and b.held and the output-gradient buffers left as W needs them; no parameter gradient. */
  backwardInput?(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void;
  /** W: the parameter gradients into dp (added when accumulate = 1), after this layer's I on the same buffers. */
  backwardWeight?(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, accumulate: number, s: Scratch): void;
  /*
   * W in pieces that several threads can compute at once (sync SGD's workers share a lagging block's
   * first-layer weight gradient): the rows of the weight matrix's gradient are independent GEMMs.
   * backwardWeightAside, then the rows of gemmRowPieces(weightGradientRows, …) by backwardWeightRows in
   * any order and on any thread, give exactly what backwardWeight gives, bitwise.
   */
  /** Rows of the weight gradient backwardWeightRows can compute apart (absent: W is not split). */
  readonly weightGradientRows?: number;
  /** The parameter gradients W writes besides the weight rows (a dense layer's bias). */
  backwardWeightAside?(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, accumulate: number): void;
  /** Rows [lo, hi) of the weight gradient, from b (another thread's buffers may be read), with the caller's scratch. */
  backwardWeightRows?(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, lo: number, hi: number, accumulate: number, s: Scratch): void;
}

/** Fully connected: y = act(x·W + b), W stored [in, out] so the forward is one gemm_nn. */
export class Dense implements Layer {
  readonly kind = "dense";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample: number;
  readonly argmaxPerSample = 0;
  private readonly act: number;

  constructor(readonly inputs: number, readonly outputs: number, readonly activation: ActName) {
    this.inShape = [inputs];
    this.outShape = [outputs];
    this.act = Act[activation];
    this.params = [
      { name: "weight", shape: [inputs, outputs], fanIn: inputs },
      { name: "bias", shape: [outputs], fanIn: inputs },
    ];
    // identity keeps no pre-activation: the output is it.
    this.savedFloatsPerSample = activation === "identity" ? 0 : outputs;
  }

  gemmShapes(rows: number): GemmShape[] {
    const { inputs: I, outputs: O } = this;
    return [
      { M: rows, K: I, N: O }, // forward  x·W
      { M: I, K: rows, N: O }, // dW = xᵀ·dz
      { M: rows, K: O, N: I }, // dx = dz·Wᵀ
    ];
  }

  colsFloats(): number {
    return 0;
  }

  forward(k: KernelExports, [w, bias]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    k.gemm_nn(b.z, b.x, w, rows, this.inputs, this.outputs, 0, s.pack);
    k.bias_act_forward(b.y, b.z, bias, rows, this.outputs, this.act);
  }

  backward(k: KernelExports, [w]: Ptr[], [dw, db]: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const dz = b.dy; // overwritten in place: dy is not needed after this
    k.bias_act_backward(dz, b.dy, b.z, b.y, db, rows, this.outputs, this.act, acc);
    k.gemm_tn(dw, b.x, dz, this.inputs, rows, this.outputs, acc, s.pack);
    if (b.dx !== 0) k.gemm_nt(b.dx, dz, w, rows, this.outputs, this.inputs, 0, s.pack);
  }

  /** dz = dy ⊙ act' (left in dy for W), dx = dz·Wᵀ. */
  backwardInput(k: KernelExports, [w]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    k.bias_act_backward(b.dy, b.dy, b.z, b.y, 0, rows, this.outputs, this.act, 0);
    if (b.dx !== 0) k.gemm_nt(b.dx, b.dy, w, rows, this.outputs, this.inputs, 0, s.pack);
  }

  /** db (+)= Σ dz, dW (+)= xᵀ·dz. */
  backwardWeight(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    this.backwardWeightAside(k, dp, b, rows, acc);
    this.backwardWeightRows(k, dp, b, rows, 0, this.inputs, acc, s);
  }

  /** dW has a row per input. */
  get weightGradientRows(): number {
    return this.inputs;
  }

  /** db (+)= Σ dz: an identity pass over dz sums it in backward's order (and leaves dz as it is). */
  backwardWeightAside(k: KernelExports, [, db]: Ptr[], b: LayerBuffers, rows: number, acc: number): void {
    k.bias_act_backward(b.dy, b.dy, b.dy, b.dy, db, rows, this.outputs, Act.identity, acc);
  }

  /** dW[lo, hi) (+)= x[:, lo, hi)ᵀ·dz: gemm_tn on the input's columns lo … hi − 1 (lda: the whole row). */
  backwardWeightRows(k: KernelExports, [dw]: Ptr[], b: LayerBuffers, rows: number, lo: number, hi: number, acc: number, s: Scratch): void {
    k.gemm_tn(dw! + lo * this.outputs * 4, b.x + lo * 4, b.dy, hi - lo, rows, this.outputs, acc, s.pack, this.inputs);
  }
}

/** K×K pooling with stride, no padding; max pooling remembers its winners for the backward. */
export class Pool2d implements Layer {
  readonly kind: string;
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[] = [];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample = 0;
  readonly argmaxPerSample: number;

  constructor(inShape: Shape, readonly mode: "max" | "avg", readonly size: number, readonly stride: number) {
    const [c, h, w] = inShape as [number, number, number];
    this.kind = `${mode}pool`;
    this.inShape = [c, h, w];
    const oh = Math.floor((h - size) / stride) + 1;
    const ow = Math.floor((w - size) / stride) + 1;
    if (oh < 1 || ow < 1) throw new Error(`${this.kind}: ${h}×${w} input is smaller than its ${size}×${size} window`);
    this.outShape = [c, oh, ow];
    this.argmaxPerSample = mode === "max" ? shapeSize(this.outShape) : 0;
  }

  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }

  forward(k: KernelExports, _p: Ptr[], b: LayerBuffers, rows: number): void {
    const [c, h, w] = this.inShape as [number, number, number];
    if (this.mode === "max") k.maxpool_forward(b.y, b.argmax, b.x, rows * c, h, w, this.size, this.stride);
    else k.avgpool_forward(b.y, b.x, rows * c, h, w, this.size, this.stride);
  }

  backward(k: KernelExports, _p: Ptr[], _dp: Ptr[], b: LayerBuffers, rows: number): void {
    if (b.dx === 0) return;
    const [c, h, w] = this.inShape as [number, number, number];
    if (this.mode === "max") k.maxpool_backward(b.dx, b.dy, b.argmax, rows * c, h, w, this.size, this.stride);
    else k.avgpool_backward(b.dx, b.dy, rows * c, h, w, this.size, this.stride);
  }
}

/** [C,H,W] → [C·H·W]: NCHW rows are already contiguous, so this is a view, not a copy. */
export class Flatten implements Layer {
  readonly kind = "flatten";
  readonly outShape: Shape;
  readonly params: ParamSpec[] = [];
  readonly aliasesInput = true;
  readonly savedFloatsPerSample = 0;
  readonly argmaxPerSample = 0;

  constructor(readonly inShape: Shape) {
    this.outShape = [shapeSize(inShape)];
  }
  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }
  forward(): void {}
  backward(): void {}
}

/** A standalone elementwise activation (the fused form inside Dense/Conv2d is the usual one). */
export class Activation implements Layer {
  readonly kind: string;
  readonly outShape: Shape;
  readonly params: ParamSpec[] = [];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample = 0;
  readonly argmaxPerSample = 0;
  private readonly act: number;

  constructor(readonly inShape: Shape, readonly activation: ActName) {
    this.kind = activation;
    this.outShape = inShape;
    this.act = Act[activation];
  }
  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }
  // The input is the pre-activation: treat it as z (one row of `size` columns per sample, no bias).
  forward(k: KernelExports, _p: Ptr[], b: LayerBuffers, rows: number): void {
    k.bias_act_forward(b.y, b.x, 0, rows, shapeSize(this.inShape), this.act);
  }
  backward(k: KernelExports, _p: Ptr[], _dp: Ptr[], b: LayerBuffers, rows: number): void {
    if (b.dx !== 0) k.bias_act_backward(b.dx, b.dy, b.x, b.y, 0, rows, shapeSize(this.inShape), this.act, 0);
  }
}
