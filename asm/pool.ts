// Pooling over K×K windows with a stride, no padding (NCHW; planes = N·C, each H×W).
// OH = (H − K)/stride + 1, OW likewise. Backward kernels overwrite dx.

/** Output extent; 0 when the window does not fit (truncating division would say 1). */
// @ts-ignore: decorator
@inline function outSize(H: i32, K: i32, stride: i32): i32 {
  return H >= K && K > 0 && stride > 0 ? (H - K) / stride + 1 : 0;
}

/** y = window max; argmax = flat index ih·W + iw (within the plane) of the first maximum (skipped if argmax = 0). */
export function maxpool_forward(y: usize, argmax: usize, x: usize, planes: i32, H: i32, W: i32, K: i32, stride: i32): void {
  const OH = outSize(H, K, stride);
  const OW = outSize(W, K, stride);
  const planeBytes = <usize>H * <usize>W * 4;
  if (K == 2 && stride == 2 && OW >= 4) {
    maxpool2x2(y, argmax, x, planes, H, W, OH, OW);
    return;
  }
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * planeBytes;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const top = oh * stride * W + ow * stride;
        let best = top;
        let bv = load<f32>(xp + (<usize>top << 2));
        for (let kh = 0; kh < K; kh++) {
          const row = top + kh * W;
          for (let kw = 0; kw < K; kw++) {
            const v = load<f32>(xp + (<usize>(row + kw) << 2));
            if (v > bv) { bv = v; best = row + kw; }
          }
        }
        store<f32>(y, bv);
        if (argmax != 0) { store<i32>(argmax, best); argmax += 4; }
        y += 4;
      }
    }
  }
}

/**
 * The 2×2, stride-2 case (LeNet's pooling), four outputs at a time: the two input rows are split
 * into even and odd columns, and the window's four candidates are compared in the scalar loop's
 * order (top-left, top-right, bottom-left, bottom-right; a later one wins only when strictly
 * greater), so values and winners are the same. A row's last group starts at OW − 4 and redoes
 * outputs the previous group wrote, with the same result. Needs OW ≥ 4.
 */
function maxpool2x2(y: usize, argmax: usize, x: usize, planes: i32, H: i32, W: i32, OH: i32, OW: i32): void {
  const rowBytes = <usize>W << 2;
  const planeBytes = <usize>H * rowBytes;
  const outPlane = <usize>(OH * OW) << 2;
  const lanes = i32x4(0, 2, 4, 6);
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * planeBytes;
    const yp = y + <usize>p * outPlane;
    const ap = argmax + <usize>p * outPlane;
    for (let oh = 0; oh < OH; oh++) {
      const top = xp + <usize>(2 * oh) * rowBytes;
      for (let g = 0; g < OW; g += 4) {
        const ow0 = min(g, OW - 4);
        const r0 = top + (<usize>(2 * ow0) << 2);
        const r1 = r0 + rowBytes;
        const u0 = v128.load(r0), u1 = v128.load(r0, 16), w0 = v128.load(r1), w1 = v128.load(r1, 16);
        const tl = v128.shuffle<f32>(u0, u1, 0, 2, 4, 6), tr = v128.shuffle<f32>(u0, u1, 1, 3, 5, 7);
        const bl = v128.shuffle<f32>(w0, w1, 0, 2, 4, 6), br = v128.shuffle<f32>(w0, w1, 1, 3, 5, 7);
        let best = tl;
        let idx = i32x4.add(i32x4.splat(2 * oh * W + 2 * ow0), lanes);
        let win = f32x4.gt(tr, best);
        best = v128.bitselect(tr, best, win);
        idx = v128.bitselect(i32x4.add(idx, i32x4.splat(1)), idx, win);
        const base = idx;
        win = f32x4.gt(bl, best);
        best = v128.bitselect(bl, best, win);
        const row1 = i32x4.add(i32x4.splat(2 * oh * W + 2 * ow0 + W), lanes);
        idx = v128.bitselect(row1, base, win);
        win = f32x4.gt(br, best);
        best = v128.bitselect(br, best, win);
        idx = v128.bitselect(i32x4.add(row1, i32x4.splat(1)), idx, win);
        const o = <usize>(oh * OW + ow0) << 2;
        v128.store(yp + o, best);
        if (argmax != 0) v128.store(ap + o, idx);
      }
    }
  }
}

/** dx = 0; dx[argmax] += dy. */
export function maxpool_backward(dx: usize, dy: usize, argmax: usize, planes: i32, H: i32, W: i32, K: i32, stride: i32): void {
  const OH = outSize(H, K, stride);
  const OW = outSize(W, K, stride);
  const planeBytes = <usize>H * <usize>W * 4;
  memory.fill(dx, 0, <usize>max(planes, 0) * planeBytes);
  const outs = OH * OW;
  for (let p = 0; p < planes; p++) {
    const dxp = dx + <usize>p * planeBytes;
    for (let o = 0; o < outs; o++) {
      const d = dxp + (<usize>load<i32>(argmax) << 2);
      store<f32>(d, load<f32>(d) + load<f32>(dy));
      dy += 4; argmax += 4;
    }
  }
}

/** y = window mean. */
export function avgpool_forward(y: usize, x: usize, planes: i32, H: i32, W: i32, K: i32, stride: i32): void {
  const OH = outSize(H, K, stride);
  const OW = outSize(W, K, stride);
  const planeBytes = <usize>H * <usize>W * 4;
  const inv: f32 = 1.0 / <f32>(K * K);
  for (let p = 0; p < planes; p++) {
    const xp = x + <usize>p * planeBytes;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const top = oh * stride * W + ow * stride;
        let s: f32 = 0;
        for (let kh = 0; kh < K; kh++) {
          const row = xp + (<usize>(top + kh * W) << 2);
          for (let kw = 0; kw < K; kw++) s += load<f32>(row + (<usize>kw << 2));
        }
        store<f32>(y, s * inv);
        y += 4;
      }
    }
  }
}

/** dx = 0; every input in a window gets dy/(K·K) (overlapping windows add). */
export function avgpool_backward(dx: usize, dy: usize, planes: i32, H: i32, W: i32, K: i32, stride: i32): void {
  const OH = outSize(H, K, stride);
  const OW = outSize(W, K, stride);
  const planeBytes = <usize>H * <usize>W * 4;
  memory.fill(dx, 0, <usize>max(planes, 0) * planeBytes);
  const inv: f32 = 1.0 / <f32>(K * K);
  for (let p = 0; p < planes; p++) {
    const dxp = dx + <usize>p * planeBytes;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const g = load<f32>(dy) * inv;
        const top = oh * stride * W + ow * stride;
        for (let kh = 0; kh < K; kh++) {
          const row = dxp + (<usize>(top + kh * W) << 2);
          for (let kw = 0; kw < K; kw++) {
            const d = row + (<usize>kw << 2);
            store<f32>(d, load<f32>(d) + g);
          }
        }
        dy += 4;
      }
    }
  }
}
