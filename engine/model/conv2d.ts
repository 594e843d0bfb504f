/**
 * The 2-D convolution layer (layers.ts holds the Layer interface and the other layers): direct
 * im2col + GEMM for most shapes, Winograd's F(2×2, 3×3) for 3×3 stride-1 convolutions with enough
 * channels.
 */
import { Act, convColsFloats, type KernelExports, type Ptr, winogradScratchFloats } from "../kernels/abi.ts";
import { type ActName, type GemmShape, type Layer, type LayerBuffers, type ParamSpec, type Scratch, type Shape, shapeSize } from "./layers.ts";

/**
 * 2-D convolution over NCHW maps, with bias and activation fused after it. 3×3, stride 1, padding 1
 * convolutions of at least WINOGRAD_MIN_CHANNELS channels in and out (nearly all of a ResNet's work)
 * run Winograd's F(2×2, 3×3), which does 16 multiply-adds per 2×2 output tile and channel pair where
 * a direct convolution does 36; every other shape runs im2col + GEMM. The backward is two parts,
 * input gradient then weight gradient, each its own kernel call on the Winograd path.
 */
export class Conv2d implements Layer {
  readonly kind = "conv2d";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample: number;
  readonly argmaxPerSample = 0;
  readonly outH: number;
  readonly outW: number;
  /** Runs the Winograd kernels (see the class comment). */
  readonly winograd: boolean;
  private readonly act: number;

  constructor(
    inShape: Shape,
    readonly outChannels: number,
    readonly kernel: number,
    readonly stride: number,
    readonly pad: number,
    readonly activation: ActName,
    /** false: no bias tensor (a batch norm follows and its β is the bias); needs identity. */
    readonly bias = true,
  ) {
    const [c, h, w] = inShape as [number, number, number];
    this.inShape = [c, h, w];
    this.outH = Math.floor((h + 2 * pad - kernel) / stride) + 1;
    this.outW = Math.floor((w + 2 * pad - kernel) / stride) + 1;
    if (this.outH < 1 || this.outW < 1) throw new Error(`conv2d: ${h}×${w} input is smaller than its ${kernel}×${kernel} kernel`);
    this.outShape = [outChannels, this.outH, this.outW];
    this.act = Act[activation];
    const fanIn = c * kernel * kernel;
    if (!bias && activation !== "identity") throw new Error("conv2d without bias must have identity activation");
    this.params = [{ name: "weight", shape: [outChannels, c, kernel, kernel], fanIn }];
    if (bias) this.params.push({ name: "bias", shape: [outChannels], fanIn });
    this.savedFloatsPerSample = activation === "identity" ? 0 : shapeSize(this.outShape);
    this.winograd = kernel === 3 && stride === 1 && pad === 1 && c >= WINOGRAD_MIN_CHANNELS && outChannels >= WINOGRAD_MIN_CHANNELS;
  }

  private get dims() {
    const [c, h, w] = this.inShape as [number, number, number];
    return { c, h, w, patch: c * this.kernel * this.kernel, spatial: this.outH * this.outW };
  }

  /** None: the convolution kernels use their own GEMMs, whose scratch is in `cols`. */
  gemmShapes(): GemmShape[] {
    return [];
  }

  /** Floats of the `cols` scratch: the im2col path's (one sample's unfolded input and the packed weights) or the Winograd kernels' workspace. */
  colsFloats(): number {
    const { c, h, w } = this.dims;
    return this.winograd ? winogradScratchFloats(c, this.outChannels, h, w) : convColsFloats(c, this.kernel, this.kernel, this.outH, this.outW, this.outChannels);
  }

  macsPerSample(): number {
    return shapeSize(this.params[0]!.shape) * this.outH * this.outW;
  }

  /** y = conv(x, w) for `rows` samples, no bias. */
  convolve(k: KernelExports, y: Ptr, x: Ptr, w: Ptr, rows: number, s: Scratch): void {
    const { c, h, w: width } = this.dims;
    if (this.winograd) k.winograd_forward(y, x, w, rows, c, h, width, this.outChannels, s.cols);
    else k.conv2d_forward(y, x, w, rows, c, h, width, this.outChannels, this.kernel, this.kernel, this.stride, this.pad, s.cols, s.pack);
  }

