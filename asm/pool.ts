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
