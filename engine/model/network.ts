/**
 * A network: a stack of layers, where its parameters live, and the buffers one batch needs.
 *
 * Parameters form one flat vector (so averaging replicas or all-reducing gradients is one kernel call)
 * made of one contiguous region per layer (so layer-wise updates and pipeline stages address a layer
 * as one block). Every tensor is padded to 64 bytes; padding stays zero through every optimizer.
 */
import { GEMM_PACK_FLOATS, type KernelExports, type Ptr } from "../kernels/abi.ts";
import { alignFloats, type ArenaPlanner } from "../memory/arena.ts";
import type { Rng } from "../rng.ts";
import { withoutTopTier } from "../kernels/jit.ts";
import { type Layer, type LayerBuffers, type Scratch, type Shape, shapeSize } from "./layers.ts";
import { parseModelSpec } from "./spec.ts";

export interface ParamTensor {
  /** Checkpoint name, e.g. "layers.1.dense.weight". */
  name: string;
  shape: number[];
  /** Float offset inside the flat parameter vector. */
  offset: number;
  floats: number;
}

export interface LayerParams {
  /** Float offset and padded length of this layer's block in the flat vector. */
  offset: number;
  floats: number;
  tensors: ParamTensor[];
}

/** Everything one batch of `rows` samples needs, as plain pointers (it crosses to workers as JSON). */
export interface Workspace {
  rows: number;
  input: Ptr; // f32 [rows, ...inputShape]
  labels: Ptr; // i32 [rows]
  layers: LayerBuffers[];
  scratch: Scratch;
}

export class Network {
  readonly layers: Layer[];
  readonly params: LayerParams[];
  readonly paramFloats: number;
  readonly inputFloats: number;
  /**
   * Predictions per sample: 1 for a classifier; T for a language model, whose sample is T + 1 token
   * ids and whose every position predicts the next token. Losses and accuracies are reported per
   * sample as the mean over its positions (nats per token, next-token accuracy).
   */
  readonly positions: number;

  constructor(readonly specText: string, readonly inputShape: Shape, readonly classes: number) {
    const spec = parseModelSpec(specText);
    this.layers = spec.build(inputShape, classes);
    this.positions = spec.positions ?? 1;
    this.inputFloats = shapeSize(inputShape);
    let offset = 0;
    this.params = this.layers.map((layer, i) => {
      const start = offset;
      const tensors = layer.params.map((p) => {
        const floats = shapeSize(p.shape);
        const t = { name: `layers.${i}.${layer.kind}.${p.name}`, shape: p.shape, offset, floats };
        offset += alignFloats(floats);
        return t;
      });
      return { offset: start, floats: offset - start, tensors };
    });
    this.paramFloats = offset;
  }

  /** Parameters of the model, without the arena's alignment padding between tensors. */
  get parameterCount(): number {
    return this.params.reduce((a, l) => a + l.tensors.reduce((b, t) => b + t.floats, 0), 0);
  }

  /** Indices of layers that own parameters: the units layer-wise algorithms update. */
  get trainableLayers(): number[] {
    return this.params.flatMap((p, i) => (p.floats > 0 ? [i] : []));
  }

  /** Byte pointers of layer i's tensors inside a parameter (or gradient, or state) vector at `base`. */
  tensorPtrs(base: Ptr, layer: number): Ptr[] {
    return this.params[layer]!.tensors.map((t) => base + t.offset * 4);
  }

  /**
   * Plan the activation buffers for batches of up to `rows` samples. Buffers nobody reads are not
   * planned: the input gradient of the first trainable layer, or output gradients below it.
   */
  planWorkspace(planner: ArenaPlanner, tag: string, rows: number, options: { splitBackward?: boolean } = {}): Workspace {
    const input = planner.floats("activations", `${tag}.input`, rows * this.inputFloats);
    const labels = planner.reserve("activations", `${tag}.labels`, rows * this.positions * 4);
    const firstTrainable = this.trainableLayers[0] ?? this.layers.length;
    let prevY = input;
    let prevDy = 0;
    const layers = this.layers.map((layer, i): LayerBuffers => {
      const name = `${tag}.layer${i}.${layer.kind}`;
      const outFloats = rows * shapeSize(layer.outShape);
      const x = prevY;
      const dx = i > firstTrainable ? prevDy : 0;
      let y: Ptr, dy: Ptr;
      if (layer.aliasesInput) {
        y = x;
        dy = dx;
      } else {
        y = planner.floats("activations", `${name}.out`, outFloats);
        dy = i >= firstTrainable ? planner.floats("activations", `${name}.grad`, outFloats) : 0;
      }
      const z = layer.savedFloatsPerSample > 0 ? planner.floats("activations", `${name}.preact`, rows * layer.savedFloatsPerSample) : y;
      const argmax = layer.argmaxPerSample > 0 ? planner.reserve("activations", `${name}.argmax`, rows * layer.argmaxPerSample * 4) : 0;
      prevY = y;
      prevDy = dy;
      const heldFloats = options.splitBackward && i >= firstTrainable ? rows * (layer.heldFloatsPerSample ?? 0) : 0;
      return heldFloats > 0 ? { x, y, z, argmax, dx, dy, held: planner.floats("activations", `${name}.held`, heldFloats) } : { x, y, z, argmax, dx, dy };
    });
    const scratch = this.planScratch(planner, tag, rows);
    return { rows, input, labels, layers, scratch };
  }

