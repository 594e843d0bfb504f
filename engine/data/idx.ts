/**
 * MNIST-layout IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST-digits): a folder with
 *   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
 * each raw or gzipped (`.gz`), also spelled with a dot (`train-images.idx3-ubyte`).
 *
 * IDX format (big-endian): u8 0, u8 0, u8 type (0x08 = unsigned byte), u8 ndims; ndims × u32 sizes;
 * then the payload. Images are 0x00000803 (count, rows, cols), labels 0x00000801 (count).
 *
 * Every check below exists because a real download went wrong that way (a truncated transfer,
 * an HTML error page saved as .gz, images and labels from different sets); each failure is a
 * UserError naming the file and what is wrong with it.
 */
import { closeSync, createReadStream, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { createGunzip } from "node:zlib";
import { basename, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { standardizeFromTrain, type Dataset, type Split } from "./types.ts";
import { formatBytes, MAX_DEFLATE_RATIO, MAX_SPLIT_BYTES } from "./limits.ts";

const IMAGES_MAGIC = 0x00000803;
const LABELS_MAGIC = 0x00000801;

/** One IDX file's header facts and payload. */
interface IdxArray {
  path: string;
  dims: number[];
  payload: Uint8Array;
}

export interface IdxOptions {
  /** Labels must be < classes (default 10). */
  classes?: number;
  /** The spec recorded in Dataset.source (default "idx:" + absolute dir). */
  source?: string;
}

/** Loads the four IDX files of `dir` into a Dataset with shape [1, rows, cols]. */
export async function loadIdx(dir: string, options: IdxOptions = {}): Promise<Dataset> {
  const classes = options.classes ?? 10;
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UserError(`${root}: no such directory (idx:DIR wants a folder of IDX files)`);
  const train = await loadSplit(root, "train", classes);
  const test = await loadSplit(root, "t10k", classes);
  const [trainRows, trainCols] = train.imageDims;
  const [testRows, testCols] = test.imageDims;
  if (trainRows !== testRows || trainCols !== testCols) {
    throw new UserError(`${test.imagesPath}: images are ${testRows}×${testCols} but ${basename(train.imagesPath)} has ${trainRows}×${trainCols}`);
  }
  return {
    name: basename(root),
    source: options.source ?? `idx:${root}`,
    shape: [1, trainRows, trainCols],
    classes,
    train: train.split,
    test: test.split,
    normalize: standardizeFromTrain(train.split),
  };
}

async function loadSplit(dir: string, prefix: "train" | "t10k", classes: number) {
  const imagesPath = findIdxFile(dir, `${prefix}-images`, "idx3-ubyte");
  const labelsPath = findIdxFile(dir, `${prefix}-labels`, "idx1-ubyte");
  const images = parseIdx(imagesPath, await readMaybeGzipped(imagesPath, IMAGES_MAGIC), IMAGES_MAGIC);
  const labels = parseIdx(labelsPath, await readMaybeGzipped(labelsPath, LABELS_MAGIC), LABELS_MAGIC);
  const [count, rows, cols] = images.dims as [number, number, number];
  if (count === 0 || rows === 0 || cols === 0) throw new UserError(`${imagesPath}: holds no images (header says ${count}×${rows}×${cols})`);
  if (labels.dims[0] !== count) {
    throw new UserError(`${labelsPath}: has ${labels.dims[0]} labels but ${basename(imagesPath)} has ${count} images`);
  }
  for (let i = 0; i < count; i++) {
    const label = labels.payload[i]!;
    if (label >= classes) throw new UserError(`${labelsPath}: label ${label} at index ${i} is out of range 0..${classes - 1}`);
  }
  // Copy out of the file buffer so the split owns exactly its bytes (the gzip output may be larger).
  const split: Split = { images: images.payload.slice(), labels: labels.payload.slice(), count };
  return { split, imageDims: [rows, cols] as const, imagesPath };
}

/** The first existing spelling of one file: dash or dot before idxN, raw or .gz. */
function findIdxFile(dir: string, stem: string, kind: string): string {
  const candidates = [`${stem}-${kind}`, `${stem}.${kind}`].flatMap((name) => [name, `${name}.gz`]);
  for (const name of candidates) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  const present = readdirSync(dir).slice(0, 8).join(", ") || "nothing";
  throw new UserError(`${join(dir, candidates[0]!)}: missing (also looked for ${candidates.slice(1).join(", ")}; the folder has ${present})`);
}

/**
 * Reads a file, gunzipping when it is named .gz or starts with the gzip magic 1f 8b. Never holds more
 * than the header promises: a raw file is checked against the size limit before it is read; a gzip
 * file is inflated as a stream, its IDX header checked (magic, sizes against the limit and against
 * what that many compressed bytes could possibly hold) as soon as it is out, into a buffer of exactly
 * the size the header claims, and inflation stops at the first byte past it.
 */
async function readMaybeGzipped(path: string, wantMagic: number): Promise<Uint8Array> {
  let size: number;
  let head: Uint8Array;
  try {
    size = statSync(path).size;
    head = readHead(path, 2);
  } catch (err) {
    throw new UserError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const looksGzipped = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  if (path.endsWith(".gz") && !looksGzipped) {
    throw new UserError(`${path}: not gzip data (starts with ${hexBytes(readHead(path, 4)) || "nothing: empty file"})`);
  }
  if (!looksGzipped) {
    if (size > MAX_SPLIT_BYTES + 64) throw new UserError(`${path}: ${formatBytes(size)}, more than the ${formatBytes(MAX_SPLIT_BYTES)} one split may hold`);
    try {
      return await Bun.file(path).bytes();
    } catch (err) {
      throw new UserError(`${path}: cannot read (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return inflateIdx(path, size, wantMagic);
}

function readHead(path: string, n: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const head = new Uint8Array(n);
    return head.subarray(0, readSync(fd, head, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** The gzip stream of an IDX file, inflated into exactly the bytes its header claims (see readMaybeGzipped). */
function inflateIdx(path: string, compressedBytes: number, wantMagic: number): Promise<Uint8Array> {
  const headerBytes = 4 + 4 * (wantMagic & 0xff);
  return new Promise((resolvePromise, reject) => {
    const source = createReadStream(path);
    const gunzip = createGunzip();
    let head: Uint8Array = new Uint8Array(0);
    let out: Uint8Array | null = null;
    let filled = 0;
    let done = false;
    const fail = (message: string) => {
      if (done) return;
      done = true;
      source.destroy();
      gunzip.destroy();
      reject(new UserError(`${path}: ${message}`));
    };
    gunzip.on("data", (chunk: Buffer) => {
      if (done) return;
      if (!out) {
        head = concat(head, chunk);
        if (head.length < headerBytes) return;
        // The header's own checks (magic, dimension count) with the messages parseIdx gives.
        try {
          parseIdxHeader(path, head, wantMagic);
        } catch (e) {
          return fail((e as Error).message.slice(path.length + 2));
        }
        const view = new DataView(head.buffer, head.byteOffset, headerBytes);
        const dims = Array.from({ length: wantMagic & 0xff }, (_, i) => view.getUint32(4 + 4 * i, false));
        const payload = dims.reduce((a, b) => a * b, 1);
        const what = wantMagic === IMAGES_MAGIC ? `header says ${dims.join("×")} = ${payload} pixel bytes` : `header says ${payload} labels`;
        if (payload > MAX_SPLIT_BYTES) return fail(`${what} (${formatBytes(payload)}), more than the ${formatBytes(MAX_SPLIT_BYTES)} one split may hold`);
        if (payload > compressedBytes * MAX_DEFLATE_RATIO) return fail(`truncated: ${what} but ${compressedBytes} bytes of gzip cannot hold that many`);
        out = new Uint8Array(headerBytes + payload);
        chunk = Buffer.from(head);
      }
      if (filled + chunk.length > out.length) return fail(`has trailing bytes: inflates past the ${out.length} bytes its header claims`);
      out.set(chunk, filled);
      filled += chunk.length;
    });
    gunzip.on("end", () => {
      if (done) return;
      done = true;
      // Short of the header's claim: return what there is, and parseIdx says "truncated" with the counts.
      resolvePromise(out ? out.subarray(0, filled) : head);
    });
    gunzip.on("error", (err) => fail(`corrupt gzip data (${err.message}); re-download it`));
    source.on("error", (err) => fail(`cannot read (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    source.pipe(gunzip);
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The magic number and header length of an IDX file. */
function parseIdxHeader(path: string, bytes: Uint8Array, wantMagic: number): void {
  const wantDims = wantMagic & 0xff;
  if (bytes.length < 4) throw new UserError(`${path}: only ${bytes.length} bytes, too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== wantMagic) {
    const what = wantMagic === IMAGES_MAGIC ? "images" : "labels";
    throw new UserError(`${path}: wrong magic number 0x${hex32(magic)} (want 0x${hex32(wantMagic)} for IDX ${what})`);
  }
  const headerBytes = 4 + 4 * wantDims;
  if (bytes.length < headerBytes) throw new UserError(`${path}: truncated header (${bytes.length} of ${headerBytes} bytes)`);
}

/** Checks magic and sizes; the payload must be exactly the product of the header dims. */
function parseIdx(path: string, bytes: Uint8Array, wantMagic: number): IdxArray {
  parseIdxHeader(path, bytes, wantMagic);
  const wantDims = wantMagic & 0xff;
  const headerBytes = 4 + 4 * wantDims;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: wantDims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const want = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - headerBytes;
  if (have !== want) {
    const problem = have < want ? "truncated" : "has trailing bytes";
    const expected = wantDims === 1 ? `${want} labels` : `${dims.join("×")} = ${want} pixel bytes`;
    throw new UserError(`${path}: ${problem}: header says ${expected} but ${have} bytes follow`);
  }
  return { path, dims, payload: bytes.subarray(headerBytes) };
}

function hex32(x: number): string {
  return (x >>> 0).toString(16).padStart(8, "0");
}

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Serializes u8 arrays as IDX (for tests and for exporting synthetic data to other tools). */
export function encodeIdx(magic: number, dims: number[], payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(payload, header);
  return out;
}

export { IMAGES_MAGIC as IDX_IMAGES_MAGIC, LABELS_MAGIC as IDX_LABELS_MAGIC };
