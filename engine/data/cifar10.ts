/**
 * CIFAR-10, "binary version" (cifar-10-binary.tar.gz, extracted): data_batch_1..5.bin for training,
 * test_batch.bin for test. Each file is a run of 3,073-byte records: one label byte (0..9), then
 * 3,072 pixel bytes as 1,024 red, 1,024 green, 1,024 blue, each row-major 32×32 — already the CHW
 * layout the engine wants, so records are split into labels and images without reordering.
 *
 * DIR may be the extracted `cifar-10-batches-bin/` itself or the folder that contains it.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { formatBytes, MAX_SPLIT_BYTES } from "./limits.ts";
import { standardizeFromTrain, type Dataset, type Split } from "./types.ts";

const CLASSES = 10;
const PIXELS = 3 * 32 * 32;
const RECORD = 1 + PIXELS;
const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
const TEST_FILE = "test_batch.bin";
const EXTRACTED_FOLDER = "cifar-10-batches-bin";

export async function loadCifar10(dir: string, source?: string): Promise<Dataset> {
  const root = findBatchesFolder(resolve(dir));
  const train = concatSplits(await Promise.all(TRAIN_FILES.map((name) => readBatch(join(root, name)))));
  const test = await readBatch(join(root, TEST_FILE));
  return {
    name: "cifar10",
    source: source ?? `cifar10:${resolve(dir)}`,
    shape: [3, 32, 32],
    classes: CLASSES,
    train,
    test,
    normalize: standardizeFromTrain(train),
    classNames: await readClassNames(join(root, "batches.meta.txt")),
  };
}

function findBatchesFolder(dir: string): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: no such directory (cifar10:DIR wants the extracted CIFAR-10 binary version)`);
  const nested = join(dir, EXTRACTED_FOLDER);
  if (!existsSync(join(dir, TEST_FILE)) && existsSync(nested)) return nested;
  if (!existsSync(join(dir, TEST_FILE)) && existsSync(join(dir, "cifar-10-binary.tar.gz"))) {
    throw new UserError(`${join(dir, "cifar-10-binary.tar.gz")}: extract it first (tar xzf), then point cifar10: at the folder`);
  }
  return dir;
}

async function readBatch(path: string): Promise<Split> {
  if (!existsSync(path)) {
    const present = readdirSync(join(path, "..")).slice(0, 8).join(", ") || "nothing";
    throw new UserError(`${path}: missing (CIFAR-10 binary needs ${TRAIN_FILES.join(", ")}, ${TEST_FILE}; the folder has ${present})`);
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    // A batch file is read whole: refuse one past what a split may hold before reading it.
    const size = statSync(path).size;
    if (size > MAX_SPLIT_BYTES) throw new UserError(`${path}: ${formatBytes(size)}, more than the ${formatBytes(MAX_SPLIT_BYTES)} one split may hold`);
    bytes = await Bun.file(path).bytes();
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${path}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new UserError(`${path}: size ${bytes.length} is not a positive multiple of ${RECORD} (1 label byte + ${PIXELS} pixel bytes per record); truncated or not the binary version?`);
  }
  const count = bytes.length / RECORD;
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = bytes[i * RECORD]!;
    if (label >= CLASSES) throw new UserError(`${path}: record ${i} has label ${label}, out of range 0..${CLASSES - 1} (CIFAR-100 or not CIFAR data?)`);
    labels[i] = label;
    images.set(bytes.subarray(i * RECORD + 1, (i + 1) * RECORD), i * PIXELS);
  }
  return { images, labels, count };
}

function concatSplits(splits: Split[]): Split {
  const count = splits.reduce((n, s) => n + s.count, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const s of splits) {
    images.set(s.images, at * PIXELS);
    labels.set(s.labels, at);
    at += s.count;
  }
  return { images, labels, count };
}

/** The class names file is optional: a hand-made folder may lack it. */
async function readClassNames(path: string): Promise<string[] | undefined> {
  if (!existsSync(path)) return undefined;
  const text = await Bun.file(path).text().catch(() => "");
  const names = text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  return names.length === CLASSES ? names : undefined;
}

/** Serializes a split as one CIFAR-10 binary batch (tests, and exporting synthetic data). */
export function encodeCifarBatch(split: Split): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(split.count * RECORD);
  for (let i = 0; i < split.count; i++) {
    out[i * RECORD] = split.labels[i]!;
    out.set(split.images.subarray(i * PIXELS, (i + 1) * PIXELS), i * RECORD + 1);
  }
  return out;
}