  /**
   * The backward of convolve: dx = ∂/∂x (skipped when dx = 0), then dw (+)= ∂/∂w. dy is read, not
   * changed. The im2col path does both in one call (they share the unfolded input); a split backward
   * runs the two halves, convolveInput and convolveWeight, which give the same bits.
   */
  convolveBackward(k: KernelExports, dx: Ptr, dw: Ptr, dy: Ptr, x: Ptr, w: Ptr, rows: number, acc: number, s: Scratch): void {
    const { c, h, w: width } = this.dims;
    if (!this.winograd) {
      k.conv2d_backward(dx, dw, dy, x, w, rows, c, h, width, this.outChannels, this.kernel, this.kernel, this.stride, this.pad, acc, s.cols, s.pack);
      return;
    }
    if (dx !== 0) this.convolveInput(k, dx, dy, w, rows, s);
    this.convolveWeight(k, dw, dy, x, rows, acc, s);
  }

  /** dx = ∂/∂x alone (the input-gradient step of a split backward). */
  convolveInput(k: KernelExports, dx: Ptr, dy: Ptr, w: Ptr, rows: number, s: Scratch): void {
    const { c, h, w: width } = this.dims;
    if (this.winograd) k.winograd_backward_input(dx, dy, w, rows, c, h, width, this.outChannels, s.cols);
    else k.conv2d_backward_input(dx, dy, w, rows, c, h, width, this.outChannels, this.kernel, this.kernel, this.stride, this.pad, s.cols, s.pack);
  }

  /** dw (+)= ∂/∂w alone (the weight-gradient step of a split backward). */
  convolveWeight(k: KernelExports, dw: Ptr, dy: Ptr, x: Ptr, rows: number, acc: number, s: Scratch): void {
    const { c, h, w: width } = this.dims;
    if (this.winograd) k.winograd_backward_weights(dw, x, dy, rows, c, h, width, this.outChannels, acc, s.cols);
    else k.conv2d_backward(0, dw, dy, x, 0, rows, c, h, width, this.outChannels, this.kernel, this.kernel, this.stride, this.pad, acc, s.cols, s.pack);
  }

  forward(k: KernelExports, [w, bias]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    this.convolve(k, b.z, b.x, w!, rows, s);
    if (this.bias) k.channel_bias_act_forward(b.y, b.z, bias!, rows, this.outChannels, this.dims.spatial, this.act);
  }

  backward(k: KernelExports, [w]: Ptr[], [dw, db]: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const dz = b.dy;
    if (this.bias) k.channel_bias_act_backward(dz, b.dy, b.z, b.y, db!, rows, this.outChannels, this.dims.spatial, this.act, acc);
    this.convolveBackward(k, b.dx, dw!, dz, b.x, w!, rows, acc, s);
  }

  /** dz = dy ⊙ act' (left in dy for W), dx = ∂/∂x from dz. */
  backwardInput(k: KernelExports, [w]: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    if (this.bias) k.channel_bias_act_backward(b.dy, b.dy, b.z, b.y, 0, rows, this.outChannels, this.dims.spatial, this.act, 0);
    if (b.dx !== 0) this.convolveInput(k, b.dx, b.dy, w!, rows, s);
  }

  /** db (+)= Σ dz per channel, dW (+)= ∂/∂w from dz and the saved input. */
  backwardWeight(k: KernelExports, [dw, db]: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    if (this.bias) k.channel_bias_act_backward(b.dy, b.dy, b.dy, b.dy, db!, rows, this.outChannels, this.dims.spatial, Act.identity, acc);
    this.convolveWeight(k, dw!, b.dy, b.x, rows, acc, s);
  }
}

/**
 * Channels in and out from which a 3×3 stride-1 convolution takes the Winograd path: measured on
 * batch 64, Winograd ran 1.7–2.4× im2col's speed from 6 → 16 channels up, and 0.75× on 1 → 16 (a
 * one-channel input gives its GEMMs a single inner step).
 */
export const WINOGRAD_MIN_CHANNELS = 4;
