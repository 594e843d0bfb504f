// IDX loading: exact round trips (raw, gzip, both spellings), fast-check-generated corruptions that
// must always surface as a one-line UserError naming the damaged file, and the real Fashion-MNIST.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { existsSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import { encodeIdx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, loadDataset, loadIdx } from "../engine/data/index.ts";
import { tempFolders } from "./tempdir.ts";

const freshDir = tempFolders("skein-idx-");

interface Split {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}
interface IdxSet {
  rows: number;
  cols: number;
  train: Split;
  test: Split;
}

const splitArb = (rows: number, cols: number) =>
  fc.integer({ min: 1, max: 8 }).chain((count) =>
    fc.record({
      images: fc.uint8Array({ minLength: count * rows * cols, maxLength: count * rows * cols }),
      labels: fc.uint8Array({ minLength: count, maxLength: count, max: 9 }),
      count: fc.constant(count),
    }),
  );
const idxSetArb: fc.Arbitrary<IdxSet> = fc
  .tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }))
  .chain(([rows, cols]) => fc.record({ rows: fc.constant(rows), cols: fc.constant(cols), train: splitArb(rows, cols), test: splitArb(rows, cols) }));

type Role = "trainImages" | "trainLabels" | "testImages" | "testLabels";
const ROLES: Role[] = ["trainImages", "trainLabels", "testImages", "testLabels"];
const STEMS: Record<Role, [string, string]> = {
  trainImages: ["train-images", "idx3-ubyte"],
  trainLabels: ["train-labels", "idx1-ubyte"],
  testImages: ["t10k-images", "idx3-ubyte"],
  testLabels: ["t10k-labels", "idx1-ubyte"],
};

function fileName(role: Role, dotted: boolean, gzip: boolean): string {
  const [stem, kind] = STEMS[role];
  return `${stem}${dotted ? "." : "-"}${kind}${gzip ? ".gz" : ""}`;
}

/** The uncompressed IDX bytes of each file of a set. */
function encodeSet(set: IdxSet): Record<Role, Uint8Array<ArrayBuffer>> {
  return {
    trainImages: encodeIdx(IDX_IMAGES_MAGIC, [set.train.count, set.rows, set.cols], set.train.images),
    trainLabels: encodeIdx(IDX_LABELS_MAGIC, [set.train.count], set.train.labels),
    testImages: encodeIdx(IDX_IMAGES_MAGIC, [set.test.count, set.rows, set.cols], set.test.images),
    testLabels: encodeIdx(IDX_LABELS_MAGIC, [set.test.count], set.test.labels),
  };
}

function writeSet(dir: string, contents: Record<Role, Uint8Array<ArrayBuffer>>, gzip: boolean, dotted: boolean): Record<Role, string> {
  const names = {} as Record<Role, string>;
  for (const role of ROLES) {
    names[role] = fileName(role, dotted, gzip);
    writeFileSync(join(dir, names[role]), gzip ? Bun.gzipSync(contents[role]) : contents[role]);
  }
  return names;
}

/** Runs the load; returns the error, or undefined if it loaded. Anything but a UserError fails. */
async function loadError(dir: string): Promise<UserError | undefined> {
  try {
    await loadIdx(dir);
    return undefined;
  } catch (err) {
    if (!(err instanceof UserError)) throw new Error(`expected a UserError, got ${String(err)}`);
    expect(err.message).not.toContain("\n");
    return err;
  }
}

