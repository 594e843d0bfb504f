/**
 * Test plumbing for the kernel tests: one shared memory per build variant with the kernels on it, a
 * bump allocator (64-byte aligned, from 1024), and guard bands after every region so a kernel that
 * writes past its output is caught. Also the fixed examples' data and the tolerance checks.
 */
import { expect } from "bun:test";
import type { KernelExports, Ptr } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule, type KernelVariant } from "../engine/kernels/load.ts";
import type { GemmResult } from "./reference.ts";

export const VARIANTS: readonly KernelVariant[] = ["relaxed", "simd"];

const GUARD_BYTES = 64;
const GUARD_WORD = 0x7fc0_dead; // a NaN pattern no kernel produces

export class KernelArena {
  private top = 1024;
  private guards: Ptr[] = [];

  private constructor(
    readonly variant: KernelVariant,
    readonly memory: WebAssembly.Memory,
    readonly k: KernelExports,
  ) {}

  static async create(variant: KernelVariant, mib = 32): Promise<KernelArena> {
    const { module } = await loadKernelModule(variant);
    const pages = (mib << 20) >> 16;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: 16384, shared: true });
    return new KernelArena(variant, memory, instantiateKernels(module, memory));
  }

  /** Forgets every allocation (call at the start of each property run). */
  reset(): void {
    this.top = 1024;
    this.guards = [];
  }

  /** `bytes` bytes, 64-byte aligned, followed by a guard band. Contents are garbage (NaN-filled). */
  alloc(bytes: number): Ptr {
    const p = (this.top + 63) & ~63;
    const end = p + Math.max(bytes, 0);
    this.top = end + GUARD_BYTES;
    const need = this.top + 64;
    if (need > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((need - this.memory.buffer.byteLength) / 65536));
    }
    new Int32Array(this.memory.buffer, p, Math.ceil(bytes / 4) + GUARD_BYTES / 4).fill(GUARD_WORD);
    this.guards.push(p + Math.ceil(bytes / 4) * 4);
    return p;
  }

  floats(n: number): Ptr {
    return this.alloc(n * 4);
  }

  put(values: ArrayLike<number>): Ptr {
    const p = this.floats(values.length);
    new Float32Array(this.memory.buffer, p, values.length).set(values);
    return p;
  }

  putI32(values: ArrayLike<number>): Ptr {
    const p = this.alloc(values.length * 4);
    new Int32Array(this.memory.buffer, p, values.length).set(values);
    return p;
  }

  putU8(values: ArrayLike<number>): Ptr {
    const p = this.alloc(values.length);
    new Uint8Array(this.memory.buffer, p, values.length).set(values);
    return p;
  }

  read(p: Ptr, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, p, n).slice();
  }

  readI32(p: Ptr, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, p, n).slice();
  }

  /** Fails the test if any guard band was written. */
  checkGuards(): void {
    const view = new Int32Array(this.memory.buffer);
    for (const g of this.guards) {
      for (let i = 0; i < GUARD_BYTES / 4; i++) {
        if (view[g / 4 + i] !== GUARD_WORD) throw new Error(`write past the end of a region (guard at ${g}, word ${i})`);
      }
    }
  }
}

/** Deterministic floats in [-scale, scale) (xorshift32): data for the fixed examples; properties use ./arbitraries.ts. */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let s = (seed >>> 0) || 0x9e3779b9;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** n integers in [0, bound), from the same generator. */
export function randomInts(n: number, seed: number, bound: number): Int32Array {
  const f = randomFloats(n, seed);
  return Int32Array.from(f, (x) => Math.min(bound - 1, Math.floor(((x + 1) / 2) * bound)));
}

export const F32_EPS = 2 ** -23;

/**
 * Checks a sum-of-products result: |got − ref| ≤ (terms + 2)·ε·Σ|terms|, the bound for f32
 * summation in any order (with or without FMA), plus a tiny absolute floor.
 */
export function expectGemmClose(got: Float32Array, ref: GemmResult, terms: number, what = "C"): void {
  expect(got.length).toBe(ref.c.length);
  const k = (terms + 2) * F32_EPS;
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - ref.c[i]!);
    if (!(err <= k * ref.mag[i]! + 1e-30)) {
      throw new Error(`${what}[${i}] = ${got[i]} but reference ${ref.c[i]} (|err| ${err.toExponential(2)} > ${(k * ref.mag[i]!).toExponential(2)})`);
    }
  }
}

/** Elementwise |got − want| ≤ atol + rtol·|want|. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-5, atol = 1e-6, what = "value"): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= atol + rtol * Math.abs(want[i]!))) {
      throw new Error(`${what}[${i}] = ${got[i]} but reference ${want[i]} (|err| ${err.toExponential(2)})`);
    }
  }
}

/** One arena per variant, created on first use and reused across tests in a file. */
const arenas = new Map<KernelVariant, Promise<KernelArena>>();
export function arenaFor(variant: KernelVariant): Promise<KernelArena> {
  let a = arenas.get(variant);
  if (!a) {
    a = KernelArena.create(variant);
    arenas.set(variant, a);
  }
  return a;
}
