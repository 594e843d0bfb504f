/**
 * Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), so a run's
 * weights open in PyTorch, JAX or numpy without skein:
 *
 *   [u64 little-endian header length N][N bytes of UTF-8 JSON header][data area]
 *
 * The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (offsets relative
 * to the data area, tensors packed back to back) plus an optional "__metadata__" of string -> string.
 *
 * The reader trusts nothing in the file: every field is checked and any problem becomes one UserError
 * line naming the file, because checkpoints are user input (a path on the command line, possibly
 * truncated by a full disk or written by another tool).
 */
import { readFile } from "node:fs/promises";
import { UserError } from "../errors.ts";
import { writeFileAtomic } from "./atomic-file.ts";

export type SafetensorsDtype = "F32" | "F64" | "I32" | "U32" | "U8" | "I64";

/** Bytes per element of each supported dtype. */
export const dtypeByteSize: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4,
  F64: 8,
  I32: 4,
  U32: 4,
  U8: 1,
  I64: 8,
};

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Host-order (little-endian) element data; any typed array or DataView of the right byte length. */
  data: ArrayBufferView;
}

export interface StoredTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** A private copy starting at offset 0 of its own buffer, so any typed-array view of it is aligned. */
  data: Uint8Array;
}

export interface SafetensorsContents {
  /** In file order (by data offset). */
  tensors: Map<string, StoredTensor>;
  metadata: Record<string, string>;
}

const metadataKey = "__metadata__";

/**
 * The reference implementation refuses headers over 100 MB; a length beyond that is a corrupt or
 * foreign file, and refusing it early avoids decoding megabytes of garbage as JSON.
 */
const maxHeaderBytes = 100_000_000;

// Typed arrays use host byte order and the format is little-endian; every platform Bun runs on is
// little-endian, so bytes are copied as they are and this check guards the assumption.
const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function assertLittleEndianHost(): void {
  if (!hostIsLittleEndian) throw new Error("safetensors: big-endian hosts are not supported");
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.hasOwn(dtypeByteSize, value);
}

/** Product of the dims, or Infinity once it passes `limit` (dims may be huge, file sizes are not). */
function elementCount(shape: readonly number[], limit: number): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const dim of shape) {
    count *= dim;
    if (count > limit) return Infinity;
  }
  return count;
}

function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((dim) => Number.isSafeInteger(dim) && dim >= 0);
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** A JSON value for an error line: escaped (no newlines) and cut short (no megabyte messages). */
function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? "(missing)";
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function fsErrorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : String(error);
}