describe("loadIdx round trip", () => {
  test("reads back exactly what was written, raw or gzipped, dash or dot spelling", async () => {
    await fc.assert(
      fc.asyncProperty(idxSetArb, fc.boolean(), fc.boolean(), async (set, gzip, dotted) => {
        const dir = freshDir();
        writeSet(dir, encodeSet(set), gzip, dotted);
        const d = await loadIdx(dir);
        expect(d.shape).toEqual([1, set.rows, set.cols]);
        expect(d.classes).toBe(10);
        expect(d.train).toEqual(set.train);
        expect(d.test).toEqual(set.test);
        expect(Number.isFinite(d.normalize.scale) && Number.isFinite(d.normalize.shift)).toBe(true);
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 60 },
    );
  });

  test("a mix of raw and gzipped files, and the spec records itself", async () => {
    const set = fc.sample(idxSetArb, { numRuns: 1, seed: 42 })[0]!;
    const contents = encodeSet(set);
    const dir = freshDir();
    writeFileSync(join(dir, fileName("trainImages", false, true)), Bun.gzipSync(contents.trainImages));
    writeFileSync(join(dir, fileName("trainLabels", false, false)), contents.trainLabels);
    writeFileSync(join(dir, fileName("testImages", true, false)), contents.testImages);
    writeFileSync(join(dir, fileName("testLabels", true, true)), Bun.gzipSync(contents.testLabels));
    const d = await loadDataset(`idx:${dir}`);
    expect(d.source).toBe(`idx:${dir}`);
    expect(d.train).toEqual(set.train);
    expect(d.test).toEqual(set.test);
  });

  test("labels ≥ the declared class count are rejected", async () => {
    const set = fc.sample(idxSetArb, { numRuns: 1, seed: 7 })[0]!;
    for (const split of [set.train, set.test]) split.labels.forEach((l, i) => (split.labels[i] = l % 4));
    set.test.labels[0] = 4;
    const dir = freshDir();
    writeSet(dir, encodeSet(set), false, false);
    await expect(loadIdx(dir, { classes: 4 })).rejects.toThrow("t10k-labels-idx1-ubyte: label 4 at index 0 is out of range 0..3");
  });
});

/** Damage done to one file's uncompressed content, or (gz) to its compressed bytes. */
type Corruption =
  | { kind: "truncate"; fraction: number; layer: "content" | "gzip" }
  | { kind: "headerByte"; position: number; xor: number }
  | { kind: "magic"; value: number }
  | { kind: "append"; bytes: Uint8Array }
  | { kind: "labelOutOfRange"; index: number; value: number }
  | { kind: "countMismatch"; delta: number }
  | { kind: "garbageGzip"; bytes: Uint8Array }
  | { kind: "notGzip"; bytes: Uint8Array }
  | { kind: "missing" };

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), fraction: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), layer: fc.constantFrom("content" as const, "gzip" as const) }),
  fc.record({ kind: fc.constant("headerByte" as const), position: fc.nat(15), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("magic" as const), value: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ kind: fc.constant("labelOutOfRange" as const), index: fc.nat(), value: fc.integer({ min: 10, max: 255 }) }),
  fc.record({ kind: fc.constant("countMismatch" as const), delta: fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0) }),
  fc.record({ kind: fc.constant("garbageGzip" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant("notGzip" as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  fc.constant({ kind: "missing" as const }),
);

describe("loadIdx corruptions", () => {
  test("every corruption of any file is a one-line UserError naming that file", async () => {
    await fc.assert(
      fc.asyncProperty(idxSetArb, fc.constantFrom(...ROLES), corruptionArb, fc.boolean(), fc.boolean(), async (set, role, corruption, gzipArg, dotted) => {
        const isLabels = role.endsWith("Labels");
        // Some damage only makes sense for one kind of file or one encoding.
        if (corruption.kind === "labelOutOfRange" || corruption.kind === "countMismatch") fc.pre(isLabels);
        const gzip = gzipArg || corruption.kind === "garbageGzip" || corruption.kind === "notGzip" || (corruption.kind === "truncate" && corruption.layer === "gzip");
        const contents = encodeSet(set);
        const split = role.startsWith("train") ? set.train : set.test;
        let content = contents[role];
        const wantMagic = isLabels ? IDX_LABELS_MAGIC : IDX_IMAGES_MAGIC;
        switch (corruption.kind) {
          case "truncate":
            if (corruption.layer === "content") content = content.slice(0, Math.floor(corruption.fraction * content.length));
            break;
          case "headerByte": {
            const headerLength = isLabels ? 8 : 16;
            content = content.slice();
            content[corruption.position % headerLength] ^= corruption.xor;
            break;
          }
          case "magic":
            fc.pre(corruption.value !== wantMagic);
            content = content.slice();
            new DataView(content.buffer).setUint32(0, corruption.value, false);
            break;
          case "append":
            content = new Uint8Array([...content, ...corruption.bytes]);
            break;
          case "labelOutOfRange":
            content = content.slice();
            content[8 + (corruption.index % split.count)] = corruption.value;
            break;
          case "countMismatch": {
            const count = Math.max(0, split.count + corruption.delta);
            fc.pre(count !== split.count);
            content = encodeIdx(IDX_LABELS_MAGIC, [count], new Uint8Array(count));
            break;
          }
        }
        const dir = freshDir();
        const names = writeSet(dir, { ...contents, [role]: content }, gzip, dotted);
        const path = join(dir, names[role]);
        if (corruption.kind === "missing") unlinkSync(path);
        if (corruption.kind === "truncate" && corruption.layer === "gzip") {
          const gz = Bun.gzipSync(content);
          writeFileSync(path, gz.subarray(0, Math.floor(corruption.fraction * gz.length)));
        }
        if (corruption.kind === "garbageGzip") writeFileSync(path, new Uint8Array([0x1f, 0x8b, ...corruption.bytes]));
        if (corruption.kind === "notGzip") {
          const bytes = corruption.bytes.slice();
          if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes[1] = 0;
          writeFileSync(path, bytes);
        }
        const error = await loadError(dir);
        expect(error).toBeInstanceOf(UserError);
        expect(error!.message).toContain(names[role]);
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 250 },
    );
  });

  test("a flipped byte inside the gzip stream: a UserError naming the file, or (undetectable) the same data", async () => {
    await fc.assert(
      fc.asyncProperty(idxSetArb, fc.constantFrom(...ROLES), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 1, max: 255 }), async (set, role, where, xor) => {
        const dir = freshDir();
        const names = writeSet(dir, encodeSet(set), true, false);
        const path = join(dir, names[role]);
        const gz = await Bun.file(path).bytes();
        gz[Math.floor(where * gz.length)] ^= xor; // header fields like mtime are not checked by gzip
        writeFileSync(path, gz);
        const error = await loadError(dir);
        if (error) expect(error.message).toContain(names[role]);
        else {
          const d = await loadIdx(dir);
          expect(d.train).toEqual(set.train);
          expect(d.test).toEqual(set.test);
        }
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 150 },
    );
  });

  test("arbitrary bytes in place of a file: a UserError naming it (or, by luck, a valid file)", async () => {
    await fc.assert(
      fc.asyncProperty(idxSetArb, fc.constantFrom(...ROLES), fc.uint8Array({ maxLength: 80 }), async (set, role, bytes) => {
        const dir = freshDir();
        const names = writeSet(dir, { ...encodeSet(set), [role]: bytes }, false, false);
        const error = await loadError(dir);
        if (error) expect(error.message).toContain(names[role]);
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 150 },
    );
  });

  test("train and test image sizes must agree; a missing folder is named", async () => {
    const set = fc.sample(idxSetArb, { numRuns: 1, seed: 3 })[0]!;
    const contents = encodeSet(set);
    contents.testImages = encodeIdx(IDX_IMAGES_MAGIC, [set.test.count, set.rows + 1, set.cols], new Uint8Array(set.test.count * (set.rows + 1) * set.cols));
    const dir = freshDir();
    writeSet(dir, contents, false, false);
    await expect(loadIdx(dir)).rejects.toThrow("t10k-images-idx3-ubyte: images are");
    await expect(loadIdx(join(dir, "nope"))).rejects.toThrow(`${join(dir, "nope")}: no such directory`);
  });
});

// Real Fashion-MNIST from the Debian/Ubuntu package `dataset-fashion-mnist`.
const FASHION_DIR = "/usr/share/datasets/fashion-mnist";
const haveFashion = existsSync(FASHION_DIR);
describe("Fashion-MNIST", () => {
  test.skipIf(!haveFashion)(
    haveFashion ? `idx:${FASHION_DIR} loads 60,000 + 10,000 28×28 images` : `SKIPPED: ${FASHION_DIR} not present (apt-get install -y dataset-fashion-mnist)`,
    async () => {
      const d = await loadDataset(`idx:${FASHION_DIR}`);
      expect(d.name).toBe("fashion-mnist");
      expect(d.shape).toEqual([1, 28, 28]);
      expect([d.train.count, d.test.count]).toEqual([60_000, 10_000]);
      const counts = new Array(10).fill(0);
      for (const l of d.train.labels) counts[l]++;
      expect(counts).toEqual(new Array(10).fill(6000));
      // Fashion-MNIST pixel statistics: mean ≈ 0.286, std ≈ 0.353.
      const std = 1 / (255 * d.normalize.scale);
      expect(-d.normalize.shift * std).toBeCloseTo(0.286, 2);
      expect(std).toBeCloseTo(0.353, 2);
    },
  );
});
