// safetensors checkpoints: exact round trips, the on-disk layout, atomic writes, and a reader that
// answers every corrupted file with a UserError naming it (never a crash of another kind).
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  dtypeByteSize,
  readSafetensors,
  tensorAsFloat32,
  writeSafetensors,
  type SafetensorsDtype,
  type TensorToWrite,
} from "../engine/checkpoint/safetensors.ts";
import { UserError } from "../engine/errors.ts";

const scratch = await mkdtemp(join(tmpdir(), "skein-safetensors-"));
afterAll(() => rm(scratch, { recursive: true, force: true }));
let fileCounter = 0;
const freshPath = (label: string) => join(scratch, `${label}-${fileCounter++}.safetensors`);

const dtypes = Object.keys(dtypeByteSize) as SafetensorsDtype[];
const viewConstructors: Record<SafetensorsDtype, new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayBufferView> = {
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  U32: Uint32Array,
  U8: Uint8Array,
  I64: BigInt64Array,
};

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * A tensor with random bytes (so NaN payloads and negative zeros are covered), handed to the writer
 * as a typed array that starts part-way into a larger buffer, to check byteOffset is honoured.
 */
const tensorArb: fc.Arbitrary<TensorToWrite> = fc
  .record({
    dtype: fc.constantFrom(...dtypes),
    shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
    leadingElements: fc.integer({ min: 0, max: 3 }),
  })
  .chain(({ dtype, shape, leadingElements }) => {
    const size = dtypeByteSize[dtype];
    return fc.uint8Array({ minLength: numel(shape) * size, maxLength: numel(shape) * size }).map((bytes) => {
      const buffer = new ArrayBuffer((leadingElements + numel(shape)) * size);
      new Uint8Array(buffer).set(bytes, leadingElements * size);
      return { dtype, shape, data: new viewConstructors[dtype](buffer, leadingElements * size, numel(shape)) };
    });
  });

const nameArb = fc.string({ unit: "binary", maxLength: 12 }).filter((name) => name !== "__metadata__");

