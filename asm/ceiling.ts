// The multiply-add ceiling: what one core does when it only multiplies and adds, with no memory
// traffic. Benchmarks report GEMM as a fraction of it.
//
// fma_ceiling(iters) runs `iters` iterations of 96 flops each (12 independent f32x4 accumulators,
// each c = x·y + c) and returns a value derived from every accumulator so nothing is eliminated.
//  - relaxed build: f32x4.relaxed_madd;
//  - plain build: f32x4.mul then f32x4.add, as the plain GEMM does.
// (JSC in Bun 1.4.5 lowers relaxed_madd to mul + add on x86 too — measured: the result is never
// fused — so both builds have the same ceiling here. x·y is loop-invariant, but neither Binaryen nor
// JSC hoists it: a hoisted product would show as twice the relaxed ceiling.)

export function fma_ceiling(iters: i32): f32 {
  const x = f32x4.splat(1.0000001);
  const y = f32x4.splat(0.9999999);
  let c0 = f32x4.splat(0.0), c1 = f32x4.splat(0.1), c2 = f32x4.splat(0.2), c3 = f32x4.splat(0.3);
  let c4 = f32x4.splat(0.4), c5 = f32x4.splat(0.5), c6 = f32x4.splat(0.6), c7 = f32x4.splat(0.7);
  let c8 = f32x4.splat(0.8), c9 = f32x4.splat(0.9), c10 = f32x4.splat(1.0), c11 = f32x4.splat(1.1);
  if (ASC_FEATURE_RELAXED_SIMD) {
    for (let i = 0; i < iters; i++) {
      c0 = f32x4.relaxed_madd(x, y, c0); c1 = f32x4.relaxed_madd(x, y, c1);
      c2 = f32x4.relaxed_madd(x, y, c2); c3 = f32x4.relaxed_madd(x, y, c3);
      c4 = f32x4.relaxed_madd(x, y, c4); c5 = f32x4.relaxed_madd(x, y, c5);
      c6 = f32x4.relaxed_madd(x, y, c6); c7 = f32x4.relaxed_madd(x, y, c7);
      c8 = f32x4.relaxed_madd(x, y, c8); c9 = f32x4.relaxed_madd(x, y, c9);
      c10 = f32x4.relaxed_madd(x, y, c10); c11 = f32x4.relaxed_madd(x, y, c11);
    }
  } else {
    for (let i = 0; i < iters; i++) {
      c0 = f32x4.add(c0, f32x4.mul(x, y)); c1 = f32x4.add(c1, f32x4.mul(x, y));
      c2 = f32x4.add(c2, f32x4.mul(x, y)); c3 = f32x4.add(c3, f32x4.mul(x, y));
      c4 = f32x4.add(c4, f32x4.mul(x, y)); c5 = f32x4.add(c5, f32x4.mul(x, y));
      c6 = f32x4.add(c6, f32x4.mul(x, y)); c7 = f32x4.add(c7, f32x4.mul(x, y));
      c8 = f32x4.add(c8, f32x4.mul(x, y)); c9 = f32x4.add(c9, f32x4.mul(x, y));
      c10 = f32x4.add(c10, f32x4.mul(x, y)); c11 = f32x4.add(c11, f32x4.mul(x, y));
    }
  }
  let s = f32x4.add(f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)));
  s = f32x4.add(s, f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11)));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}
