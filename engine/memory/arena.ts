/**
 * The arena: one shared WebAssembly.Memory per run, every byte of it planned here up front.
 *
 * Kernels receive pointers and never allocate, so the TypeScript side decides where every tensor
 * lives. Planning is a pure function of the run's configuration: main thread and workers get the same
 * plan object (plain JSON), so a pointer means the same thing everywhere.
 */
import { UserError } from "../errors.ts";

/** What a region is for; the summary reports arena bytes by these categories. */
export type RegionKind = "control" | "data" | "parameters" | "gradients" | "optimizerState" | "activations" | "scratch";
export const REGION_KINDS: readonly RegionKind[] = ["control", "data", "parameters", "gradients", "optimizerState", "activations", "scratch"];

export interface Region {
  name: string;
  kind: RegionKind;
  offset: number;
  /** Bytes reserved, rounded up to ALIGN. */
  bytes: number;
  /** Bytes asked for: the summary compares the arena against the sum of these. */
  requested: number;
}

export interface ArenaPlan {
  /** Bytes in use, padding included: the memory is this rounded up to whole 64 KiB pages. */
  usedBytes: number;
  regions: Region[];
}

/** 64-byte alignment: a cache line, and a multiple of the 16 bytes a v128 load wants. */
export const ALIGN = 64;
const PAGE = 65536;
/** Pointer 0 means "absent" in the kernel ABI, so nothing is ever planned in the first cache line. */
const RESERVED_LOW_BYTES = ALIGN;
/** wasm32: at most 65536 pages of 64 KiB. */
const MAX_BYTES = 65536 * PAGE;

export const alignUp = (n: number, a = ALIGN): number => Math.ceil(n / a) * a;
/** Floats rounded up so every tensor starts on an ALIGN boundary when tensors are laid end to end. */
export const alignFloats = (n: number): number => alignUp(n * 4) / 4;

export class ArenaPlanner {
  private cursor = RESERVED_LOW_BYTES;
  readonly regions: Region[] = [];

  /** Reserve `bytes` (rounded up to ALIGN) and return the byte offset. */
  reserve(kind: RegionKind, name: string, bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`arena: bad size ${bytes} for ${name}`);
    const offset = this.cursor;
    const size = alignUp(Math.max(bytes, 0));
    this.regions.push({ name, kind, offset, bytes: size, requested: bytes });
    this.cursor += size;
    return offset;
  }

  floats(kind: RegionKind, name: string, count: number): number {
    return this.reserve(kind, name, count * 4);
  }

  finish(): ArenaPlan {
    if (this.cursor > MAX_BYTES) {
      throw new UserError(`the run needs ${(this.cursor / 2 ** 30).toFixed(2)} GiB of shared memory, more than wasm32's 4 GiB: use a smaller --batch, model or data set`);
    }
    return { usedBytes: this.cursor, regions: this.regions.slice() };
  }
}

/** Bytes of the arena by region kind (what the summary reports). */
export function bytesByKind(plan: ArenaPlan): Record<RegionKind, number> {
  const out = Object.fromEntries(REGION_KINDS.map((k) => [k, 0])) as Record<RegionKind, number>;
  for (const r of plan.regions) out[r.kind] += r.bytes;
  return out;
}

/** Pages for the plan; maximum = initial because a run never grows its memory. */
export function createSharedMemory(plan: ArenaPlan): WebAssembly.Memory {
  const pages = Math.ceil(plan.usedBytes / PAGE);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/** Typed views over the shared memory. Never cache across a memory.grow (we never grow). */
export const f32 = (memory: WebAssembly.Memory, ptr: number, count: number): Float32Array =>
  new Float32Array(memory.buffer, ptr, count);
export const u8 = (memory: WebAssembly.Memory, ptr: number, count: number): Uint8Array =>
  new Uint8Array(memory.buffer, ptr, count);
