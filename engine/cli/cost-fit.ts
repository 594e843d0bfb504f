/**
 * Fitting a kernel's cost to its measured times, for `skein calibrate`: non-negative least squares
 * on relative error, so a kernel's small calls count as much as its large ones.
 */
import type { KernelCost } from "../runtime/costs.ts";

/**
 * seconds ≈ fixed + perUnit · work (+ perByte · bytes where the kernel has a bytes measure)
 * (+ Σ perMore[i] · more[i] where it has further terms), minimising Σ ((fit − t) / t)² (small calls
 * count as much as big ones), every coefficient ≥ 0 (nnlsRelative). fitError: the root mean square of
 * the relative residuals.
 */
export function fit(points: { seconds: number; work: number; bytes?: number; more?: number[] }[]): KernelCost {
  const withBytes = points.every((p) => p.bytes !== undefined);
  const more = points[0]?.more?.length ?? 0;
  const rows = points.map((p) => [1, p.work, ...(withBytes ? [p.bytes!] : []), ...(p.more ?? [])]);
  const coef = nnlsRelative(rows, points.map((p) => p.seconds));
  const [fixed, perUnit] = coef;
  return {
    fixed: fixed!,
    perUnit: perUnit!,
    ...(withBytes ? { perByte: coef[2]! } : {}),
    ...(more > 0 ? { perMore: coef.slice(withBytes ? 3 : 2) } : {}),
    fitError: relativeRms(rows, coef, points),
    shapes: points.length,
  };
}

/** The root mean square of the fit's relative residuals, (rows·coef − seconds) / seconds. */
function relativeRms(rows: number[][], coef: number[], points: { seconds: number }[]): number {
  let sq = 0;
  rows.forEach((row, r) => (sq += ((row.reduce((a, x, i) => a + x * coef[i]!, 0) - points[r]!.seconds) / points[r]!.seconds) ** 2));
  return Math.sqrt(sq / points.length);
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

/**
 * A streaming kernel's warm cost by its call's footprint F (the bytes its operands take): seconds ≈
 * fixed + F · secondsPerByte(F), where secondsPerByte is piecewise linear in log(F) through one value
 * per knot (`footprints`, ascending) and flat beyond the first and last. The per-byte cost of a call
 * repeated on the same operands steps up where F leaves a cache level (first-level, the core's
 * second-level, the shared last level); one rate for every size cannot follow that. Fitted as one
 * linear least squares on relative error, each coefficient ≥ 0: F · h_i(F) per knot, h_i the hat
 * function of knot i in log(F) (so the rate at F mixes its two neighbouring knots), and 1 for fixed.
 *
 * Points marked `two` (weighted_sum of two inputs, which runs a loop of its own) get a curve of their
 * own (warmTwoInputs), sharing `fixed` with the rest.
 */
export function fitByFootprint(points: { seconds: number; footprint: number; two?: boolean }[], footprints: number[]): KernelCost {
  const twos = points.some((p) => p.two);
  const none = footprints.map(() => 0);
  const features = (p: (typeof points)[number]) => {
    const h = hats(footprints, p.footprint).map((x) => x * p.footprint);
    return [1, ...(p.two ? none : h), ...(twos ? (p.two ? h : none) : [])];
  };
  const rows = points.map(features);
  const coef = nnlsRelative(rows, points.map((p) => p.seconds));
  const k = footprints.length;
  return {
    fixed: coef[0]!,
    perUnit: 0,
    warm: { footprints: [...footprints], secondsPerByte: coef.slice(1, 1 + k) },
    ...(twos ? { warmTwoInputs: { footprints: [...footprints], secondsPerByte: coef.slice(1 + k, 1 + 2 * k) } } : {}),
    fitError: relativeRms(rows, coef, points),
    shapes: points.length,
  };
}

/**
 * The weights of `bytes` on each knot of `f` (ascending) for a value piecewise linear in log(bytes)
 * between knots and flat beyond: two neighbours share 1 between them, or the end knot takes it all.
 */
export function hats(f: number[], bytes: number): number[] {
  const h = new Array<number>(f.length).fill(0);
  if (bytes <= f[0]!) h[0] = 1;
  else if (bytes >= f[f.length - 1]!) h[f.length - 1] = 1;
  else {
    let i = 1;
    while (f[i]! < bytes) i++;
    const t = Math.log(bytes / f[i - 1]!) / Math.log(f[i]! / f[i - 1]!);
    h[i - 1] = 1 - t;
    h[i] = t;
  }
  return h;
}

/**
 * Non-negative least squares on relative error (Lawson and Hanson's active-set method, "Solving Least
 * Squares Problems", 1974, ch. 23): minimise Σ ((rows·x − t) / t)² with x ≥ 0. The columns are scaled
 * to unit norm first (a fixed cost of 1 sits beside per-byte features of millions). A column that is
 * 0 in every row (a knot no footprint is near) gets 0.
 */
export function nnlsRelative(rows: number[][], t: number[]): number[] {
  const n = rows[0]!.length;
  const a = rows.map((row, r) => row.map((x) => x / t[r]!));
  const norm = Array.from({ length: n }, (_, j) => Math.sqrt(a.reduce((s, row) => s + row[j]! ** 2, 0)));
  for (const row of a) for (let j = 0; j < n; j++) row[j] = norm[j]! > 0 ? row[j]! / norm[j]! : 0;
  const x = new Array<number>(n).fill(0);
  const passive = new Array<boolean>(n).fill(false);
  const residual = () => a.map((row) => 1 - row.reduce((s, v, j) => s + v * x[j]!, 0));
  for (let outer = 0; outer < 3 * n; outer++) {
    const r = residual();
    let enter = -1;
    let best = 1e-10;
    for (let j = 0; j < n; j++) {
      if (passive[j] || norm[j] === 0) continue;
      const w = a.reduce((s, row, i) => s + row[j]! * r[i]!, 0);
      if (w > best) [best, enter] = [w, j];
    }
    if (enter < 0) break;
    passive[enter] = true;
    for (let inner = 0; inner < 3 * n; inner++) {
      const used = passive.flatMap((p, j) => (p ? [j] : []));
      const z = leastSquares(a.map((row) => used.map((j) => row[j]!)));
      if (!z) {
        passive[enter] = false; // dependent on the columns already in: leave it out
        break;
      }
      if (z.every((v) => v > 0)) {
        x.fill(0);
        used.forEach((j, k) => (x[j] = z[k]!));
        break;
      }
      // Step from x towards z as far as every coefficient stays ≥ 0, and drop those that reach 0.
      let alpha = 1;
      used.forEach((j, k) => {
        if (z[k]! <= 0) alpha = Math.min(alpha, x[j]! / (x[j]! - z[k]!));
      });
      used.forEach((j, k) => {
        x[j] = x[j]! + alpha * (z[k]! - x[j]!);
        if (x[j]! <= 1e-15) {
          x[j] = 0;
          passive[j] = false;
        }
      });
    }
  }
  return x.map((v, j) => (norm[j]! > 0 ? v / norm[j]! : 0));
}

/** Least squares of a·z ≈ 1 (every row's target is 1: relative error); null if singular. */
function leastSquares(a: number[][]): number[] | null {
  return solveRelative(a, a.map(() => 1));
}
