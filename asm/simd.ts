// Shared SIMD helpers (not exported from the module: index.ts does not re-export this file).
// Everything here is @inline so each kernel gets straight-line code with no calls.

/** dst[0..n) = 0 (n f32s). */
@inline export function zero(dst: usize, n: i32): void {
  memory.fill(dst, 0, <usize>max(n, 0) << 2);
}

/** a·b + c. The relaxed build fuses (one rounding, FMA); the plain build rounds twice. */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  else return f32x4.add(f32x4.mul(a, b), c);
}

/** c − a·b. */
@inline export function nmadd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_nmadd(a, b, c);
  else return f32x4.sub(c, f32x4.mul(a, b));
}

/** Sum of the four lanes. */
@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Max of the four lanes. */
@inline export function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/**
 * e^x per lane (Cephes expf: range reduction by ln 2 in two parts, degree-5 polynomial, then 2^n
 * through the exponent bits). Relative error ≈ 2 ulp over [−87, 88]. Written by hand because
 * AssemblyScript's Mathf.exp reads a lookup table from static data, which this module must not have.
 * n = round(x·log2 e) comes from adding 1.5·2^23 (the sum's low mantissa bits are n), which JSC
 * compiles to two adds, where f32x4.nearest + i32x4.trunc_sat_f32x4_s cost several times more.
 */
@inline export function expv(x: v128): v128 {
  // clamped so that the result is never subnormal (x86 takes a slow microcode assist on those)
  x = f32x4.pmin(f32x4.splat(88.0), f32x4.pmax(f32x4.splat(-86.0), x));
  const magic = f32x4.splat(12582912.0); // 1.5·2^23
  const t = madd(x, f32x4.splat(1.44269504088896341), magic);
  const n = f32x4.sub(t, magic);
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  // e^r ≈ 1 + r + r²·q(r), q of degree 5, evaluated by Estrin's scheme: JSC emits madd as mul + add
  // (6 cycles of latency), and a Horner chain made this kernel latency-bound.
  const r2 = f32x4.mul(r, r);
  const q01 = madd(f32x4.splat(1.6666665459e-1), r, f32x4.splat(5.0000001201e-1));
  const q23 = madd(f32x4.splat(8.3334519073e-3), r, f32x4.splat(4.1665795894e-2));
  const q45 = madd(f32x4.splat(1.9875691500e-4), r, f32x4.splat(1.3981999507e-3));
  const q = madd(madd(q45, r2, q23), r2, q01);
  const p = madd(q, r2, f32x4.add(r, f32x4.splat(1.0)));
  // (bits(t) + 127) << 23 = (n + 127) << 23: the shift drops the magic number's exponent bits
  const scale = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}

/**
 * tanh per lane as a rational function (Eigen's fast tanh: odd degree-13 numerator over even
 * degree-6 denominator on x clamped to ±7.9053, where tanh is 1 in f32). Max error a few ulp;
 * for |x| < 4e-4 it returns x, where the rational form would lose relative precision.
 */
@inline export function tanhv(x: v128): v128 {
  const c = f32x4.pmin(f32x4.splat(7.90531110763549805), f32x4.pmax(f32x4.splat(-7.90531110763549805), x));
  const s = f32x4.mul(c, c);
  const s2 = f32x4.mul(s, s);
  // numerator / x: α1 + α3·s + … + α13·s⁶ and denominator β0 + β2·s + β4·s² + β6·s³ (s = x²),
  // by Estrin's scheme (short dependency chains; see expv)
  const n01 = madd(f32x4.splat(6.37261928875436e-4), s, f32x4.splat(4.89352455891786e-3));
  const n23 = madd(f32x4.splat(5.12229709037114e-8), s, f32x4.splat(1.48572235717979e-5));
  const n45 = madd(f32x4.splat(2.00018790482477e-13), s, f32x4.splat(-8.60467152213735e-11));
  const n6 = f32x4.splat(-2.76076847742355e-16);
  const num = madd(madd(n6, s2, n45), f32x4.mul(s2, s2), madd(n23, s2, n01));
  const p = f32x4.mul(num, c);
  const d01 = madd(f32x4.splat(2.26843463243900e-3), s, f32x4.splat(4.89352518554385e-3));
  const d23 = madd(f32x4.splat(1.19825839466702e-6), s, f32x4.splat(1.18534705686654e-4));
  const q = madd(d23, s2, d01);
  const t = f32x4.div(p, q);
  const tiny = f32x4.lt(f32x4.abs(x), f32x4.splat(0.0004));
  return v128.bitselect(x, t, tiny);
}

/** Natural log of a positive finite f64 (scalar; used once per softmax row). */
export function logPositive(x: f64): f64 {
  // x = m·2^e with m in [√½, √2); ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.172.
  let bits = reinterpret<u64>(x);
  let e = <i32>((bits >> 52) & 0x7ff) - 1023;
  if (e == -1023) { // subnormal: scale up first
    x *= 18014398509481984.0; // 2^54
    bits = reinterpret<u64>(x);
    e = <i32>((bits >> 52) & 0x7ff) - 1023 - 54;
  }
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > 1.4142135623730951) { m *= 0.5; e += 1; }
  const s = (m - 1.0) / (m + 1.0);
  const s2 = s * s;
  // atanh series to s^17: truncation error < 0.172^19/19 ≈ 1e-16
  let t = 1.0 / 17.0;
  t = t * s2 + 1.0 / 15.0;
  t = t * s2 + 1.0 / 13.0;
  t = t * s2 + 1.0 / 11.0;
  t = t * s2 + 1.0 / 9.0;
  t = t * s2 + 1.0 / 7.0;
  t = t * s2 + 1.0 / 5.0;
  t = t * s2 + 1.0 / 3.0;
  t = t * s2 + 1.0;
  return 2.0 * s * t + <f64>e * 0.6931471805599453;
}
