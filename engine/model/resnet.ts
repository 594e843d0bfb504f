/**
 * Residual CNNs for small images: He, Zhang, Ren & Sun, "Deep Residual Learning for Image
 * Recognition" (CVPR 2016), section 4.2's CIFAR design, the network LPP-SGD, PipeOptim and DecentLaM
 * report on:
 *
 *   3×3 conv (16) → BN → ReLU
 *   3 stages × n basic blocks at 16, 32, 64 channels; the first block of stages 2 and 3 has stride 2
 *   global average pooling → linear head                           N = 6n + 2 weighted layers
 *
 * A basic block: conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU. Where the shape
 * changes the shortcut is one of the paper's two (section 3.3):
 *  - option A, `resnet:N` (its CIFAR choice): the input subsampled by the stride with the new
 *    channels zero-padded, so the shortcut has no parameters;
 *  - option B, `resnet:N:b` (its ImageNet choice, and torchvision's): a 1×1 convolution with the
 *    block's stride, then batch norm — a projection with parameters, the same policy for its batch
 *    norm as for the others. Blocks that keep the shape keep the identity shortcut under both.
 * Convolutions before a batch norm carry no bias (β is the bias).
 *
 * The network stays a stack: a block is one layer whose inner stack and skip live inside it, so every
 * algorithm that walks layers (layer-wise updates, pipeline cuts, Hogwild! chunks) sees residual
 * blocks as units and never cuts a skip connection. Layer-wise and pipelined algorithms therefore
 * update per block: the block's gradient exists only when its whole backward (both convolutions and
 * the skip) is done, and a cut inside a block would have to ship the skip's activations across the
 * stage boundary too. Inside the block every tensor keeps its own name and region in the checkpoint.
 *
 * Batch-norm policy (the same code under every family):
 *  - Training forwards normalize with the statistics of the rows they see: per-worker (per-shard,
 *    per-microbatch, per-node) batch statistics, never synchronized across workers, as in PyTorch's
 *    DistributedDataParallel without SyncBatchNorm, which the papers' code uses.
 *  - The running mean and variance live in the parameter vector next to γ and β (non-trainable,
 *    zero gradient), and every training forward folds its batch statistics into the copy of them in
 *    the vector it reads (momentum 0.1, unbiased variance, as PyTorch). So: sync's workers fold in
 *    their shards in turn into the shared vector (under the threaded executor in an unsynchronized
 *    order: the running statistics, which no training step reads, may then differ in the last bits
 *    between runs, while the weights stay bitwise reproducible); Hogwild!/LAP/layer-wise forward
 *    threads update their replica's copy; a pipeline stage updates its own layers' statistics in the
 *    weights it forwards with, and when that is a stash (pipedream, 2bw's shadow) or a prediction
 *    (SpecTrain, PipeOptim) copies them back into the live weights right after the forward
 *    (Network.copyForwardState), so the stage's live weights carry the newest statistics; each
 *    gossip node updates its own copy, and gossip mixes the statistics with the weights, since they
 *    are in the same vector — which is what the averaged model that gossip runs evaluate needs.
 *  - Evaluation normalizes with the running statistics and changes nothing.
 */
import { UserError } from "../errors.ts";
import { Act, type KernelExports, type Ptr } from "../kernels/abi.ts";
import { Conv2d } from "./conv2d.ts";
import { Dense, type GemmShape, type Layer, type LayerBuffers, type ParamSpec, type Scratch, type Shape, shapeSize } from "./layers.ts";

export const BN_EPS = 1e-5;
/** Weight of the newest batch in the running statistics (PyTorch's default). */
export const BN_MOMENTUM = 0.1;

