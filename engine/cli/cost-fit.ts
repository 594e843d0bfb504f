/**
 * Fitting a kernel's cost to its measured times, for `skein calibrate`: non-negative least squares
 * on relative error, so a kernel's small calls count as much as its large ones.
 */
import type { KernelCost } from "../runtime/costs.ts";

/**
 * seconds ≈ fixed + perUnit · work (+ perByte · bytes where the kernel has a bytes measure)
 * (+ Σ perMore[i] · more[i] where it has further terms), minimising Σ ((fit − t) / t)² (small calls
 * count as much as big ones), every coefficient ≥ 0: the best of the least-squares fits over every
 * subset of the terms whose coefficients come out ≥ 0. fitError: the root mean square of the relative
 * residuals.
 */
export function fit(points: { seconds: number; work: number; bytes?: number; more?: number[] }[]): KernelCost {
  const withBytes = points.every((p) => p.bytes !== undefined);
  const more = points[0]?.more?.length ?? 0;
  const features = (p: (typeof points)[number]) => [1, p.work, ...(withBytes ? [p.bytes!] : []), ...(p.more ?? [])];
  const terms = 2 + (withBytes ? 1 : 0) + more;
  let best: { coef: number[]; error: number } | null = null;
  for (let mask = 1; mask < 1 << terms; mask++) {
    const used = Array.from({ length: terms }, (_, i) => i).filter((i) => mask & (1 << i));
    const coef = solveRelative(points.map((p) => used.map((i) => features(p)[i]!)), points.map((p) => p.seconds));
    if (!coef || coef.some((c) => c < 0 || !Number.isFinite(c))) continue;
    const full = new Array<number>(terms).fill(0);
    used.forEach((i, k) => (full[i] = coef[k]!));
    let sq = 0;
    for (const p of points) sq += ((features(p).reduce((a, x, i) => a + x * full[i]!, 0) - p.seconds) / p.seconds) ** 2;
    const error = Math.sqrt(sq / points.length);
    if (!best || error < best.error) best = { coef: full, error };
  }
  const [fixed, perUnit] = best!.coef;
  const perByte = withBytes ? best!.coef[2]! : undefined;
  const perMore = best!.coef.slice(withBytes ? 3 : 2);
  return {
    fixed: fixed!,
    perUnit: perUnit!,
    ...(perByte !== undefined ? { perByte } : {}),
    ...(more > 0 ? { perMore } : {}),
    fitError: best!.error,
    shapes: points.length,
  };
}

/** Least squares of rows·x ≈ t on relative error (each row divided by its t); null if singular. */
function solveRelative(rows: number[][], t: number[]): number[] | null {
  const n = rows[0]!.length;
  const a = Array.from({ length: n }, () => new Array<number>(n + 1).fill(0));
  rows.forEach((row, r) => {
    const q = 1 / (t[r]! * t[r]!);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) a[i]![j]! += q * row[i]! * row[j]!;
      a[i]![n]! += q * row[i]! * t[r]!;
    }
  });
  // Gaussian elimination with partial pivoting, scaled per column (flops and bytes are large numbers).
  const scale = Array.from({ length: n }, (_, i) => Math.sqrt(a[i]![i]!) || 1);
  for (let i = 0; i < n; i++) for (let j = 0; j <= n; j++) a[i]![j]! /= scale[i]! * (j < n ? scale[j]! : 1);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    if (Math.abs(a[p]![c]!) < 1e-12) return null;
    [a[c], a[p]] = [a[p]!, a[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]! / a[c]![c]!;
      for (let j = c; j <= n; j++) a[r]![j]! -= f * a[c]![j]!;
    }
  }
  return Array.from({ length: n }, (_, i) => a[i]![n]! / a[i]![i]! / scale[i]!);
}
