/**
 * Plain TypeScript mixing on node-major arrays, the reference the topology tests check the matrices
 * against: X holds n rows of d values (row i = node i's vector).
 */
import type { MixingMatrix } from "../engine/algorithms/gossip/topology.ts";


export type NodeRows = Float64Array | Float32Array;

/** W·X: every node replaced by the weighted sum of what it receives (accumulated in f64). */
export function mix<T extends NodeRows>(W: MixingMatrix, X: T, out?: T): T {
  const { n } = W;
  if (X.length % n !== 0) throw new RangeError(`mix: ${X.length} values do not split into ${n} node rows`);
  const d = X.length / n;
  const result = out ?? (new (X.constructor as new (length: number) => T)(X.length));
  if (result === X || result.length !== X.length) throw new RangeError("mix: out must be a separate array of X's length");
  const row = new Float64Array(d);
  W.receive.forEach(({ from, weights }, i) => {
    row.fill(0);
    for (let k = 0; k < from.length; k++) {
      const w = weights[k]!;
      const base = from[k]! * d;
      for (let c = 0; c < d; c++) row[c]! += w * X[base + c]!;
    }
    result.set(row, i * d);
  });
  return result;
}

/** x̄ = (1/n) Σ_i x_i, a vector of d values. */
export function mean(X: NodeRows, n: number): Float64Array {
  if (!(n >= 1) || X.length % n !== 0) throw new RangeError(`mean: ${X.length} values do not split into ${n} node rows`);
  const d = X.length / n;
  const average = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) average[c]! += X[i * d + c]!;
  for (let c = 0; c < d; c++) average[c]! /= n;
  return average;
}

/** (1/n) Σ_i ‖x_i − x̄‖²: how far the nodes are from agreeing. */
export function consensusDistance(X: NodeRows, n: number): number {
  const average = mean(X, n);
  const d = average.length;
  let sum = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) sum += (X[i * d + c]! - average[c]!) ** 2;
  return sum / n;
}