/** Built with defineProperty so that a name like "__proto__" is an ordinary key. */
function recordOf<T>(pairs: [string, T][]): Record<string, T> {
  const record: Record<string, T> = {};
  for (const [key, value] of pairs) {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return record;
}

const tensorSetArb = fc
  .uniqueArray(fc.tuple(nameArb, tensorArb), { maxLength: 6, selector: ([name]) => name })
  .map(recordOf);
const metadataArb = fc.option(
  fc.uniqueArray(fc.tuple(fc.string({ unit: "binary", maxLength: 10 }), fc.string({ unit: "binary", maxLength: 20 })), {
    maxLength: 4,
    selector: ([key]) => key,
  }).map(recordOf),
  { nil: undefined },
);

const bytesOf = (view: ArrayBufferView) => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

function expectSameContents(
  read: Awaited<ReturnType<typeof readSafetensors>>,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> | undefined,
) {
  // Written in record order with contiguous offsets, so data order is record order.
  expect([...read.tensors.keys()]).toEqual(Object.keys(tensors));
  for (const [name, written] of Object.entries(tensors)) {
    const stored = read.tensors.get(name)!;
    expect(stored.dtype).toBe(written.dtype);
    expect(stored.shape).toEqual(written.shape);
    expect(stored.data.byteOffset).toBe(0);
    expect(Buffer.from(stored.data).equals(Buffer.from(bytesOf(written.data)))).toBe(true);
  }
  expect(Object.entries(read.metadata)).toEqual(Object.entries(metadata ?? {}));
}

/** Header length field, header and data of a file, for tests that look at or tamper with the layout. */
function splitFile(file: Uint8Array) {
  const headerLength = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
  const headerText = new TextDecoder().decode(file.subarray(8, 8 + headerLength));
  return { headerLength, headerText, data: file.subarray(8 + headerLength) };
}

/** Assembles a file from a header (object or raw text) and data bytes, as another writer might. */
function assemble(header: unknown, data: Uint8Array, declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const file = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(file.buffer).setBigUint64(0, declaredLength ?? BigInt(json.byteLength), true);
  file.set(json, 8);
  file.set(data, 8 + json.byteLength);
  return file;
}

/** The reader's contract: a consistent result, or a one-line UserError naming the file. */
async function expectValidOrUserError(path: string): Promise<"valid" | "rejected"> {
  let contents;
  try {
    contents = await readSafetensors(path);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    const message = (error as UserError).message;
    expect(message.startsWith(`${path}: `)).toBe(true);
    expect(message).not.toContain("\n");
    return "rejected";
  }
  let total = 0;
  for (const tensor of contents.tensors.values()) {
    expect(tensor.data.byteLength).toBe(numel(tensor.shape) * dtypeByteSize[tensor.dtype]);
    total += tensor.data.byteLength;
  }
  const file = new Uint8Array(await readFile(path));
  expect(total).toBe(splitFile(file).data.byteLength);
  for (const value of Object.values(contents.metadata)) expect(typeof value).toBe("string");
  return "valid";
}

describe("round trip", () => {
  test("random tensor sets come back bitwise exact, metadata included", async () => {
    await fc.assert(
      fc.asyncProperty(tensorSetArb, metadataArb, async (tensors, metadata) => {
        const path = freshPath("roundtrip");
        await writeSafetensors(path, tensors, metadata);
        expectSameContents(await readSafetensors(path), tensors, metadata);
      }),
      { numRuns: 150 },
    );
  });

  test("the data area starts 8-byte aligned, the header padded with spaces", async () => {
    await fc.assert(
      fc.asyncProperty(tensorSetArb, metadataArb, async (tensors, metadata) => {
        const path = freshPath("aligned");
        await writeSafetensors(path, tensors, metadata);
        const { headerLength, headerText } = splitFile(new Uint8Array(await readFile(path)));
        expect((8 + headerLength) % 8).toBe(0);
        const json = headerText.trimEnd();
        expect(headerText.slice(json.length)).toMatch(/^ {0,7}$/);
        expect(() => JSON.parse(json)).not.toThrow();
      }),
      { numRuns: 60 },
    );
  });

  test("a tensor named __proto__ and metadata key __proto__ stay ordinary keys", async () => {
    const path = freshPath("proto");
    const tensors = recordOf<TensorToWrite>([["__proto__", { dtype: "F32", shape: [1], data: new Float32Array([3]) }]]);
    const metadata = recordOf([["__proto__", "x"]]);
    await writeSafetensors(path, tensors, metadata);
    expectSameContents(await readSafetensors(path), tensors, metadata);
  });

  test("tensorAsFloat32 converts every dtype", async () => {
    const path = freshPath("convert");
    await writeSafetensors(path, {
      f32: { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) },
      f64: { dtype: "F64", shape: [2], data: new Float64Array([0.25, -8]) },
      i32: { dtype: "I32", shape: [2], data: new Int32Array([-7, 9]) },
      u32: { dtype: "U32", shape: [1], data: new Uint32Array([4000000000]) },
      u8: { dtype: "U8", shape: [3], data: new Uint8Array([0, 1, 255]) },
      i64: { dtype: "I64", shape: [2], data: new BigInt64Array([-5n, 1n << 40n]) },
    });
    const { tensors } = await readSafetensors(path);
    const values = (name: string) => [...tensorAsFloat32(tensors.get(name)!)];
    expect(values("f32")).toEqual([1.5, -2]);
    expect(values("f64")).toEqual([0.25, -8]);
    expect(values("i32")).toEqual([-7, 9]);
    expect(values("u32")).toEqual([4000000000]);
    expect(values("u8")).toEqual([0, 1, 255]);
    expect(values("i64")).toEqual([-5, 2 ** 40]);
  });
});

