// Bias + activation, forward and backward, for dense rows (bias per column) and NCHW maps (bias
// per channel). Activation codes match Act in engine/kernels/abi.ts.
//
// Each kernel switches on `act` once and calls a function specialised for it: one small function
// per (kernel, activation) instantiates an @inline template with a literal code, so the per-element
// branches fold away. (Calling the template with literals from one function is not enough: Binaryen
// folds the near-identical copies back into one loop that tests `act` per element.)
// Tails run the same vector code on a splatted scalar, so every element gets bit-identical math.

import { expv, hsum, madd, tanhv } from "./simd";

const IDENTITY: i32 = 0;
const RELU: i32 = 1;
const TANH: i32 = 2;
const GELU: i32 = 3;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

/** √(2/π)·(z + 0.044715·z³), the tanh argument of GELU. */
// @ts-ignore: decorator
@inline function geluU(z: v128): v128 {
  const z2 = f32x4.mul(z, z);
  return f32x4.mul(f32x4.mul(f32x4.splat(SQRT_2_OVER_PI), z), madd(f32x4.splat(GELU_C), z2, f32x4.splat(1)));
}

/**
 * e^(−2u) for GELU, with −2u capped at 80: beyond it GELU is 0 to f32 precision anyway, and the cap
 * keeps 1/(1 + e) a normal number (subnormals cost a microcode assist each on x86).
 */
// @ts-ignore: decorator
@inline function geluExp(z: v128): v128 {
  return expv(f32x4.pmin(f32x4.splat(80), f32x4.mul(f32x4.splat(-2), geluU(z))));
}

/** act(z) per lane. */
// @ts-ignore: decorator
@inline function actForward(z: v128, act: i32): v128 {
  if (act == RELU) return f32x4.pmax(f32x4.splat(0), z);
  if (act == TANH) return tanhv(z);
  if (act == GELU) {
    // 0.5·z·(1 + tanh(u)) = z·σ(2u) = z / (1 + e^(−2u)), u = √(2/π)·(z + 0.044715·z³). The sigmoid
    // form keeps full relative precision for negative z, where 1 + tanh(u) would cancel.
    const e = geluExp(z);
    return f32x4.div(z, f32x4.add(f32x4.splat(1), e));
  }
  return z;
}

/** dy·act'(z) per lane (y = act(z) is used where it is cheaper). */
// @ts-ignore: decorator
@inline function actBackward(dy: v128, z: v128, y: v128, act: i32): v128 {
  if (act == RELU) return v128.and(dy, f32x4.gt(z, f32x4.splat(0)));
  if (act == TANH) return f32x4.mul(dy, f32x4.sub(f32x4.splat(1), f32x4.mul(y, y)));
  if (act == GELU) {
    // d/dz z·σ(2u) = σ + 2·z·u'·σ·(1 − σ), with σ = 1/(1 + e), 1 − σ = e·σ, e = e^(−2u)
    // (geluExp caps e, so e·σ is never ∞·0 and σ never subnormal).
    const z2 = f32x4.mul(z, z);
    const e = geluExp(z);
    const sig = f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e));
    const du = f32x4.mul(f32x4.splat(2 * SQRT_2_OVER_PI), madd(f32x4.splat(3 * GELU_C), z2, f32x4.splat(1)));
    const d = madd(f32x4.mul(f32x4.mul(z, du), sig), f32x4.mul(e, sig), sig);
    return f32x4.mul(dy, d);
  }
  return dy;
}

// ---- forward ---------------------------------------------------------------------------------------

/**
 * z[0..n) += bias (vector at bp, advancing with z, when perElement; else the splat `bv`, when
 * hasBias), then y = act(z). z is written back only when a bias was added.
 */
// @ts-ignore: decorator
@inline function forwardSegment(y: usize, z: usize, n: i32, bp: usize, bv: v128, hasBias: bool, perElement: bool, act: i32): void {
  const end = z + (<usize>n << 2);
  const end4 = z + (<usize>(n & ~3) << 2);
  while (z < end4) {
    let v = v128.load(z);
    if (hasBias) {
      v = f32x4.add(v, perElement ? v128.load(bp) : bv);
      v128.store(z, v);
      bp += 16;
    }
    v128.store(y, actForward(v, act));
    z += 16; y += 16;
  }
  while (z < end) {
    let v = f32x4.splat(load<f32>(z));
    if (hasBias) {
      v = f32x4.add(v, perElement ? f32x4.splat(load<f32>(bp)) : bv);
      store<f32>(z, f32x4.extract_lane(v, 0));
      bp += 4;
    }
    store<f32>(y, f32x4.extract_lane(actForward(v, act), 0));
    z += 4; y += 4;
  }
}

