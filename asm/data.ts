// Batch assembly from u8 datasets (images as bytes, labels as bytes).

/**
 * For i < count: out[i, :] = bytes[indices[i], :]·scale + shift (u8 → f32), and, when labelsOut and
 * labelBytes are both non-zero, labelsOut[i] = labelBytes[indices[i]] (as i32).
 */
export function gather_batch(
  out: usize, labelsOut: usize, bytes: usize, labelBytes: usize, indices: usize, count: i32,
  sampleBytes: i32, scale: f32, shift: f32,
): void {
  // Rows go in pairs, chunk by chunk of both: the rows sit at random places in a data set larger than
  // the cache, and reading two at once keeps two misses in flight where one row at a time waits on each.
  let i = 0;
  for (; i + 2 <= count; i += 2) {
    const idx0 = <usize>load<i32>(indices + (<usize>i << 2));
    const idx1 = <usize>load<i32>(indices + (<usize>i << 2), 4);
    const dst = out + <usize>i * <usize>sampleBytes * 4;
    gatherRows2(dst, dst + <usize>sampleBytes * 4, bytes + idx0 * <usize>sampleBytes, bytes + idx1 * <usize>sampleBytes, sampleBytes, scale, shift);
    if (labelsOut != 0 && labelBytes != 0) {
      store<i32>(labelsOut + (<usize>i << 2), <i32>load<u8>(labelBytes + idx0));
      store<i32>(labelsOut + (<usize>i << 2), <i32>load<u8>(labelBytes + idx1), 4);
    }
  }
  if (i < count) {
    const idx = <usize>load<i32>(indices + (<usize>i << 2));
    gatherRow(out + <usize>i * <usize>sampleBytes * 4, bytes + idx * <usize>sampleBytes, sampleBytes, scale, shift);
    if (labelsOut != 0 && labelBytes != 0) store<i32>(labelsOut + (<usize>i << 2), <i32>load<u8>(labelBytes + idx));
  }
}

/** 16 bytes → 16 floats b·scale + shift at dst. */
// @ts-ignore: decorator
@inline function convert16(dst: usize, b: v128, vs: v128, vt: v128): void {
  const lo = i16x8.extend_low_i8x16_u(b);
  const hi = i16x8.extend_high_i8x16_u(b);
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo)), vs), vt), 0);
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo)), vs), vt), 16);
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi)), vs), vt), 32);
  v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi)), vs), vt), 48);
}

function gatherRows2(dst0: usize, dst1: usize, src0: usize, src1: usize, sampleBytes: i32, scale: f32, shift: f32): void {
  const vs = f32x4.splat(scale), vt = f32x4.splat(shift);
  const n16 = sampleBytes & ~15;
  let j = 0;
  for (; j < n16; j += 16) {
    const b0 = v128.load(src0 + <usize>j);
    const b1 = v128.load(src1 + <usize>j);
    convert16(dst0, b0, vs, vt);
    convert16(dst1, b1, vs, vt);
    dst0 += 64;
    dst1 += 64;
  }
  for (; j < sampleBytes; j++) {
    store<f32>(dst0, <f32>load<u8>(src0 + <usize>j) * scale + shift);
    store<f32>(dst1, <f32>load<u8>(src1 + <usize>j) * scale + shift);
    dst0 += 4;
    dst1 += 4;
  }
}

function gatherRow(dst: usize, src: usize, sampleBytes: i32, scale: f32, shift: f32): void {
  const vs = f32x4.splat(scale), vt = f32x4.splat(shift);
  const n16 = sampleBytes & ~15;
  let j = 0;
  for (; j < n16; j += 16) {
    convert16(dst, v128.load(src + <usize>j), vs, vt);
    dst += 64;
  }
  for (; j < sampleBytes; j++) {
    store<f32>(dst, <f32>load<u8>(src + <usize>j) * scale + shift);
    dst += 4;
  }
}