describe("atomic write", () => {
  test("no temporary file remains after a write, and a rewrite replaces the old checkpoint", async () => {
    const folder = await mkdtemp(join(scratch, "atomic-"));
    const path = join(folder, "model.safetensors");
    await writeSafetensors(path, { w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
    await writeSafetensors(path, { w: { dtype: "F32", shape: [3], data: new Float32Array([4, 5, 6]) } }, { step: "2" });
    expect(await readdir(folder)).toEqual(["model.safetensors"]);
    const { tensors, metadata } = await readSafetensors(path);
    expect([...tensorAsFloat32(tensors.get("w")!)]).toEqual([4, 5, 6]);
    expect(metadata).toEqual({ step: "2" });
  });

  test("an unwritable destination is a UserError naming it, and leaves nothing behind", async () => {
    const folder = await mkdtemp(join(scratch, "unwritable-"));
    const path = join(folder, "missing-folder", "model.safetensors");
    const attempt = writeSafetensors(path, { w: { dtype: "U8", shape: [1], data: new Uint8Array([1]) } });
    await expect(attempt).rejects.toThrow(UserError);
    await attempt.catch((error: Error) => expect(error.message).toStartWith(`${path}: `));
    expect(await readdir(folder)).toEqual([]);
  });

  test("tensors that do not match their shape are refused before anything is written", async () => {
    const folder = await mkdtemp(join(scratch, "refused-"));
    const path = join(folder, "model.safetensors");
    const wrongSize = { w: { dtype: "F32" as const, shape: [3], data: new Float32Array(2) } };
    await expect(writeSafetensors(path, wrongSize)).rejects.toThrow(/needs 12/);
    const reserved = { __metadata__: { dtype: "U8" as const, shape: [0], data: new Uint8Array(0) } };
    await expect(writeSafetensors(path, reserved)).rejects.toThrow(/reserved/);
    expect(await readdir(folder)).toEqual([]);
  });
});

describe("compatibility with the format spec", () => {
  // Written byte by byte from the spec: an unpadded header (other writers need not align),
  // metadata first, little-endian data.
  const header =
    '{"__metadata__":{"format":"pt"},' +
    '"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
    '"step":{"dtype":"I64","shape":[],"data_offsets":[16,24]}}';
  const headerBytes = [...header].map((c) => c.charCodeAt(0));
  const handMade = new Uint8Array([
    headerBytes.length & 0xff, headerBytes.length >> 8, 0, 0, 0, 0, 0, 0,
    ...headerBytes,
    0x00, 0x00, 0x80, 0x3f, // 1.0
    0x00, 0x00, 0x00, 0x40, // 2.0
    0x00, 0x00, 0x00, 0xbf, // -0.5
    0x00, 0x00, 0x80, 0x3e, // 0.25
    0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 42
  ]);

  test("a hand-built file reads back", async () => {
    const path = freshPath("handmade");
    await writeFile(path, handMade);
    const { tensors, metadata } = await readSafetensors(path);
    expect(metadata).toEqual({ format: "pt" });
    expect([...tensors.keys()]).toEqual(["weight", "step"]);
    expect(tensors.get("weight")!.shape).toEqual([2, 2]);
    expect([...tensorAsFloat32(tensors.get("weight")!)]).toEqual([1, 2, -0.5, 0.25]);
    expect(tensors.get("step")!.shape).toEqual([]);
    expect([...tensorAsFloat32(tensors.get("step")!)]).toEqual([42]);
  });

  test("the writer produces exactly those bytes, plus alignment padding", async () => {
    const path = freshPath("writer-bytes");
    await writeSafetensors(
      path,
      {
        weight: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, -0.5, 0.25]) },
        step: { dtype: "I64", shape: [], data: new BigInt64Array([42n]) },
      },
      { format: "pt" },
    );
    const padded = Math.ceil(header.length / 8) * 8;
    const expected = new Uint8Array(8 + padded + 24).fill(0x20);
    expected.set([padded & 0xff, padded >> 8, 0, 0, 0, 0, 0, 0], 0);
    expected.set(headerBytes, 8);
    expected.set(handMade.subarray(8 + header.length), 8 + padded);
    expect([...new Uint8Array(await readFile(path))]).toEqual([...expected]);
  });
});

