/**
 * Σ_j w_j · x_j over k vectors with one kernel call: the all-reduce of sync, the replica average of
 * the asynchronous family and the neighbour mixing of gossip. The kernel reads its k pointers and k
 * weights from a table in the shared memory (`args`, planned by the caller, one per program so that
 * programs never share one), which this writes first.
 */
import type { KernelExports, Ptr } from "./abi.ts";

/** Room for a pointer table: k i32 pointers and k f32 weights. */
export interface WeightedSumArgs {
  tensors: Ptr;
  weights: Ptr;
}

/** Write the table for `sources` (each offset by `offsetFloats`) and their weights. */
export function writeWeightedSumArgs(memory: WebAssembly.Memory, args: WeightedSumArgs, sources: readonly Ptr[], weights: readonly number[] | number, offsetFloats = 0): void {
  const ptrs = new Int32Array(memory.buffer, args.tensors, sources.length);
  const ws = new Float32Array(memory.buffer, args.weights, sources.length);
  sources.forEach((p, j) => {
    ptrs[j] = p + offsetFloats * 4;
    ws[j] = typeof weights === "number" ? weights : weights[j]!;
  });
}

/** out[0 .. floats) = Σ_j weights_j · sources_j[offset .. offset + floats). */
export function weightedSum(k: KernelExports, memory: WebAssembly.Memory, args: WeightedSumArgs, out: Ptr, sources: readonly Ptr[], weights: readonly number[] | number, floats: number, offsetFloats = 0): void {
  writeWeightedSumArgs(memory, args, sources, weights, offsetFloats);
  k.weighted_sum(out, args.tensors, args.weights, sources.length, floats);
}