// @ts-ignore: decorator
@inline function biasActRows(y: usize, z: usize, b: usize, rows: i32, cols: i32, act: i32): void {
  const rowBytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    if (b != 0) forwardSegment(y, z, cols, b, f32x4.splat(0), true, true, act);
    else forwardSegment(y, z, cols, 0, f32x4.splat(0), false, false, act);
    y += rowBytes; z += rowBytes;
  }
}

function biasActRowsIdentity(y: usize, z: usize, b: usize, rows: i32, cols: i32): void { biasActRows(y, z, b, rows, cols, IDENTITY); }
function biasActRowsRelu(y: usize, z: usize, b: usize, rows: i32, cols: i32): void { biasActRows(y, z, b, rows, cols, RELU); }
function biasActRowsTanh(y: usize, z: usize, b: usize, rows: i32, cols: i32): void { biasActRows(y, z, b, rows, cols, TANH); }
function biasActRowsGelu(y: usize, z: usize, b: usize, rows: i32, cols: i32): void { biasActRows(y, z, b, rows, cols, GELU); }

/** z[r,c] += b[c] (if b ≠ 0), then y = act(z). y may equal z only for identity. */
export function bias_act_forward(y: usize, z: usize, b: usize, rows: i32, cols: i32, act: i32): void {
  if (act == RELU) biasActRowsRelu(y, z, b, rows, cols);
  else if (act == TANH) biasActRowsTanh(y, z, b, rows, cols);
  else if (act == GELU) biasActRowsGelu(y, z, b, rows, cols);
  else if (y != z || b != 0) biasActRowsIdentity(y, z, b, rows, cols);
}

// @ts-ignore: decorator
@inline function channelBiasActMaps(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32, act: i32): void {
  const planeBytes = <usize>spatial << 2;
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      if (b != 0) forwardSegment(y, z, spatial, 0, v128.load32_splat(b + (<usize>c << 2)), true, false, act);
      else forwardSegment(y, z, spatial, 0, f32x4.splat(0), false, false, act);
      y += planeBytes; z += planeBytes;
    }
  }
}

function channelMapsIdentity(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32): void { channelBiasActMaps(y, z, b, batch, channels, spatial, IDENTITY); }
function channelMapsRelu(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32): void { channelBiasActMaps(y, z, b, batch, channels, spatial, RELU); }
function channelMapsTanh(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32): void { channelBiasActMaps(y, z, b, batch, channels, spatial, TANH); }
function channelMapsGelu(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32): void { channelBiasActMaps(y, z, b, batch, channels, spatial, GELU); }

/** Per-channel bias for NCHW maps: z[n,c,:] += b[c], then y = act(z). */
export function channel_bias_act_forward(y: usize, z: usize, b: usize, batch: i32, channels: i32, spatial: i32, act: i32): void {
  if (act == RELU) channelMapsRelu(y, z, b, batch, channels, spatial);
  else if (act == TANH) channelMapsTanh(y, z, b, batch, channels, spatial);
  else if (act == GELU) channelMapsGelu(y, z, b, batch, channels, spatial);
  else if (y != z || b != 0) channelMapsIdentity(y, z, b, batch, channels, spatial);
}

// ---- backward --------------------------------------------------------------------------------------

/**
 * dz[0..n) = dy ⊙ act'(z, y). When sumTo ≠ 0, also adds dz into the vector at sumTo (advancing,
 * one element per element: dense bias gradient). Returns the sum of dz (channel bias gradient).
 */