  /** The per-worker scratch (GEMM panels, im2col, backward temporaries) for batches of up to `rows`. */
  planScratch(planner: ArenaPlanner, tag: string, rows: number): Scratch {
    let packFloats = 0;
    let colsFloats = 0;
    let tempFloats = 0;
    for (const layer of this.layers) {
      for (const g of layer.gemmShapes(rows)) packFloats = Math.max(packFloats, GEMM_PACK_FLOATS(g.M, g.K, g.N));
      colsFloats = Math.max(colsFloats, layer.colsFloats());
      tempFloats = Math.max(tempFloats, rows * (layer.tempFloatsPerSample ?? 0));
    }
    const scratch: Scratch = {
      pack: packFloats > 0 ? planner.floats("scratch", `${tag}.gemmPack`, packFloats) : 0,
      cols: colsFloats > 0 ? planner.floats("scratch", `${tag}.im2col`, colsFloats) : 0,
    };
    if (tempFloats > 0) scratch.temp = planner.floats("scratch", `${tag}.layerTemp`, tempFloats);
    return scratch;
  }

  logits(ws: Workspace): Ptr {
    return ws.layers[ws.layers.length - 1]!.y;
  }

  /** training = false (evaluation) makes batch norm use and keep its running statistics. */
  forwardLayer(k: KernelExports, i: number, params: Ptr, ws: Workspace, rows: number, training = true): void {
    this.layers[i]!.forward(k, this.tensorPtrs(params, i), ws.layers[i]!, rows, ws.scratch, training);
  }

  backwardLayer(k: KernelExports, i: number, params: Ptr, grads: Ptr, ws: Workspace, rows: number, accumulate: boolean): void {
    this.layers[i]!.backward(k, this.tensorPtrs(params, i), this.tensorPtrs(grads, i), ws.layers[i]!, rows, accumulate ? 1 : 0, ws.scratch);
  }

  /**
   * The input-gradient step of layer i's split backward (I): its b.dx, nothing into any gradient. A
   * layer without parameters runs its whole backward here. The workspace must be planned with
   * splitBackward, and the layer's W must run before anything overwrites this microbatch's buffers.
   */
  backwardInputLayer(k: KernelExports, i: number, params: Ptr, ws: Workspace, rows: number): void {
    const layer = this.layers[i]!;
    if (layer.params.length === 0) layer.backward(k, [], [], ws.layers[i]!, rows, 0, ws.scratch);
    else if (!layer.backwardInput) throw new Error(`${layer.kind} (layer ${i}) has no split backward`);
    else layer.backwardInput(k, this.tensorPtrs(params, i), ws.layers[i]!, rows, ws.scratch);
  }

  /** The weight-gradient step (W) of layer i, after its I: gradients into `grads`, added when `accumulate`. */
  backwardWeightLayer(k: KernelExports, i: number, grads: Ptr, ws: Workspace, rows: number, accumulate: boolean): void {
    const layer = this.layers[i]!;
    if (layer.params.length === 0) return;
    if (!layer.backwardWeight) throw new Error(`${layer.kind} (layer ${i}) has no split backward`);
    layer.backwardWeight(k, this.tensorPtrs(grads, i), ws.layers[i]!, rows, accumulate ? 1 : 0, ws.scratch);
  }

  /**
   * One forward + backward on the batch in ws, all but the first trainable layer's weight rows (see
   * Layer.weightGradientRows), which firstWeightRows adds, piece by piece, on any thread.
   * Returns Σ loss. Only for a network whose first trainable layer splits its weight gradient.
   */
  gradientButFirstWeightRows(k: KernelExports, params: Ptr, grads: Ptr, ws: Workspace, rows: number, scale: number): number {
    const first = this.trainableLayers[0]!;
    this.forward(k, params, ws, rows);
    const loss = this.lossAndGradient(k, ws, rows, scale);
    this.backward(k, params, grads, ws, rows, false, first + 1);
    this.backwardInputLayer(k, first, params, ws, rows);
    this.layers[first]!.backwardWeightAside!(k, this.tensorPtrs(grads, first), ws.layers[first]!, rows, 0);
    return loss;
  }

  /** Rows of the first trainable layer's weight gradient that can be computed apart; 0 where it cannot. */
  get firstWeightGradientRows(): number {
    const first = this.trainableLayers[0];
    const layer = first === undefined ? undefined : this.layers[first]!;
    return layer?.backwardWeightRows && layer.backwardWeightAside && layer.backwardInput ? (layer.weightGradientRows ?? 0) : 0;
  }