/** γ, β and the running statistics of a batch norm over `channels`, names prefixed for a composite layer. */
function batchNormParams(channels: number, prefix = ""): ParamSpec[] {
  return [
    { name: `${prefix}weight`, shape: [channels], fanIn: 1, init: "ones" },
    { name: `${prefix}bias`, shape: [channels], fanIn: 1, init: "zeros" },
    { name: `${prefix}running_mean`, shape: [channels], fanIn: 1, init: "zeros", trainable: false },
    { name: `${prefix}running_var`, shape: [channels], fanIn: 1, init: "ones", trainable: false },
  ];
}

/** Batch norm of NCHW maps (Ioffe & Szegedy 2015), with an optional fused ReLU. */
export class BatchNorm2d implements Layer {
  readonly kind = "batchnorm";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  /** The batch's mean and 1/σ per channel (2C floats per batch; allotted per sample for simplicity). */
  readonly savedFloatsPerSample: number;
  readonly argmaxPerSample = 0;
  private readonly act: number;

  constructor(inShape: Shape, readonly activation: "identity" | "relu") {
    const [c] = inShape as [number, number, number];
    this.inShape = inShape;
    this.outShape = inShape;
    this.params = batchNormParams(c);
    this.savedFloatsPerSample = 2 * c;
    this.act = Act[activation];
  }

  private get dims() {
    const [c, h, w] = this.inShape as [number, number, number];
    return { c, hw: h * w };
  }
  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }
  macsPerSample(): number {
    return 2 * shapeSize(this.inShape);
  }

  forward(k: KernelExports, [g, beta, rm, rv]: Ptr[], b: LayerBuffers, rows: number, _s: Scratch, training = true): void {
    const { c, hw } = this.dims;
    k.batchnorm_forward(b.y, b.z, b.x, g!, beta!, rm!, rv!, rows, c, hw, BN_EPS, training ? BN_MOMENTUM : 0, training ? 1 : 0, this.act);
  }

  backward(k: KernelExports, [g]: Ptr[], [dg, dbeta, drm, drv]: Ptr[], b: LayerBuffers, rows: number, acc: number): void {
    const { c, hw } = this.dims;
    k.batchnorm_backward(b.dx, dg!, dbeta!, b.dy, b.x, b.y, b.z, g!, rows, c, hw, this.act, acc);
    zeroStatGradients(k, drm!, drv!, c, acc);
  }

  /** The input gradient needs Σ dz and Σ dz·x̂, which are dβ and dγ: I keeps them (2C floats) for W. */
  get heldFloatsPerSample(): number {
    return 2 * this.dims.c;
  }

  backwardInput(k: KernelExports, [g]: Ptr[], b: LayerBuffers, rows: number): void {
    const { c, hw } = this.dims;
    k.batchnorm_backward(b.dx, b.held!, b.held! + c * 4, b.dy, b.x, b.y, b.z, g!, rows, c, hw, this.act, 0);
  }

  backwardWeight(k: KernelExports, [dg, dbeta, drm, drv]: Ptr[], b: LayerBuffers, _rows: number, acc: number): void {
    const { c } = this.dims;
    addHeldSums(k, dg!, dbeta!, b.held!, c, acc);
    zeroStatGradients(k, drm!, drv!, c, acc);
  }
}

/**
 * dγ (+)= the held Σ dz·x̂, dβ (+)= the held Σ dz. batchnorm_backward adds its finished sums to dγ
 * and dβ in one rounding each, so adding (or copying) the held sums gives the same bits.
 */
function addHeldSums(k: KernelExports, dg: Ptr, dbeta: Ptr, held: Ptr, channels: number, acc: number): void {
  if (acc) {
    k.axpy(dg, held, channels, 1);
    k.axpy(dbeta, held + channels * 4, channels, 1);
  } else {
    k.copy(dg, held, channels);
    k.copy(dbeta, held + channels * 4, channels);
  }
}

/** The running statistics learn nothing by gradient: their gradient is written as zero, never left stale. */
function zeroStatGradients(k: KernelExports, drm: Ptr, drv: Ptr, channels: number, acc: number): void {
  if (acc) return; // accumulating onto zeros keeps them zero
  k.fill_zero(drm, channels);
  k.fill_zero(drv, channels);
}

