/**
 * Loading the kernel module: pick the build (relaxed SIMD where the runtime validates it, plain SIMD
 * otherwise; SKEIN_KERNELS=simd|relaxed forces one), compile it once per process, and instantiate it
 * on a shared memory. Every worker instantiates the same compiled module on the run's one memory.
 */
import { readFile } from "node:fs/promises";
import { UserError } from "../errors.ts";
import type { KernelExports } from "./abi.ts";
import { ensureKernelsBuilt, kernelPath } from "./build.ts";

export type KernelVariant = "relaxed" | "simd";

let embedded: Record<KernelVariant, Uint8Array> | null = null;
const compiled = new Map<KernelVariant, Promise<WebAssembly.Module>>();

/** A compiled single binary hands in the module bytes instead of reading build/. */
export function setEmbeddedKernels(relaxed: Uint8Array, simd: Uint8Array): void {
  embedded = { relaxed, simd };
  compiled.clear();
}

/**
 * The smallest module using relaxed SIMD: one function `() -> v128` returning
 * f32x4.relaxed_madd(v128.const 0, v128.const 0, v128.const 0).
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code section: one body of 59 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0), // v128.const 0
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x0c, ...new Array<number>(16).fill(0),
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd (0xfd 0x105)
  0x0b, // end
]);

/** Whether this runtime accepts relaxed SIMD (Bun does; Node needs --experimental-wasm-relaxed-simd). */
export function supportsRelaxedSimd(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** The variant to use: SKEIN_KERNELS if set, else relaxed when the runtime supports it. */
export function chooseVariant(forced: string | undefined = process.env.SKEIN_KERNELS): KernelVariant {
  if (forced !== undefined && forced !== "") {
    if (forced !== "simd" && forced !== "relaxed") {
      throw new UserError(`SKEIN_KERNELS=${forced}: expected "simd" or "relaxed"`);
    }
    if (forced === "relaxed" && !supportsRelaxedSimd()) {
      throw new UserError("SKEIN_KERNELS=relaxed: this runtime does not support relaxed SIMD");
    }
    return forced;
  }
  return supportsRelaxedSimd() ? "relaxed" : "simd";
}

async function compileVariant(variant: KernelVariant): Promise<WebAssembly.Module> {
  let bytes: Uint8Array;
  if (embedded) {
    bytes = embedded[variant];
  } else {
    await ensureKernelsBuilt();
    bytes = await readFile(kernelPath(variant));
  }
  return WebAssembly.compile(bytes);
}

/** Compiles (once per process and variant) the chosen kernel module. `variant` overrides the choice. */
export async function loadKernelModule(variant?: KernelVariant): Promise<{ module: WebAssembly.Module; variant: KernelVariant }> {
  const v = variant ?? chooseVariant();
  let module = compiled.get(v);
  if (!module) {
    module = compileVariant(v);
    compiled.set(v, module);
    module.catch(() => compiled.delete(v));
  }
  return { module: await module, variant: v };
}

/** Instantiates the kernels on `memory` (shared, imported as env.memory; the module keeps no state). */
export function instantiateKernels(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
