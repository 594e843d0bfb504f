/**
 * The streaming kernels (optimizer updates, prediction, averaging, copies): which they are, how many
 * vectors each streams, the bytes a call touches (its footprint, by which its warm cost is priced,
 * costs.ts), and the warm call their curves by distance are measured against (cache-model.ts).
 */
import { WORK } from "./kernel-work.ts";

/**
 * The kernels that stream whole vectors (the optimizer updates, prediction, averaging, copies): each
 * has its own curve by distance in a cost table's coldCurves, as the GEMMs do.
 */
export const STREAMING_KERNELS = [
  "copy", "axpy", "scale", "fill_zero", "sgd_update", "momentum_update", "adam_update", "rmsprop_update",
  "predict_linear", "predict_nesterov", "predict_adam", "predict_rmsprop", "delay_compensate", "squared_distance", "weighted_sum",
] as const;

export type StreamingKernel = (typeof STREAMING_KERNELS)[number];

/**
 * Floats per operand of the warm call each streaming kernel's curve by distance (coldCurves) is
 * measured against: a small model's size (mlp 784-256-128-10's 235,146 parameters, to a whole 64-byte
 * line), and not a power of two. Operands a power of two apart fall in the same cache sets: a
 * three-way weighted_sum on 1 MiB vectors took 86–114 µs warm against 65–67 on these.
 */
export const RING_FLOATS = 235_152;

/** Bytes of a streaming kernel's operands in that warm call (weighted_sum: three inputs and its output). */
export const ringCallFootprint = (name: StreamingKernel): number => (name === "weighted_sum" ? 4 : STREAMING_OPERANDS[name]) * RING_FLOATS * 4;

/**
 * Vectors each streaming kernel reads or writes per element (weighted_sum: its k inputs and its
 * output, see streamingFootprint).
 */
export const STREAMING_OPERANDS: Record<Exclude<StreamingKernel, "weighted_sum">, number> = {
  copy: 2, axpy: 2, scale: 1, fill_zero: 1, sgd_update: 2, momentum_update: 3, adam_update: 4, rmsprop_update: 3,
  predict_linear: 3, predict_nesterov: 4, predict_adam: 4, predict_rmsprop: 4, delay_compensate: 3, squared_distance: 2,
};

export const isStreamingKernel = (name: string): name is StreamingKernel => (STREAMING_KERNELS as readonly string[]).includes(name);

/**
 * The bytes a streaming kernel's call touches (its footprint): 4 bytes per element of each operand;
 * weighted_sum(out, tensors, weights, k, n) reads k vectors of n floats and writes one.
 */
export function streamingFootprint(name: StreamingKernel, args: readonly number[]): number {
  if (name === "weighted_sum") return 4 * args[4]! * (args[3]! + 1);
  return 4 * WORK[name]!.work(args as number[]) * STREAMING_OPERANDS[name];
}