/** [C, H, W] → [C]: the mean of each map. */
export class GlobalAvgPool implements Layer {
  readonly kind = "avgpool";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[] = [];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample = 0;
  readonly argmaxPerSample = 0;

  constructor(inShape: Shape) {
    this.inShape = inShape;
    this.outShape = [inShape[0]!];
  }
  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return 0;
  }
  macsPerSample(): number {
    return shapeSize(this.inShape);
  }
  forward(k: KernelExports, _p: Ptr[], b: LayerBuffers, rows: number): void {
    const [c, h, w] = this.inShape as [number, number, number];
    k.global_avgpool_forward(b.y, b.x, rows * c, h * w);
  }
  backward(k: KernelExports, _p: Ptr[], _dp: Ptr[], b: LayerBuffers, rows: number): void {
    if (b.dx === 0) return;
    const [c, h, w] = this.inShape as [number, number, number];
    k.global_avgpool_backward(b.dx, b.dy, rows * c, h * w);
  }
}

/** How a block whose shape changes carries its input to the sum: He et al.'s option A or B. */
export type Shortcut = "A" | "B";

/**
 * He et al.'s basic block: y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), conv1 with the
 * block's stride; where channels or size change, the shortcut is option A (strided identity,
 * zero-padded channels) or B (bn_s(conv1×1_s(x)), stride s).
 *
 * Saved per sample between forward and backward: conv1's output a1, the first half's output b1 and
 * conv2's output a2 (3 maps), plus each batch norm's 2C statistics; a projection adds its
 * convolution's output and its batch norm's statistics. The temporaries (two maps, and for a
 * projection the shortcut's input gradient) come from the worker's shared scratch.
 */
export class ResidualBlock implements Layer {
  readonly kind = "resblock";
  readonly inShape: Shape;
  readonly outShape: Shape;
  readonly params: ParamSpec[];
  readonly aliasesInput = false;
  readonly savedFloatsPerSample: number;
  readonly tempFloatsPerSample: number;
  readonly argmaxPerSample = 0;
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  /** The option-B projection's 1×1 convolution; absent for identity and option-A shortcuts. */
  readonly projection?: Conv2d;
  private readonly mapFloats: number;

  constructor(inShape: Shape, readonly channels: number, readonly stride: 1 | 2, shortcut: Shortcut = "A") {
    const [cin] = inShape as [number, number, number];
    const changes = channels !== cin || stride !== 1;
    if (changes && shortcut === "A" && (channels < cin || (channels - cin) % 2 !== 0)) throw new Error(`resblock: option-A shortcut needs an even channel increase, not ${cin} → ${channels}`);
    this.inShape = inShape;
    this.conv1 = new Conv2d(inShape, channels, 3, stride, 1, "identity", false);
    this.conv2 = new Conv2d(this.conv1.outShape, channels, 3, 1, 1, "identity", false);
    this.outShape = this.conv1.outShape;
    this.mapFloats = shapeSize(this.outShape);
    const he = (p: ParamSpec, prefix: string): ParamSpec => ({ ...p, name: `${prefix}.${p.name}`, init: "he" });
    this.params = [
      he(this.conv1.params[0]!, "conv1"),
      ...batchNormParams(channels, "bn1."),
      he(this.conv2.params[0]!, "conv2"),
      ...batchNormParams(channels, "bn2."),
    ];
    this.savedFloatsPerSample = 3 * this.mapFloats + 4 * channels;
    this.tempFloatsPerSample = 2 * this.mapFloats;
    if (changes && shortcut === "B") {
      this.projection = new Conv2d(inShape, channels, 1, stride, 0, "identity", false);
      this.params.push(he(this.projection.params[0]!, "shortcut.conv"), ...batchNormParams(channels, "shortcut.bn."));
      this.savedFloatsPerSample += this.mapFloats + 2 * channels;
      this.tempFloatsPerSample += shapeSize(inShape);
    }
  }

