/**
 * The statistics a comparison over seeds needs, written out so they can be checked against printed
 * tables: mean, sample standard deviation, Student's t quantiles (through the regularized incomplete
 * beta function), the paired t-interval and the exact two-sided sign test.
 */

/** Largest / smallest of an array of any length (spreading a long array into Math.max overflows the stack). */
export function maxOf(xs: readonly number[]): number {
  let m = -Infinity;
  for (const x of xs) if (x > m || Number.isNaN(x)) m = x;
  return m;
}

export function minOf(xs: readonly number[]): number {
  let m = Infinity;
  for (const x of xs) if (x < m || Number.isNaN(x)) m = x;
  return m;
}

export interface Spread {
  n: number;
  mean: number;
  /** Sample standard deviation (divisor n − 1); 0 for a single value. */
  std: number;
  min: number;
  max: number;
}

/** Of the finite values; undefined when there are none. */
export function spread(values: readonly number[]): Spread | undefined {
  const xs = values.filter(Number.isFinite);
  const n = xs.length;
  if (n === 0) return undefined;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  // Two-pass: subtract the mean first, so values that agree in many leading digits keep their spread.
  const ss = xs.reduce((a, x) => a + (x - mean) ** 2, 0);
  return { n, mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : 0, min: minOf(xs), max: maxOf(xs) };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz), valid for x < (a+1)/(a+b+2). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** I_x(a, b), the regularized incomplete beta function. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom: the tail is I_{df/(df+t²)}(df/2, 1/2) / 2. */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be positive, got ${df}`);
  if (t === 0) return 0.5;
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1 - tail : tail;
}

/**
 * The p-quantile of Student's t with `df` degrees of freedom, e.g. studentTQuantile(0.975, 4) = 2.776:
 * bisection on the CDF (monotone, so it cannot miss), to 1e-12 relative.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`probability must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface TInterval {
  n: number;
  mean: number;
  std: number;
  /** The two-sided confidence level, e.g. 0.95. */
  level: number;
  lo: number;
  hi: number;
}

/** Paired t-interval: mean of the differences ± t_{(1+level)/2, n−1} · s / √n; needs n ≥ 2. */
export function pairedTInterval(differences: readonly number[], level = 0.95): TInterval | undefined {
  const s = spread(differences);
  if (!s || s.n < 2) return undefined;
  const half = studentTQuantile((1 + level) / 2, s.n - 1) * (s.std / Math.sqrt(s.n));
  return { n: s.n, mean: s.mean, std: s.std, level, lo: s.mean - half, hi: s.mean + half };
}

export interface SignTest {
  /** Pairs where the first is larger / smaller / equal. */
  plus: number;
  minus: number;
  ties: number;
  /** Exact two-sided p-value of the binomial(plus + minus, 1/2) test; ties are left out. */
  p: number;
}

/** ln C(n, k). */
const logChoose = (n: number, k: number) => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);

/** Exact two-sided sign test on differences (±Infinity allowed: only the sign counts). */
export function signTest(differences: readonly number[]): SignTest {
  const plus = differences.filter((d) => d > 0).length;
  const minus = differences.filter((d) => d < 0).length;
  const ties = differences.length - plus - minus;
  const n = plus + minus;
  const k = Math.min(plus, minus);
  let tail = 0;
  if (n <= 50) {
    // Binomial coefficients up to C(50, 25) ≈ 1.3e14 are exact in doubles, and so is 2^n.
    let c = 1;
    for (let i = 0; i <= k; i++) {
      tail += c;
      c = (c * (n - i)) / (i + 1);
    }
    tail /= 2 ** n;
  } else for (let i = 0; i <= k; i++) tail += Math.exp(logChoose(n, i) - n * Math.LN2);
  return { plus, minus, ties, p: n === 0 ? 1 : Math.min(1, 2 * tail) };
}
