/**
 * Training FLOPs per sample, counted from the layers' shapes: the multiply-adds of every GEMM,
 * convolution and batched product a training step issues (two FLOPs each), inside composite layers
 * too (residual blocks, transformer blocks). Per product a step runs the forward, the
 * weight-gradient product (where the product has weights) and the input-gradient product, each with
 * the forward's multiply-add count, except the input gradient of the first trainable layer, which
 * nobody reads and the layers skip. Winograd convolutions count as the direct convolution they
 * compute (the work the model asks for, whatever algorithm does it); causal attention counts the
 * (query, key) pairs it can see, T(T+1)/2 per head. Bias, activation, normalization, pooling,
 * embedding lookups, loss and optimizer work are elementwise and not counted: they are a few
 * operations per value against hundreds of multiply-adds per output, and they do not run on the
 * multiply-add units the ceiling measures.
 */
import { Conv2d } from "./conv2d.ts";
import { Dense, type Layer } from "./layers.ts";
import { LayerNormHead, TransformerBlock } from "./gpt.ts";
import type { Network } from "./network.ts";
import { ResidualBlock } from "./resnet.ts";

export interface TrainingFlops {
  forward: number;
  inputGradient: number;
  weightGradient: number;
  /** forward + inputGradient + weightGradient. */
  total: number;
}

/** Multiply-adds per sample of one layer's products in a training step. */
export interface LayerMultiplyAdds {
  forward: number;
  /** Input gradients inside the layer, run whether or not the layer's own input gradient is wanted. */
  innerInputGradient: number;
  /** The product that gives the layer's own input gradient (skipped for the first trainable layer). */
  inputGradient: number;
  weightGradient: number;
}

const none: LayerMultiplyAdds = { forward: 0, innerInputGradient: 0, inputGradient: 0, weightGradient: 0 };

/** A product with weights (dense map, convolution): forward, input gradient and weight gradient alike. */
const weighted = (macs: number): LayerMultiplyAdds => ({ forward: macs, innerInputGradient: 0, inputGradient: macs, weightGradient: macs });

const convMacs = (c: Conv2d): number => c.outChannels * c.inShape[0]! * c.kernel * c.kernel * c.outH * c.outW;

/** Multiply-adds of one sample's causal attention forward: Q·Kᵀ and att·V over T(T+1)/2 pairs, width E in all heads. */
export const causalAttentionMacs = (T: number, E: number): number => E * T * (T + 1);

export function layerMultiplyAdds(layer: Layer): LayerMultiplyAdds {
  if (layer instanceof Dense) return weighted(layer.inputs * layer.outputs);
  if (layer instanceof Conv2d) return weighted(convMacs(layer));
  if (layer instanceof ResidualBlock) {
    // conv2's input gradient feeds conv1's backward inside the block; conv1's and the projection's
    // are the block's own input gradient.
    const c1 = convMacs(layer.conv1), c2 = convMacs(layer.conv2), p = layer.projection ? convMacs(layer.projection) : 0;
    return { forward: c1 + c2 + p, innerInputGradient: c2, inputGradient: c1 + p, weightGradient: c1 + c2 + p };
  }
  if (layer instanceof TransformerBlock) {
    const T = layer.context, E = layer.embed;
    // qkv E→3E, proj E→E, fc E→4E, fc2 4E→E at every position: 12E² per position.
    const dense = T * 12 * E * E;
    const attention = causalAttentionMacs(T, E);
    // The backward runs every dense map's input gradient (qkv's feeds LayerNorm 1 even when the
    // block's dx is not wanted), and attention's four products: d(att), dV, dQ, dK.
    return { forward: dense + attention, innerInputGradient: dense + 2 * attention, inputGradient: 0, weightGradient: dense };
  }
  if (layer instanceof LayerNormHead) {
    // The head's d(ln) is always computed (the embedding below is always trainable).
    const macs = layer.context * layer.embed * layer.vocab;
    return { forward: macs, innerInputGradient: macs, inputGradient: 0, weightGradient: macs };
  }
  return none; // embeddings, batch norm, pooling, flatten, activations: no products
}

/** Multiply-adds of one sample's forward through `layer` (0 for layers without a product). */
export function forwardMultiplyAdds(layer: Layer): number {
  return layerMultiplyAdds(layer).forward;
}

export function trainingFlopsPerSample(net: Network): TrainingFlops {
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  let forward = 0;
  let inputGradient = 0;
  let weightGradient = 0;
  net.layers.forEach((layer, i) => {
    const m = layerMultiplyAdds(layer);
    forward += 2 * m.forward;
    if (net.params[i]!.floats > 0) weightGradient += 2 * m.weightGradient;
    if (i >= firstTrainable) inputGradient += 2 * m.innerInputGradient;
    if (i > firstTrainable) inputGradient += 2 * m.inputGradient;
  });
  return { forward, inputGradient, weightGradient, total: forward + inputGradient + weightGradient };
}
