// Batch assembly from u8 datasets (images as bytes, labels as bytes).

/**
 * For i < count: out[i, :] = bytes[indices[i], :]·scale + shift (u8 → f32), and, when labelsOut and
 * labelBytes are both non-zero, labelsOut[i] = labelBytes[indices[i]] (as i32).
 */
export function gather_batch(
  out: usize, labelsOut: usize, bytes: usize, labelBytes: usize, indices: usize, count: i32,
  sampleBytes: i32, scale: f32, shift: f32,
): void {
  const vs = f32x4.splat(scale), vt = f32x4.splat(shift);
  const n16 = sampleBytes & ~15;
  for (let i = 0; i < count; i++) {
    const idx = <usize>load<i32>(indices + (<usize>i << 2));
    const src = bytes + idx * <usize>sampleBytes;
    let dst = out + <usize>i * <usize>sampleBytes * 4;
    let j = 0;
    for (; j < n16; j += 16) {
      const b = v128.load(src + <usize>j);
      const lo = i16x8.extend_low_i8x16_u(b);
      const hi = i16x8.extend_high_i8x16_u(b);
      v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo)), vs), vt), 0);
      v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo)), vs), vt), 16);
      v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi)), vs), vt), 32);
      v128.store(dst, f32x4.add(f32x4.mul(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi)), vs), vt), 48);
      dst += 64;
    }
    for (; j < sampleBytes; j++) {
      store<f32>(dst, <f32>load<u8>(src + <usize>j) * scale + shift);
      dst += 4;
    }
    if (labelsOut != 0 && labelBytes != 0) {
      store<i32>(labelsOut + (<usize>i << 2), <i32>load<u8>(labelBytes + idx));
    }
  }
}
