/**
 * Builds the wasm kernels when they are missing or older than their sources, so a fresh clone that
 * runs `bun test` (test/setup.ts) or the CLI first just works. Paths are resolved from this file.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..", "..");
const ASM_DIR = join(ROOT, "asm");
const BUILD_DIR = join(ROOT, "build");
export const KERNEL_FILES = { relaxed: "kernels.relaxed.wasm", simd: "kernels.simd.wasm" } as const;

/** Absolute path of one built variant. */
export function kernelPath(variant: keyof typeof KERNEL_FILES): string {
  return join(BUILD_DIR, KERNEL_FILES[variant]);
}

function newestSourceMtime(): number {
  let newest = 0;
  for (const name of readdirSync(ASM_DIR)) {
    if (name.endsWith(".ts") || name.endsWith(".json")) newest = Math.max(newest, statSync(join(ASM_DIR, name)).mtimeMs);
  }
  return newest;
}

/** True when every build/*.wasm exists and is newer than every asm source. */
export function kernelsUpToDate(): boolean {
  if (!existsSync(ASM_DIR)) return true; // a packaged tree without sources: use what is there
  const sources = newestSourceMtime();
  return Object.values(KERNEL_FILES).every((file) => {
    const path = join(BUILD_DIR, file);
    return existsSync(path) && statSync(path).mtimeMs >= sources;
  });
}

let pending: Promise<void> | null = null;

export async function ensureKernelsBuilt(): Promise<void> {
  if (kernelsUpToDate()) return;
  // One build per process even if several callers ask at once. The compiler is imported through a
  // computed path so bundlers (the single binary, which embeds the wasm) leave it out.
  const builder: string = join(ASM_DIR, "build.ts");
  pending ??= (import(builder) as Promise<typeof import("../../asm/build.ts")>).then((m) => m.buildKernels()).finally(() => {
    pending = null;
  });
  await pending;
}
