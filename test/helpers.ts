/**
 * Test plumbing: a shared memory with the kernels instantiated on it, and an allocator over it.
 * (The arena planner is the allocator: tests plan as they go on a memory sized generously up front.)
 */
import { expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import type { KernelExports } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner } from "../engine/memory/arena.ts";
import { train, type TrainConfig, type TrainOptions } from "../engine/train.ts";

export interface TestMemory {
  k: KernelExports;
  memory: WebAssembly.Memory;
  planner: ArenaPlanner;
  floats(n: number): number;
  put(values: ArrayLike<number>): number;
  read(ptr: number, n: number): Float32Array;
  write(ptr: number, values: ArrayLike<number>): void;
}

const module = (await loadKernelModule()).module;

export function testMemory(mib = 64): TestMemory {
  const pages = (mib * 1024 * 1024) / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k = instantiateKernels(module, memory);
  const planner = new ArenaPlanner();
  const floats = (n: number) => {
    const p = planner.floats("scratch", "t", Math.max(n, 1));
    if (p + n * 4 > memory.buffer.byteLength) throw new Error("test memory too small");
    return p;
  };
  const write = (ptr: number, values: ArrayLike<number>) => new Float32Array(memory.buffer, ptr, values.length).set(values);
  return {
    k,
    memory,
    planner,
    floats,
    put(values) {
      const p = floats(values.length);
      write(p, values);
      return p;
    },
    read: (ptr, n) => new Float32Array(memory.buffer, ptr, n).slice(),
    write,
  };
}

/** Deterministic pseudo-random floats in [-1, 1) for fixed examples (properties use ./arbitraries.ts). */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32 * 2 - 1) * scale;
  }
  return out;
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

/** Train and keep the final parameters (tests compare runs bitwise). */
export async function trainAndRead(config: TrainConfig, options: TrainOptions = {}) {
  let params: Float32Array | null = null;
  const summary = await train(config, { ...options, onFinish: (p) => (params = p) });
  return { summary, params: params! as Float32Array };
}

export const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

/** Plain SGD's ledger invariant: the largest |w − (w0 − lr·Σ applied gradients)| over the vector. */
export function ledgerDeviation(initial: Float32Array, final: Float32Array, ledger: Float32Array, lr: number): number {
  let worst = 0;
  for (let i = 0; i < final.length; i++) worst = Math.max(worst, Math.abs(final[i]! - (initial[i]! - lr * ledger[i]!)));
  return worst;
}

/** The one-line UserError `fn` throws (the test fails if it throws nothing, something else, or several lines). */
export function userErrorOf(fn: () => unknown): string {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(UserError);
  const text = (error as Error).message;
  expect(text.split("\n")).toHaveLength(1);
  return text;
}

/** A run folder's summary.json, parsed. */
export const summaryOf = (dir: string) => JSON.parse(readFileSync(join(dir, "summary.json"), "utf8"));

/** Poll `condition` every 20 ms for up to `ms`: whether it came true (a wait for another process, never a timing assertion). */
export async function waitFor(condition: () => boolean, ms = 30_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (condition()) return true;
    await Bun.sleep(20);
  }
  return condition();
}

/** Run `fn` with the environment variable `name` set to `value`, then put back what was there (or nothing). */
export async function withEnv<R>(name: string, value: string, fn: () => R | Promise<R>): Promise<R> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}