/**
 * Writes `tensors` (in the given order) and `metadata` to `path`. The file is written next to its
 * destination and renamed over it, so a reader sees either the old checkpoint or the whole new one.
 *
 * Invalid tensors (unknown dtype, byte length not matching the shape, the reserved name
 * "__metadata__") are bugs in the caller and throw plain Errors; a destination that cannot be written
 * is the user's and throws UserError.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  assertLittleEndianHost();
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") throw new Error(`safetensors: metadata ${describe(key)} must be a string`);
    }
    header[metadataKey] = metadata;
  }
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name === metadataKey) throw new Error(`safetensors: "${metadataKey}" is reserved, not a tensor name`);
    if (!isDtype(tensor.dtype)) throw new Error(`safetensors: tensor ${describe(name)} has unknown dtype ${describe(tensor.dtype)}`);
    if (!isShape(tensor.shape)) throw new Error(`safetensors: tensor ${describe(name)} has an invalid shape ${describe(tensor.shape)}`);
    const bytes = bytesOf(tensor.data);
    const expected = elementCount(tensor.shape, Number.MAX_SAFE_INTEGER) * dtypeByteSize[tensor.dtype];
    if (bytes.byteLength !== expected) {
      throw new Error(
        `safetensors: tensor ${describe(name)} has ${bytes.byteLength} bytes, shape [${tensor.shape}] of ${tensor.dtype} needs ${expected}`,
      );
    }
    // defineProperty, not assignment: a tensor named "__proto__" must stay an ordinary key.
    Object.defineProperty(header, name, {
      value: { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.byteLength] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    payloads.push(bytes);
    offset += bytes.byteLength;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  // Spaces after the JSON make the data area start on an 8-byte boundary, so a reader that maps the
  // file can view F64/I64 tensors in place.
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const prefix = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerLength), true);
  prefix.set(json, 8);

  // Temp file, flush, rename, flush the folder: a crash leaves the old file or the whole new one.
  await writeFileAtomic(path, [prefix, ...payloads]);
}

/** Reads and validates a safetensors file; tensors come back in data order, each a private copy. */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  assertLittleEndianHost();
  const fail = (problem: string): never => {
    throw new UserError(`${path}: ${problem}`);
  };

  let file: Uint8Array;
  try {
    const contents = await readFile(path);
    // A plain Uint8Array over the bytes: Buffer.slice would return a view where a copy is meant.
    file = new Uint8Array(contents.buffer, contents.byteOffset, contents.byteLength);
  } catch (error) {
    const code = fsErrorCode(error);
    if (code === "ENOENT") fail("no such file");
    if (code === "EISDIR") fail("is a directory, not a safetensors file");
    return fail(`cannot read (${code})`);
  }

  if (file.byteLength < 8) fail(`too short for a safetensors file (${file.byteLength} bytes, need at least 8)`);
  const declaredLength = new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true);
  if (declaredLength > BigInt(maxHeaderBytes)) fail(`header length ${declaredLength} is absurd (limit ${maxHeaderBytes})`);
  const headerLength = Number(declaredLength);
  if (8 + headerLength > file.byteLength) {
    fail(`header length ${headerLength} runs past the end of the file (${file.byteLength} bytes)`);
  }

  let headerText: string;
  try {
    headerText = new TextDecoder("utf-8", { fatal: true }).decode(file.subarray(8, 8 + headerLength));
  } catch {
    return fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    return fail(`header is not valid JSON (${String((error as Error).message).split("\n")[0]})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("header is not a JSON object");

  const dataStart = 8 + headerLength;
  const dataLength = file.byteLength - dataStart;
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === metadataKey) {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail(`"${metadataKey}" is not an object`);
      const pairs = Object.entries(entry as Record<string, unknown>);
      for (const [key, value] of pairs) {
        if (typeof value !== "string") fail(`metadata ${describe(key)} is not a string`);
      }
      // fromEntries defines own properties, so a key "__proto__" stays data.
      metadata = Object.fromEntries(pairs) as Record<string, string>;
      continue;
    }
    const where = `tensor ${describe(name)}`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail(`${where} is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) fail(`${where} has unsupported dtype ${describe(dtype)} (want one of ${Object.keys(dtypeByteSize).join(", ")})`);
    if (!isShape(shape)) fail(`${where} has shape ${describe(shape)}, want an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`${where} has data_offsets ${describe(offsets)}, want [begin, end] as non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${where} has data_offsets [${begin}, ${end}] with begin after end`);
    if (end > dataLength) fail(`${where} has data_offsets [${begin}, ${end}] past the data area (${dataLength} bytes)`);
    const validShape = shape as number[];
    const validDtype = dtype as SafetensorsDtype;
    const expected = elementCount(validShape, dataLength) * dtypeByteSize[validDtype];
    if (end - begin !== expected) {
      fail(`${where} has ${end - begin} bytes, but shape [${validShape}] of ${validDtype} needs ${expected}`);
    }
    entries.push({ name, dtype: validDtype, shape: validShape, begin, end });
  }

  // Sorted by offset, the tensors must tile the data area exactly: an overlap would alias two tensors
  // and a gap or tail means bytes nobody owns, both signs of a damaged or hand-edited file.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of entries) {
    if (entry.begin < covered) fail(`tensor ${describe(entry.name)} overlaps the tensor before it (starts at ${entry.begin}, previous ends at ${covered})`);
    if (entry.begin > covered) fail(`data area has a gap of unclaimed bytes [${covered}, ${entry.begin})`);
    covered = entry.end;
  }
  if (covered !== dataLength) fail(`data area has ${dataLength - covered} unclaimed trailing bytes after offset ${covered}`);

  const tensors = new Map<string, StoredTensor>();
  for (const { name, dtype, shape, begin, end } of entries) {
    tensors.set(name, { dtype, shape, data: file.slice(dataStart + begin, dataStart + end) });
  }
  return { tensors, metadata };
}

/**
 * The tensor's values as float32: a view (no copy) for F32, a converted copy for other dtypes
 * (I64 beyond 2^53 loses precision, as any float conversion would).
 */
export function tensorAsFloat32(tensor: StoredTensor): Float32Array {
  assertLittleEndianHost();
  const { data } = tensor;
  const count = data.byteLength / dtypeByteSize[tensor.dtype];
  // Copies from readSafetensors start at offset 0, but callers may build StoredTensors themselves:
  // copy when the bytes are not aligned for the wider views.
  const bytes = data.byteOffset % 8 === 0 ? data : data.slice();
  const { buffer, byteOffset } = bytes;
  switch (tensor.dtype) {
    case "F32":
      return new Float32Array(buffer, byteOffset, count);
    case "F64":
      return Float32Array.from(new Float64Array(buffer, byteOffset, count));
    case "I32":
      return Float32Array.from(new Int32Array(buffer, byteOffset, count));
    case "U32":
      return Float32Array.from(new Uint32Array(buffer, byteOffset, count));
    case "U8":
      return Float32Array.from(bytes);
    case "I64":
      return Float32Array.from(new BigInt64Array(buffer, byteOffset, count), (value) => Number(value));
  }
}
