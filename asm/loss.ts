// Loss and accuracy over rows of logits.

import { expv, hmax, hsum, logPositive } from "./simd";

/**
 * Fused, numerically stable softmax cross-entropy. For each row: m = max, p = e^(x−m)/Σe^(x−m),
 * loss = log Σe^(x−m) − (x[label] − m); dlogits = (p − onehot(label))·scale unless dlogits = 0.
 * dlogits may alias logits. Returns Σ_rows loss. A row whose label is outside [0, classes) is ignored: loss 0, gradient 0
 * (PyTorch's ignore_index, for padded batches).
 */
export function softmax_xent(dlogits: usize, logits: usize, labels: usize, rows: i32, classes: i32, scale: f32): f32 {
  let total: f64 = 0;
  const rowBytes = <usize>classes << 2;
  const n4 = classes & ~3;
  for (let r = 0; r < rows; r++) {
    const x = logits + <usize>r * rowBytes;
    const d = dlogits != 0 ? dlogits + <usize>r * rowBytes : 0;
    const label = load<i32>(labels + (<usize>r << 2));
    if (label < 0 || label >= classes || classes <= 0) {
      if (d != 0) memory.fill(d, 0, rowBytes);
      continue;
    }
    // max
    let mv = f32x4.splat(-Infinity);
    let c = 0;
    for (; c < n4; c += 4) mv = f32x4.pmax(mv, v128.load(x + (<usize>c << 2)));
    let m = hmax(mv);
    for (; c < classes; c++) m = max(m, load<f32>(x + (<usize>c << 2)));
    const target = load<f32>(x + (<usize>label << 2)); // read before dlogits (which may alias) is written
    // Σ e^(x−m), keeping e^(x−m) in dlogits when it is wanted
    const mm = f32x4.splat(m);
    let sv = f32x4.splat(0);
    c = 0;
    for (; c < n4; c += 4) {
      const e = expv(f32x4.sub(v128.load(x + (<usize>c << 2)), mm));
      if (d != 0) v128.store(d + (<usize>c << 2), e);
      sv = f32x4.add(sv, e);
    }
    let sum: f64 = <f64>hsum(sv);
    for (; c < classes; c++) {
      const e = f32x4.extract_lane(expv(f32x4.splat(load<f32>(x + (<usize>c << 2)) - m)), 0);
      if (d != 0) store<f32>(d + (<usize>c << 2), e);
      sum += <f64>e;
    }
    total += logPositive(sum) - (<f64>target - <f64>m);
    if (d != 0) {
      const k = f32x4.splat(<f32>(<f64>scale / sum));
      c = 0;
      for (; c < n4; c += 4) {
        const p = d + (<usize>c << 2);
        v128.store(p, f32x4.mul(v128.load(p), k));
      }
      const ks = <f32>(<f64>scale / sum);
      for (; c < classes; c++) {
        const p = d + (<usize>c << 2);
        store<f32>(p, load<f32>(p) * ks);
      }
      const pl = d + (<usize>label << 2);
      store<f32>(pl, load<f32>(pl) - scale);
    }
  }
  return <f32>total;
}

/** Number of rows whose argmax (first maximum) equals the label. */
export function count_correct(logits: usize, labels: usize, rows: i32, classes: i32): i32 {
  let correct = 0;
  const rowBytes = <usize>classes << 2;
  for (let r = 0; r < rows; r++) {
    const x = logits + <usize>r * rowBytes;
    let best = 0;
    let bv = load<f32>(x);
    for (let c = 1; c < classes; c++) {
      const v = load<f32>(x + (<usize>c << 2));
      if (v > bv) { bv = v; best = c; }
    }
    if (classes > 0 && best == load<i32>(labels + (<usize>r << 2))) correct++;
  }
  return correct;
}