// @ts-ignore: decorator
@inline function backwardSegment(dz: usize, dy: usize, z: usize, y: usize, n: i32, sumTo: usize, wantSum: bool, act: i32): f32 {
  const end = dz + (<usize>n << 2);
  const end4 = dz + (<usize>(n & ~3) << 2);
  let acc = f32x4.splat(0);
  while (dz < end4) {
    const zv = act == RELU || act == GELU ? v128.load(z) : f32x4.splat(0);
    const d = actBackward(v128.load(dy), zv, act == TANH ? v128.load(y) : f32x4.splat(0), act);
    v128.store(dz, d);
    if (sumTo != 0) { v128.store(sumTo, f32x4.add(v128.load(sumTo), d)); sumTo += 16; }
    if (wantSum) acc = f32x4.add(acc, d);
    dz += 16; dy += 16; z += 16; y += 16;
  }
  let s: f32 = wantSum ? hsum(acc) : 0;
  while (dz < end) {
    const d = f32x4.extract_lane(actBackward(
      f32x4.splat(load<f32>(dy)), act == RELU || act == GELU ? f32x4.splat(load<f32>(z)) : f32x4.splat(0), act == TANH ? f32x4.splat(load<f32>(y)) : f32x4.splat(0), act), 0);
    store<f32>(dz, d);
    if (sumTo != 0) { store<f32>(sumTo, load<f32>(sumTo) + d); sumTo += 4; }
    if (wantSum) s += d;
    dz += 4; dy += 4; z += 4; y += 4;
  }
  return s;
}

// @ts-ignore: decorator
@inline function biasActBackwardRows(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32, act: i32): void {
  const rowBytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) {
    backwardSegment(dz, dy, z, y, cols, db, false, act);
    dz += rowBytes; dy += rowBytes; z += rowBytes; y += rowBytes;
  }
}

function backwardRowsIdentity(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32): void { biasActBackwardRows(dz, dy, z, y, db, rows, cols, IDENTITY); }
function backwardRowsRelu(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32): void { biasActBackwardRows(dz, dy, z, y, db, rows, cols, RELU); }
function backwardRowsTanh(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32): void { biasActBackwardRows(dz, dy, z, y, db, rows, cols, TANH); }
function backwardRowsGelu(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32): void { biasActBackwardRows(dz, dy, z, y, db, rows, cols, GELU); }

/** dz = dy ⊙ act'(z, y); if db ≠ 0: db (+)= column sums of dz. dz may alias dy. */
export function bias_act_backward(dz: usize, dy: usize, z: usize, y: usize, db: usize, rows: i32, cols: i32, act: i32, accumulate: i32): void {
  if (db != 0 && !accumulate) memory.fill(db, 0, <usize>max(cols, 0) << 2);
  if (act == RELU) backwardRowsRelu(dz, dy, z, y, db, rows, cols);
  else if (act == TANH) backwardRowsTanh(dz, dy, z, y, db, rows, cols);
  else if (act == GELU) backwardRowsGelu(dz, dy, z, y, db, rows, cols);
  else backwardRowsIdentity(dz, dy, z, y, db, rows, cols);
}

// @ts-ignore: decorator
@inline function channelBackwardMaps(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32, act: i32): void {
  const planeBytes = <usize>spatial << 2;
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      if (db != 0) {
        const s = backwardSegment(dz, dy, z, y, spatial, 0, true, act);
        const p = db + (<usize>c << 2);
        store<f32>(p, load<f32>(p) + s);
      } else {
        backwardSegment(dz, dy, z, y, spatial, 0, false, act);
      }
      dz += planeBytes; dy += planeBytes; z += planeBytes; y += planeBytes;
    }
  }
}

function backwardMapsIdentity(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32): void { channelBackwardMaps(dz, dy, z, y, db, batch, channels, spatial, IDENTITY); }
function backwardMapsRelu(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32): void { channelBackwardMaps(dz, dy, z, y, db, batch, channels, spatial, RELU); }
function backwardMapsTanh(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32): void { channelBackwardMaps(dz, dy, z, y, db, batch, channels, spatial, TANH); }
function backwardMapsGelu(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32): void { channelBackwardMaps(dz, dy, z, y, db, batch, channels, spatial, GELU); }

/** dz = dy ⊙ act'(z, y); db[c] (+)= Σ over n and spatial of dz. */
export function channel_bias_act_backward(dz: usize, dy: usize, z: usize, y: usize, db: usize, batch: i32, channels: i32, spatial: i32, act: i32, accumulate: i32): void {
  if (db != 0 && !accumulate) memory.fill(db, 0, <usize>max(channels, 0) << 2);
  if (act == RELU) backwardMapsRelu(dz, dy, z, y, db, batch, channels, spatial);
  else if (act == TANH) backwardMapsTanh(dz, dy, z, y, db, batch, channels, spatial);
  else if (act == GELU) backwardMapsGelu(dz, dy, z, y, db, batch, channels, spatial);
  else backwardMapsIdentity(dz, dy, z, y, db, batch, channels, spatial);
}