  private get dims() {
    const [cin, h, w] = this.inShape as [number, number, number];
    return { cin, h, w, c: this.channels, hw: this.conv1.outH * this.conv1.outW };
  }

  gemmShapes(): GemmShape[] {
    return [];
  }
  colsFloats(): number {
    return Math.max(this.conv1.colsFloats(), this.conv2.colsFloats(), this.projection?.colsFloats() ?? 0);
  }
  macsPerSample(): number {
    const projection = this.projection ? this.projection.macsPerSample() + 2 * this.mapFloats : 0;
    return this.conv1.macsPerSample() + this.conv2.macsPerSample() + 6 * this.mapFloats + projection;
  }

  /** Where a1, b1, a2, the batch norms' statistics and the projection's output sit in the saved region, for `rows` rows. */
  private saved(b: LayerBuffers, rows: number) {
    const map = rows * this.mapFloats * 4;
    const stats = 2 * this.channels * 4;
    const stats1 = b.z + 3 * map;
    return { a1: b.z, b1: b.z + map, a2: b.z + 2 * map, stats1, stats2: stats1 + stats, statsS: stats1 + 2 * stats, aS: stats1 + 3 * stats };
  }

  forward(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch, training = true): void {
    const [w1, g1, be1, rm1, rv1, w2, g2, be2, rm2, rv2, wS, gS, beS, rmS, rvS] = p as Ptr[];
    const { cin, h, w, c, hw } = this.dims;
    const { a1, b1, a2, stats1, stats2, statsS, aS } = this.saved(b, rows);
    const momentum = training ? BN_MOMENTUM : 0;
    const mode = training ? 1 : 0;
    this.conv1.convolve(k, a1, b.x, w1!, rows, s);
    k.batchnorm_forward(b1, stats1, a1, g1!, be1!, rm1!, rv1!, rows, c, hw, BN_EPS, momentum, mode, Act.relu);
    this.conv2.convolve(k, a2, b1, w2!, rows, s);
    k.batchnorm_forward(b.y, stats2, a2, g2!, be2!, rm2!, rv2!, rows, c, hw, BN_EPS, momentum, mode, Act.identity);
    if (this.projection) {
      if (!s.temp) throw new Error("resblock: a projection shortcut needs the workspace's temp scratch");
      this.projection.convolve(k, aS, b.x, wS!, rows, s);
      k.batchnorm_forward(s.temp, statsS, aS, gS!, beS!, rmS!, rvS!, rows, c, hw, BN_EPS, momentum, mode, Act.identity);
      k.shortcut_forward(b.y, s.temp, rows, c, this.conv1.outH, this.conv1.outW, c, 1); // a residual add
    } else {
      k.shortcut_forward(b.y, b.x, rows, cin, h, w, c, this.stride);
    }
    k.bias_act_forward(b.y, b.y, 0, rows, this.mapFloats, Act.relu); // in place: y > 0 exactly where the sum was
  }

