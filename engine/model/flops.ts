/**
 * Training FLOPs per sample, counted from the layers' shapes: the multiply-adds of every GEMM and
 * convolution a training step issues (two FLOPs each). Per trainable layer a step runs the forward
 * product, the weight-gradient product and — above the first trainable layer, whose input gradient
 * nobody reads — the input-gradient product, each with the forward's multiply-add count. Bias,
 * activation, pooling, loss and optimizer work are elementwise and not counted: they are a few
 * operations per value against hundreds of multiply-adds per output, and they do not run on the
 * multiply-add units the ceiling measures.
 */
import { Conv2d, Dense, type Layer } from "./layers.ts";
import type { Network } from "./network.ts";

export interface TrainingFlops {
  forward: number;
  inputGradient: number;
  weightGradient: number;
  /** forward + inputGradient + weightGradient. */
  total: number;
}

/** Multiply-adds of one sample's forward through `layer` (0 for layers without a product). */
export function forwardMultiplyAdds(layer: Layer): number {
  if (layer instanceof Dense) return layer.inputs * layer.outputs;
  if (layer instanceof Conv2d) {
    const inChannels = layer.inShape[0]!;
    return layer.outChannels * inChannels * layer.kernel * layer.kernel * layer.outH * layer.outW;
  }
  return 0;
}

export function trainingFlopsPerSample(net: Network): TrainingFlops {
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  let forward = 0;
  let inputGradient = 0;
  let weightGradient = 0;
  net.layers.forEach((layer, i) => {
    const flops = 2 * forwardMultiplyAdds(layer);
    forward += flops;
    if (net.params[i]!.floats > 0) weightGradient += flops;
    if (i > firstTrainable) inputGradient += flops;
  });
  return { forward, inputGradient, weightGradient, total: forward + inputGradient + weightGradient };
}