describe("bad files are a UserError naming the file", () => {
  const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: "F32", shape, data_offsets: offsets });
  const cases: [string, () => Uint8Array, RegExp][] = [
    ["shorter than 8 bytes", () => new Uint8Array([1, 0, 0]), /too short/],
    ["header length past the end", () => assemble({}, new Uint8Array(0), 9n), /past the end/],
    ["absurd header length", () => assemble({}, new Uint8Array(0), 2n ** 63n), /absurd/],
    ["header not UTF-8", () => assemble("\"\xff\"", new Uint8Array(0)).map((b, i) => (i === 9 ? 0xff : b)), /UTF-8/],
    ["header not JSON", () => assemble("{nope", new Uint8Array(0)), /not valid JSON/],
    ["header an array", () => assemble([], new Uint8Array(0)), /not a JSON object/],
    ["unknown dtype", () => assemble({ a: { dtype: "BF16", shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)), /unsupported dtype "BF16"/],
    ["negative dim", () => assemble({ a: f32([-1], [0, 0]) }, new Uint8Array(0)), /non-negative integers/],
    ["fractional dim", () => assemble({ a: f32([1.5], [0, 0]) }, new Uint8Array(0)), /non-negative integers/],
    ["offsets not integers", () => assemble({ a: { dtype: "U8", shape: [1], data_offsets: ["0", "1"] } }, new Uint8Array(1)), /data_offsets/],
    ["offsets reversed", () => assemble({ a: { dtype: "U8", shape: [0], data_offsets: [1, 0] } }, new Uint8Array(1)), /begin after end/],
    ["offsets out of range", () => assemble({ a: f32([1], [0, 4]) }, new Uint8Array(2)), /past the data area/],
    ["size not matching the shape", () => assemble({ a: f32([2], [0, 4]) }, new Uint8Array(4)), /needs 8/],
    ["overlap", () => assemble({ a: f32([1], [0, 4]), b: f32([1], [2, 6]) }, new Uint8Array(6)), /overlaps/],
    ["gap", () => assemble({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, new Uint8Array(12)), /gap/],
    ["trailing bytes", () => assemble({ a: f32([1], [0, 4]) }, new Uint8Array(5)), /unclaimed trailing/],
    ["metadata value not a string", () => assemble({ __metadata__: { epoch: 3 } }, new Uint8Array(0)), /metadata "epoch" is not a string/],
    ["metadata not an object", () => assemble({ __metadata__: "x" }, new Uint8Array(0)), /not an object/],
    ["tensor entry not an object", () => assemble({ a: 5 }, new Uint8Array(0)), /not an object/],
  ];
  for (const [problem, build, message] of cases) {
    test(problem, async () => {
      const path = freshPath("bad");
      await writeFile(path, build());
      const attempt = readSafetensors(path);
      await expect(attempt).rejects.toThrow(UserError);
      await attempt.catch((error: Error) => {
        expect(error.message).toStartWith(`${path}: `);
        expect(error.message).toMatch(message);
      });
    });
  }

  test("a missing file and a directory", async () => {
    const missing = join(scratch, "does-not-exist.safetensors");
    await expect(readSafetensors(missing)).rejects.toThrow(`${missing}: no such file`);
    await expect(readSafetensors(scratch)).rejects.toThrow(`${scratch}: is a directory`);
  });

  test("a header with surrounding whitespace and an empty tensor set is valid", async () => {
    const path = freshPath("empty");
    await writeFile(path, assemble(" {}   ", new Uint8Array(0)));
    const contents = await readSafetensors(path);
    expect(contents.tensors.size).toBe(0);
    expect(contents.metadata).toEqual({});
  });
});