  /**
   * Rows [lo, hi) of the first trainable layer's weight gradient into `grads`, from the buffers of the
   * workspace `ws` the rest of the gradient was computed in (possibly another worker's) and with the
   * caller's own scratch.
   */
  firstWeightRows(k: KernelExports, grads: Ptr, ws: Workspace, rows: number, lo: number, hi: number, scratch: Scratch): void {
    const first = this.trainableLayers[0]!;
    this.layers[first]!.backwardWeightRows!(k, this.tensorPtrs(grads, first), ws.layers[first]!, rows, lo, hi, 0, scratch);
  }

  /**
   * Copies the state training forwards write (batch norm's running statistics) of layers first..last
   * from the vector a forward ran on to another: pipelines that forward with a stashed or predicted
   * copy of the weights keep what the forward learned in the live weights.
   */
  copyForwardState(k: KernelExports, from: Ptr, to: Ptr, first: number, last: number): void {
    if (from === to) return;
    for (let i = first; i <= last; i++) {
      this.layers[i]!.params.forEach((spec, j) => {
        if (spec.trainable !== false) return;
        const t = this.params[i]!.tensors[j]!;
        k.copy(to + t.offset * 4, from + t.offset * 4, t.floats);
      });
    }
  }

  forward(k: KernelExports, params: Ptr, ws: Workspace, rows: number, training = true): void {
    for (let i = 0; i < this.layers.length; i++) this.forwardLayer(k, i, params, ws, rows, training);
  }

  /**
   * Softmax cross-entropy of the last forward; writes dlogits scaled by `scale` (1/global batch, so
   * summing the shards' gradients gives the batch mean) and returns the summed loss.
   */
  lossAndGradient(k: KernelExports, ws: Workspace, rows: number, scale: number): number {
    const last = ws.layers[ws.layers.length - 1]!;
    const P = this.positions;
    if (P > 1) k.next_token_labels(ws.labels, ws.input, this.inputFloats, rows, P);
    return k.softmax_xent(last.dy, last.y, ws.labels, rows * P, this.classes, scale / P) / P;
  }

  /** Layers last … `lowest` backward (by default down to the first trainable one). */
  backward(k: KernelExports, params: Ptr, grads: Ptr, ws: Workspace, rows: number, accumulate: boolean, lowest = this.trainableLayers[0] ?? this.layers.length): void {
    for (let i = this.layers.length - 1; i >= lowest; i--) this.backwardLayer(k, i, params, grads, ws, rows, accumulate);
  }

  /** One forward + backward on the batch already in ws; gradients into `grads`. Returns Σ loss. */
  gradient(k: KernelExports, params: Ptr, grads: Ptr, ws: Workspace, rows: number, scale: number, accumulate = false): number {
    this.forward(k, params, ws, rows);
    const loss = this.lossAndGradient(k, ws, rows, scale);
    this.backward(k, params, grads, ws, rows, accumulate);
    return loss;
  }

  /** Forward only: Σ loss and the number of correct predictions on the batch in ws. */
  evaluate(k: KernelExports, params: Ptr, ws: Workspace, rows: number): { lossSum: number; correct: number } {
    this.forward(k, params, ws, rows, false);
    const logits = this.logits(ws);
    const P = this.positions;
    if (P > 1) k.next_token_labels(ws.labels, ws.input, this.inputFloats, rows, P);
    return {
      lossSum: k.softmax_xent(0, logits, ws.labels, rows * P, this.classes, 0) / P,
      correct: k.count_correct(logits, ws.labels, rows * P, this.classes) / P,
    };
  }

  /**
   * Initial weights from the seed: He-normal before relu/gelu (keeps activation variance), Glorot-like
   * 1/fanIn otherwise; biases zero; tensors that say how (ParamSpec.init) as they say. Depends only on (spec, shapes, seed): a resumed run never calls it.
   */
  initialize(params: Float32Array, rng: Rng): void {
    params.fill(0);
    this.layers.forEach((layer, i) => {
      const act = (layer as { activation?: string }).activation ?? "identity";
      const gain = act === "relu" || act === "gelu" ? 2 : 1;
      for (const [j, spec] of layer.params.entries()) {
        const t = this.params[i]!.tensors[j]!;
        if (spec.init === "ones") params.fill(1, t.offset, t.offset + t.floats);
        if (spec.init === "ones" || spec.init === "zeros" || (spec.init === undefined && spec.std === undefined && spec.name !== "weight")) continue;
        const std = spec.std ?? Math.sqrt((spec.init === "he" ? 2 : gain) / spec.fanIn);
        fillNormal(params, t.offset, t.floats, std, rng);
      }
    });
  }
}

/**
 * params[from, from + count) = N(0, std²) draws, in order. One-shot, on the main thread, before the
 * workers train: kept off the FTL tier, whose code would arrive after the loop ends (see jit.ts).
 */
const fillNormal = withoutTopTier((params: Float32Array, from: number, count: number, std: number, rng: Rng): void => {
  for (let e = 0; e < count; e++) params[from + e] = rng.normal() * std;
});