  backward(k: KernelExports, p: Ptr[], dp: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const [w1, g1, , , , w2, g2, , , , wS, gS] = p as Ptr[];
    const [dw1, dg1, dbe1, drm1, drv1, dw2, dg2, dbe2, drm2, drv2, dwS, dgS, dbeS, drmS, drvS] = dp as Ptr[];
    if (!s.temp) throw new Error("resblock: backward needs the workspace's temp scratch");
    const { cin, h, w, c, hw } = this.dims;
    const { a1, b1, a2, stats1, stats2, statsS, aS } = this.saved(b, rows);
    const t1 = s.temp;
    const t2 = s.temp + rows * this.mapFloats * 4;
    // dsum = dy ⊙ [sum > 0], in place; it feeds both the second batch norm and the shortcut.
    k.bias_act_backward(b.dy, b.dy, b.y, b.y, 0, rows, this.mapFloats, Act.relu, 0);
    k.batchnorm_backward(t1, dg2!, dbe2!, b.dy, a2, b.y, stats2, g2!, rows, c, hw, Act.identity, acc); // t1 = da2
    this.conv2.convolveBackward(k, t2, dw2!, t1, b1, w2!, rows, acc, s); // t2 = db1
    k.batchnorm_backward(t1, dg1!, dbe1!, t2, a1, b1, stats1, g1!, rows, c, hw, Act.relu, acc); // t1 = da1
    this.conv1.convolveBackward(k, b.dx, dw1!, t1, b.x, w1!, rows, acc, s);
    if (this.projection) {
      // the shortcut's branch: bn_s then the 1×1 convolution; its input gradient is added to dx
      const t3 = s.temp + 2 * rows * this.mapFloats * 4;
      k.batchnorm_backward(t1, dgS!, dbeS!, b.dy, aS, aS, statsS, gS!, rows, c, hw, Act.identity, acc); // t1 = daS
      this.projection.convolveBackward(k, b.dx !== 0 ? t3 : 0, dwS!, t1, b.x, wS!, rows, acc, s);
      if (b.dx !== 0) k.shortcut_backward(b.dx, t3, rows, cin, h, w, cin, 1); // dx += t3
      zeroStatGradients(k, drmS!, drvS!, c, acc);
    } else if (b.dx !== 0) {
      k.shortcut_backward(b.dx, b.dy, rows, cin, h, w, c, this.stride);
    }
    zeroStatGradients(k, drm1!, drv1!, c, acc);
    zeroStatGradients(k, drm2!, drv2!, c, acc);
  }

  /**
   * A split backward keeps the convolutions' output gradients (da2, da1 and, with a projection, daS:
   * their weight gradients need them) and the batch norms' sums (their dγ, dβ) from I to W.
   */
  get heldFloatsPerSample(): number {
    return (this.projection ? 3 : 2) * this.mapFloats + (this.projection ? 6 : 4) * this.channels;
  }

  private held(b: LayerBuffers, rows: number) {
    const map = rows * this.mapFloats * 4;
    const sums = 2 * this.channels * 4;
    const at = b.held!;
    const sums2 = at + (this.projection ? 3 : 2) * map;
    return { da2: at, da1: at + map, daS: at + 2 * map, sums2, sums1: sums2 + sums, sumsS: sums2 + 2 * sums };
  }

  /** The same kernels as backward, in the same order, with each weight gradient left for backwardWeight. */
  backwardInput(k: KernelExports, p: Ptr[], b: LayerBuffers, rows: number, s: Scratch): void {
    const [w1, g1, , , , w2, g2, , , , wS, gS] = p as Ptr[];
    if (!s.temp) throw new Error("resblock: backward needs the workspace's temp scratch");
    const { cin, h, w, c, hw } = this.dims;
    const { a1, b1, a2, stats1, stats2, statsS, aS } = this.saved(b, rows);
    const { da2, da1, daS, sums2, sums1, sumsS } = this.held(b, rows);
    const db1 = s.temp;
    k.bias_act_backward(b.dy, b.dy, b.y, b.y, 0, rows, this.mapFloats, Act.relu, 0);
    k.batchnorm_backward(da2, sums2, sums2 + c * 4, b.dy, a2, b.y, stats2, g2!, rows, c, hw, Act.identity, 0);
    this.conv2.convolveInput(k, db1, da2, w2!, rows, s);
    k.batchnorm_backward(da1, sums1, sums1 + c * 4, db1, a1, b1, stats1, g1!, rows, c, hw, Act.relu, 0);
    if (b.dx !== 0) this.conv1.convolveInput(k, b.dx, da1, w1!, rows, s);
    if (this.projection) {
      const t3 = s.temp + 2 * rows * this.mapFloats * 4;
      k.batchnorm_backward(daS, sumsS, sumsS + c * 4, b.dy, aS, aS, statsS, gS!, rows, c, hw, Act.identity, 0);
      if (b.dx !== 0) {
        this.projection.convolveInput(k, t3, daS, wS!, rows, s);
        k.shortcut_backward(b.dx, t3, rows, cin, h, w, cin, 1); // dx += t3
      }
    } else if (b.dx !== 0) {
      k.shortcut_backward(b.dx, b.dy, rows, cin, h, w, c, this.stride);
    }
  }