describe("fuzzed corruptions of a valid file", () => {
  type Corruption =
    | { kind: "truncate"; at: number }
    | { kind: "overwrite-prefix"; edits: [number, number][] }
    | { kind: "overwrite-anywhere"; edits: [number, number][] }
    | { kind: "declared-length"; length: bigint }
    | { kind: "append"; garbage: Uint8Array }
    | { kind: "edit-json"; target: number; field: string; value: unknown };

  const editsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 });
  const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("overwrite-prefix" as const), edits: editsArb }),
    fc.record({ kind: fc.constant("overwrite-anywhere" as const), edits: editsArb }),
    fc.record({
      kind: fc.constant("declared-length" as const),
      length: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 4096n })),
    }),
    fc.record({ kind: fc.constant("append" as const), garbage: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
    fc.record({
      kind: fc.constant("edit-json" as const),
      // Which header entry to edit (modulo the count; one past the end adds a new entry).
      target: fc.nat(),
      field: fc.constantFrom("dtype", "shape", "data_offsets", "*entry*", "*delete*", "*metadata*"),
      value: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom("F32", "F64", "I64", "U8", "BF16"),
        fc.array(fc.integer({ min: -2, max: 40 }), { maxLength: 3 }),
      ),
    }),
  );

  function corrupt(file: Uint8Array, corruption: Corruption): Uint8Array {
    const { headerLength, headerText, data } = splitFile(file);
    switch (corruption.kind) {
      case "truncate":
        return file.slice(0, corruption.at % (file.byteLength + 1));
      case "overwrite-prefix":
      case "overwrite-anywhere": {
        const copy = file.slice();
        const span = corruption.kind === "overwrite-prefix" ? 8 + headerLength : copy.byteLength;
        for (const [position, value] of corruption.edits) copy[position % span] = value;
        return copy;
      }
      case "declared-length": {
        const copy = file.slice();
        new DataView(copy.buffer).setBigUint64(0, corruption.length, true);
        return copy;
      }
      case "append": {
        const longer = new Uint8Array(file.byteLength + corruption.garbage.byteLength);
        longer.set(file);
        longer.set(corruption.garbage, file.byteLength);
        return longer;
      }
      case "edit-json": {
        const header = JSON.parse(headerText) as Record<string, any>;
        const names = Object.keys(header);
        const name = names[corruption.target % (names.length + 1)] ?? `extra-${corruption.target}`;
        if (corruption.field === "*delete*") delete header[name];
        else if (corruption.field === "*entry*") header[name] = corruption.value;
        else if (corruption.field === "*metadata*") header.__metadata__ = { ...header.__metadata__, [name]: corruption.value };
        else if (typeof header[name] === "object" && header[name] !== null) header[name][corruption.field] = corruption.value;
        else header[name] = { dtype: "U8", shape: [0], data_offsets: [0, 0], [corruption.field]: corruption.value };
        return assemble(header, data);
      }
    }
  }

  test("every corruption reads back valid or throws UserError naming the file", async () => {
    const outcomes = { valid: 0, rejected: 0 };
    await fc.assert(
      fc.asyncProperty(tensorSetArb, metadataArb, corruptionArb, async (tensors, metadata, corruption) => {
        const original = freshPath("original");
        await writeSafetensors(original, tensors, metadata);
        const damaged = freshPath("damaged");
        await writeFile(damaged, corrupt(new Uint8Array(await readFile(original)), corruption));
        outcomes[await expectValidOrUserError(damaged)]++;
        await rm(original);
        await rm(damaged);
      }),
      { numRuns: 400 },
    );
    // Both branches must have been exercised, or the property proved little.
    expect(outcomes.valid).toBeGreaterThan(0);
    expect(outcomes.rejected).toBeGreaterThan(0);
  });
});
