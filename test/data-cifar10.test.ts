// CIFAR-10 binary loading: exact round trips (flat or nested folder) and fast-check-generated damage
// that must always surface as a one-line UserError naming the damaged batch file.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../engine/errors.ts";
import { encodeCifarBatch, loadCifar10, loadDataset, type Split } from "../engine/data/index.ts";
import { tempFolders } from "./tempdir.ts";

const RECORD = 3073;
const PIXELS = 3072;
const FILES = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"];

const freshDir = tempFolders("skein-cifar-");

/** A batch of 1..3 records: pixels and labels generated (and shrunk) by fast-check. */
const batchArb: fc.Arbitrary<Split> = fc
  .integer({ min: 1, max: 3 })
  .chain((count) => fc.record({ images: fc.uint8Array({ minLength: count * PIXELS, maxLength: count * PIXELS }), labels: fc.uint8Array({ minLength: count, maxLength: count, max: 9 }), count: fc.constant(count) }));
const batchesArb = fc.array(batchArb, { minLength: 6, maxLength: 6 });

function concat(splits: Split[]): Split {
  return {
    images: new Uint8Array(splits.flatMap((s) => Array.from(s.images))),
    labels: new Uint8Array(splits.flatMap((s) => Array.from(s.labels))),
    count: splits.reduce((n, s) => n + s.count, 0),
  };
}

function writeBatches(dir: string, batches: Split[]): void {
  FILES.forEach((name, i) => writeFileSync(join(dir, name), encodeCifarBatch(batches[i]!)));
}

describe("loadCifar10", () => {
  test("reads back exactly what was written, from the folder or its parent", async () => {
    await fc.assert(
      fc.asyncProperty(batchesArb, fc.boolean(), async (batches, nested) => {
        const dir = freshDir();
        const batchDir = nested ? join(dir, "cifar-10-batches-bin") : dir;
        mkdirSync(batchDir, { recursive: true });
        writeBatches(batchDir, batches);
        const d = await loadCifar10(dir);
        expect(d.shape).toEqual([3, 32, 32]);
        expect(d.classes).toBe(10);
        expect(d.train).toEqual(concat(batches.slice(0, 5)));
        expect(d.test).toEqual(batches[5]!);
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 25 },
    );
  });

  test("class names come from batches.meta.txt; the spec records itself", async () => {
    const dir = freshDir();
    writeBatches(dir, fc.sample(batchesArb, { numRuns: 1, seed: 1 })[0]!);
    const names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
    writeFileSync(join(dir, "batches.meta.txt"), names.join("\n") + "\n\n");
    const d = await loadDataset(`cifar10:${dir}`);
    expect(d.classNames).toEqual(names);
    expect(d.source).toBe(`cifar10:${dir}`);
  });

  type Damage =
    | { kind: "truncate"; at: number }
    | { kind: "append"; bytes: number }
    | { kind: "label"; record: number; value: number }
    | { kind: "empty" }
    | { kind: "missing" };
  const damageArb: fc.Arbitrary<Damage> = fc.oneof(
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.integer({ min: 1, max: RECORD - 1 }) }),
    fc.record({ kind: fc.constant("label" as const), record: fc.nat(), value: fc.integer({ min: 10, max: 255 }) }),
    fc.constant({ kind: "empty" as const }),
    fc.constant({ kind: "missing" as const }),
  );

  test("damage to any batch is a one-line UserError naming it (a cut on a record boundary just drops records)", async () => {
    await fc.assert(
      fc.asyncProperty(batchesArb, fc.nat(5), damageArb, async (batches, which, damage) => {
        const dir = freshDir();
        writeBatches(dir, batches);
        const name = FILES[which]!;
        const path = join(dir, name);
        const bytes = encodeCifarBatch(batches[which]!);
        let stillValid = false;
        switch (damage.kind) {
          case "truncate": {
            const at = damage.at % bytes.length;
            stillValid = at > 0 && at % RECORD === 0;
            writeFileSync(path, bytes.subarray(0, at));
            break;
          }
          case "append":
            writeFileSync(path, new Uint8Array([...bytes, ...new Uint8Array(damage.bytes)]));
            break;
          case "label":
            bytes[(damage.record % batches[which]!.count) * RECORD] = damage.value;
            writeFileSync(path, bytes);
            break;
          case "empty":
            writeFileSync(path, new Uint8Array(0));
            break;
          case "missing":
            unlinkSync(path);
            break;
        }
        let error: unknown;
        try {
          await loadCifar10(dir);
        } catch (err) {
          error = err;
        }
        if (stillValid) expect(error).toBeUndefined();
        else {
          expect(error).toBeInstanceOf(UserError);
          expect((error as Error).message).toContain(name);
          expect((error as Error).message).not.toContain("\n");
        }
        rmSync(dir, { recursive: true });
      }),
      { numRuns: 150 },
    );
  });

  test("an unextracted archive gets a hint; a missing folder is named", async () => {
    const dir = freshDir();
    writeFileSync(join(dir, "cifar-10-binary.tar.gz"), new Uint8Array(10));
    await expect(loadCifar10(dir)).rejects.toThrow("cifar-10-binary.tar.gz: extract it first");
    await expect(loadCifar10(join(dir, "nope"))).rejects.toThrow(`${join(dir, "nope")}: no such directory`);
  });
});