  backwardWeight(k: KernelExports, dp: Ptr[], b: LayerBuffers, rows: number, acc: number, s: Scratch): void {
    const [dw1, dg1, dbe1, drm1, drv1, dw2, dg2, dbe2, drm2, drv2, dwS, dgS, dbeS, drmS, drvS] = dp as Ptr[];
    const { c } = this.dims;
    const { b1 } = this.saved(b, rows);
    const { da2, da1, daS, sums2, sums1, sumsS } = this.held(b, rows);
    addHeldSums(k, dg2!, dbe2!, sums2, c, acc);
    this.conv2.convolveWeight(k, dw2!, da2, b1, rows, acc, s);
    addHeldSums(k, dg1!, dbe1!, sums1, c, acc);
    this.conv1.convolveWeight(k, dw1!, da1, b.x, rows, acc, s);
    if (this.projection) {
      addHeldSums(k, dgS!, dbeS!, sumsS, c, acc);
      this.projection.convolveWeight(k, dwS!, daS, b.x, rows, acc, s);
      zeroStatGradients(k, drmS!, drvS!, c, acc);
    }
    zeroStatGradients(k, drm1!, drv1!, c, acc);
    zeroStatGradients(k, drm2!, drv2!, c, acc);
  }
}

/** resnet:N for C×H×W images: the layer stack (stem conv, stem BN, blocks, pooling, head). */
export function buildResnet(text: string, depth: number, inputShape: Shape, classes: number, shortcut: Shortcut = "A"): Layer[] {
  if (inputShape.length !== 3) throw new UserError(`--model ${text} needs image data (C×H×W); this data has flat ${shapeSize(inputShape)}-float samples`);
  const [, h, w] = inputShape as [number, number, number];
  if (h < 4 || w < 4) throw new UserError(`--model ${text} needs images of at least 4×4 (two stride-2 stages); this data has ${h}×${w}`);
  const n = (depth - 2) / 6;
  const stem = new Conv2d(inputShape, 16, 3, 1, 1, "identity", false);
  stem.params[0]!.init = "he"; // a ReLU follows its batch norm
  const layers: Layer[] = [stem, new BatchNorm2d(stem.outShape, "relu")];
  let shape = stem.outShape;
  for (const [stage, channels] of [16, 32, 64].entries()) {
    for (let i = 0; i < n; i++) {
      const block = new ResidualBlock(shape, channels, stage > 0 && i === 0 ? 2 : 1, shortcut);
      layers.push(block);
      shape = block.outShape;
    }
  }
  const pool = new GlobalAvgPool(shape);
  layers.push(pool, new Dense(64, classes, "identity"));
  return layers;
}

/** Parses resnet:N[:a|b]: N = 6n + 2 with n ≥ 1 (8, 14, 20, 32, 44, 56, 110), the shortcut option (A unless given). */
export function parseResnet(text: string, rest: string[]): { depth: number; shortcut: Shortcut } {
  const usage = `--model ${text}: expected resnet:N[:a|b] with N = 6n + 2 (resnet:8, resnet:20, resnet:32, ...) and the shortcut where the shape changes: a = zero-padded identity (default), b = 1×1 convolution + batch norm`;
  if (rest.length < 1 || rest.length > 2 || !/^\d+$/.test(rest[0]!)) throw new UserError(usage);
  const depth = Number(rest[0]);
  if (depth < 8 || (depth - 2) % 6 !== 0 || depth > 1202) throw new UserError(usage);
  const option = (rest[1] ?? "a").toUpperCase();
  if (option !== "A" && option !== "B") throw new UserError(usage);
  return { depth, shortcut: option };
}
