/**
 * The extreme eigenvalues of a dense symmetric matrix, for the spectra of mixing matrices.
 */

/**
 * Smallest and largest eigenvalue of a dense symmetric matrix (row-major, destroyed): Householder
 * reduction to tridiagonal form, then Sturm-sequence bisection for the two ends of the spectrum.
 * Why not Jacobi or power iteration: a Jacobi sweep is O(n³) and needs several; power iteration
 * crawls when the top eigenvalues cluster (a ring's are 1 − O(1/n²) apart). Householder is one
 * O(n³)-ish pass (2/3·n³ multiply-adds, on the lower triangle) and bisection is accurate to a few ulps.
 */
export function extremeEigenvalues(A: Float64Array, n: number): { min: number; max: number } {
  const diagonal = new Float64Array(n);
  const offDiagonal = new Float64Array(Math.max(n - 1, 0)); // offDiagonal[k] couples k and k + 1
  tridiagonalize(A, n, diagonal, offDiagonal);
  return { min: tridiagonalEigenvalue(diagonal, offDiagonal, 0), max: tridiagonalEigenvalue(diagonal, offDiagonal, n - 1) };
}

/**
 * Householder tridiagonalisation working on the lower triangle only. Step k reflects rows/columns
 * k+1.. so that column k below the subdiagonal becomes zero; the trailing block B gets the symmetric
 * rank-2 update B ← B − v qᵀ − q vᵀ with p = βBv, q = p − (β vᵀp / 2) v, β = 2 / vᵀv.
 */
function tridiagonalize(A: Float64Array, n: number, diagonal: Float64Array, offDiagonal: Float64Array): void {
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    // x = A[k+1.., k], read from the lower triangle: A[i][k] for i > k.
    let norm2 = 0;
    for (let i = k + 1; i < n; i++) norm2 += A[i * n + k]! ** 2;
    const x0 = A[(k + 1) * n + k]!;
    diagonal[k] = A[k * n + k]!;
    if (norm2 - x0 * x0 <= 0) {
      offDiagonal[k] = x0; // already zero below the subdiagonal
      continue;
    }
    const alpha = x0 >= 0 ? -Math.sqrt(norm2) : Math.sqrt(norm2);
    for (let i = k + 1; i < n; i++) v[i] = A[i * n + k]!;
    v[k + 1] = x0 - alpha;
    const vv = norm2 - 2 * alpha * x0 + alpha * alpha;
    const beta = 2 / vv;
    // p = β B v, B symmetric stored in its lower triangle: each stored entry serves two products.
    for (let i = k + 1; i < n; i++) p[i] = 0;
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      let sum = 0;
      for (let j = k + 1; j < i; j++) {
        const a = A[row + j]!;
        sum += a * v[j]!;
        p[j]! += a * vi;
      }
      p[i]! += sum + A[row + i]! * vi;
    }
    let vp = 0;
    for (let i = k + 1; i < n; i++) {
      p[i]! *= beta;
      vp += v[i]! * p[i]!;
    }
    const half = (beta * vp) / 2;
    for (let i = k + 1; i < n; i++) p[i]! -= half * v[i]!; // p is now q
    for (let i = k + 1; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      const qi = p[i]!;
      for (let j = k + 1; j <= i; j++) A[row + j]! -= vi * p[j]! + qi * v[j]!;
    }
    offDiagonal[k] = alpha;
  }
  if (n >= 2) {
    diagonal[n - 2] = A[(n - 2) * n + n - 2]!;
    offDiagonal[n - 2] = A[(n - 1) * n + n - 2]!;
  }
  if (n >= 1) diagonal[n - 1] = A[(n - 1) * n + n - 1]!;
}

/** The index-th smallest eigenvalue (0-based) of a symmetric tridiagonal matrix, by bisection. */
function tridiagonalEigenvalue(diagonal: Float64Array, offDiagonal: Float64Array, index: number): number {
  const n = diagonal.length;
  // Gershgorin: every eigenvalue lies within |d_i| + |e_{i-1}| + |e_i| of zero.
  let bound = 0;
  for (let i = 0; i < n; i++) {
    bound = Math.max(bound, Math.abs(diagonal[i]!) + Math.abs(offDiagonal[i - 1] ?? 0) + Math.abs(offDiagonal[i] ?? 0));
  }
  let lo = -bound - 1e-300;
  let hi = bound + 1e-300;
  // Invariant: fewer than index + 1 eigenvalues below lo, at least index + 1 below hi.
  for (let iteration = 0; iteration < 200; iteration++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break; // adjacent doubles: as precise as it gets
    if (eigenvaluesBelow(diagonal, offDiagonal, mid) > index) hi = mid;
    else lo = mid;
  }
  return lo + (hi - lo) / 2;
}

/** Sturm count: the number of negative pivots of T − xI = LDLᵀ is the number of eigenvalues below x. */
function eigenvaluesBelow(diagonal: Float64Array, offDiagonal: Float64Array, x: number): number {
  const PIVOT_FLOOR = 1e-290; // a zero pivot is nudged negative, as LAPACK's dstebz does
  let count = 0;
  let pivot = 1;
  for (let i = 0; i < diagonal.length; i++) {
    const e = i > 0 ? offDiagonal[i - 1]! : 0;
    pivot = diagonal[i]! - x - (i > 0 ? (e * e) / pivot : 0);
    if (Math.abs(pivot) < PIVOT_FLOOR) pivot = -PIVOT_FLOOR;
    if (pivot < 0) count++;
  }
  return count;
}
