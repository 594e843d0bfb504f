/**
 * Compiles the AssemblyScript kernels into two modules (run as `bun asm/build.ts`):
 *   build/kernels.relaxed.wasm  simd + relaxed-simd + threads (f32x4.relaxed_madd)
 *   build/kernels.simd.wasm     simd + threads (plain mul + add)
 * Sources pick the path with the compile-time constant ASC_FEATURE_RELAXED_SIMD.
 *
 * Every worker instantiates the same module on one shared memory, so a module that carried static
 * data (a data segment, re-written at each instantiation) or mutable globals (per-instance state the
 * other workers cannot see) would be a silent bug: the build refuses such output.
 */
import asc from "assemblyscript/asc";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const ASM_DIR = import.meta.dir;
const ROOT = resolve(ASM_DIR, "..");
const BUILD_DIR = join(ROOT, "build");

export const VARIANTS = [
  { name: "relaxed", file: "kernels.relaxed.wasm", features: "simd,relaxed-simd,threads" },
  { name: "simd", file: "kernels.simd.wasm", features: "simd,threads" },
] as const;

const COMMON_FLAGS = [
  "--runtime", "stub",
  "--importMemory",
  "--noExportMemory",
  "--sharedMemory",
  "--initialMemory", "1",
  "--maximumMemory", "65536",
  "-O3",
  "--noAssert",
  "--use", "abort=",
];

/** Section ids of the wasm binary format. */
const SECTION = { import: 2, global: 6, data: 11, dataCount: 12 } as const;

function readLeb(bytes: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, pos];
  }
}

function readName(bytes: Uint8Array, pos: number): [name: string, next: number] {
  const [len, p] = readLeb(bytes, pos);
  return [new TextDecoder().decode(bytes.subarray(p, p + len)), p + len];
}

/** Skips a constant initializer expression (one constant or global.get, then `end`). */
function skipConstExpr(bytes: Uint8Array, p: number, label: string): number {
  const op = bytes[p++]!;
  if (op === 0x41 || op === 0x42 || op === 0x23) p = readLeb(bytes, p)[1];
  else if (op === 0x43) p += 4;
  else if (op === 0x44) p += 8;
  else if (op === 0xfd && bytes[p] === 0x0c) p += 17;
  else throw new Error(`${label}: unexpected global initializer opcode 0x${op.toString(16)}`);
  if (bytes[p] !== 0x0b) throw new Error(`${label}: unexpected global initializer`);
  return p + 1;
}

/** Throws unless the module has no data, no mutable globals and imports only env.memory. */
export function checkModuleShape(bytes: Uint8Array, label: string): void {
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error(`${label}: not a wasm binary`);
  }
  let pos = 8;
  while (pos < bytes.length) {
    const id = bytes[pos++]!;
    const [size, start] = readLeb(bytes, pos);
    const end = start + size;
    if (id === SECTION.data || id === SECTION.dataCount) {
      throw new Error(`${label}: has a data section; kernels must not write static data into the shared memory`);
    }
    if (id === SECTION.global) {
      const [count, p0] = readLeb(bytes, start);
      let p = p0;
      for (let i = 0; i < count; i++) {
        p++; // value type (numeric types are one byte)
        const mutable = bytes[p++]!;
        if (mutable !== 0) throw new Error(`${label}: global #${i} is mutable; kernels must keep no state`);
        p = skipConstExpr(bytes, p, label);
      }
    }
    if (id === SECTION.import) {
      const [count, p0] = readLeb(bytes, start);
      let p = p0;
      for (let i = 0; i < count; i++) {
        const [mod, p1] = readName(bytes, p);
        const [field, p2] = readName(bytes, p1);
        const kind = bytes[p2]!;
        if (mod !== "env" || field !== "memory" || kind !== 0x02) {
          throw new Error(`${label}: imports ${mod}.${field}; only env.memory is allowed`);
        }
        // memory limits: flags, initial, (maximum)
        const flags = bytes[p2 + 1]!;
        let q = readLeb(bytes, p2 + 2)[1];
        if (flags & 1) q = readLeb(bytes, q)[1];
        p = q;
      }
    }
    pos = end;
  }
}

async function compileVariant(features: string, label: string): Promise<Uint8Array> {
  let binary: Uint8Array | null = null;
  let errors = "";
  const result = await asc.main(
    [join(ASM_DIR, "index.ts"), "--outFile", "kernels.wasm", "--enable", features, ...COMMON_FLAGS],
    {
      writeFile(filename: string, contents: string | Uint8Array) {
        if (filename.endsWith(".wasm") && contents instanceof Uint8Array) binary = contents;
      },
      stderr: asc.createMemoryStream((chunk) => {
        errors += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      }),
    },
  );
  if (result.error) throw new Error(`asc failed for ${label}:\n${errors}\n${result.error.message}`);
  if (!binary) throw new Error(`asc produced no binary for ${label}:\n${errors}`);
  return binary;
}

/** Compiles both variants, checks them, and writes them atomically into build/. */
export async function buildKernels(): Promise<void> {
  mkdirSync(BUILD_DIR, { recursive: true });
  for (const v of VARIANTS) {
    const bytes = await compileVariant(v.features, v.name);
    checkModuleShape(bytes, v.file);
    if (!WebAssembly.validate(bytes)) throw new Error(`${v.file}: WebAssembly.validate failed`);
    const out = join(BUILD_DIR, v.file);
    const tmp = `${out}.${process.pid}.tmp`;
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(tmp, bytes);
    renameSync(tmp, out);
  }
}

if (import.meta.main) {
  try {
    await buildKernels();
    for (const v of VARIANTS) console.log(`built build/${v.file}`);
  } catch (err) {
    console.error(`asm/build.ts: ${(err as Error).message}`);
    process.exit(1);
  }
}
