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
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { standardizeFromTrain, type Dataset, type Split } from "./types.ts";

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
  const images = parseIdx(imagesPath, await readMaybeGzipped(imagesPath), IMAGES_MAGIC);
  const labels = parseIdx(labelsPath, await readMaybeGzipped(labelsPath), LABELS_MAGIC);
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

/** Reads a file, gunzipping when it is named .gz or starts with the gzip magic 1f 8b. */
async function readMaybeGzipped(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Bun.file(path).bytes();
  } catch (err) {
    throw new UserError(`${path}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  const looksGzipped = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (path.endsWith(".gz") && !looksGzipped) {
    throw new UserError(`${path}: not gzip data (starts with ${hexBytes(bytes.subarray(0, 4)) || "nothing: empty file"})`);
  }
  if (!looksGzipped) return bytes;
  try {
    return Bun.gunzipSync(bytes);
  } catch (err) {
    throw new UserError(`${path}: corrupt gzip data (${err instanceof Error ? err.message : String(err)}); re-download it`);
  }
}

/** Checks magic and sizes; the payload must be exactly the product of the header dims. */
function parseIdx(path: string, bytes: Uint8Array, wantMagic: number): IdxArray {
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
