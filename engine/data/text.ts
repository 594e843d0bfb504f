/**
 * Character-level text for language models, `--data text:FILE[:CONTEXT]` (any UTF-8 file).
 *
 * The text becomes a vocabulary of its distinct characters (code points, sorted; at most 256, since
 * a sample stores token ids as bytes) and windows of CONTEXT + 1 characters: window i covers
 * characters [i·CONTEXT, (i+1)·CONTEXT], so consecutive windows share one character and every
 * character after the first is a target exactly once. The last tenth of the windows (the end of the
 * text, a fixed held-out split that never depends on the seed) is the test split.
 *
 * A sample is its window's token ids; the per-sample label is unused (0): the model reads its
 * targets from the window itself. classNames holds the vocabulary, so a checkpoint's run can decode.
 */
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { UserError } from "../errors.ts";
import type { Dataset, Split } from "./types.ts";

export const TEXT_DEFAULT_CONTEXT = 64;
const MAX_TEXT_BYTES = 256 << 20;

export interface TextSpec {
  kind: "text";
  path: string;
  context: number;
}

/** text:FILE or text:FILE:CONTEXT (the last colon-separated part is the context when it is a number). */
export function parseTextSpec(spec: string, rest: string | undefined): TextSpec {
  if (!rest) throw new UserError(`data ${spec}: missing file, write text:FILE or text:FILE:CONTEXT`);
  const m = /^(.*):(\d+)$/.exec(rest);
  const context = m ? Number(m[2]) : TEXT_DEFAULT_CONTEXT;
  if (context < 1 || context > 4096) throw new UserError(`data ${spec}: CONTEXT must be in 1..4096`);
  return { kind: "text", path: resolve(m ? m[1]! : rest), context };
}

export function loadText(parsed: TextSpec, spec: string): Dataset {
  let size: number;
  try {
    size = statSync(parsed.path).size;
  } catch {
    throw new UserError(`data ${spec}: cannot read ${parsed.path}`);
  }
  if (size > MAX_TEXT_BYTES) throw new UserError(`data ${spec}: ${parsed.path} is ${size} bytes; text data is limited to ${MAX_TEXT_BYTES} bytes`);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(parsed.path));
  return textDataset(text, parsed.context, spec, "text");
}

/** Windows, vocabulary and split of one text (exported for tests and for other text sources). */
export function textDataset(text: string, context: number, source: string, name: string): Dataset {
  const chars = Array.from(text);
  const vocab = [...new Set(chars)].sort();
  if (vocab.length > 256) throw new UserError(`data ${source}: ${vocab.length} distinct characters; at most 256 are supported`);
  const windows = Math.floor((chars.length - 1) / context);
  if (windows < 2) throw new UserError(`data ${source}: ${chars.length} characters make fewer than two windows of ${context + 1}; use a longer text or a shorter context`);
  const id = new Map(vocab.map((c, i) => [c, i]));
  const ids = Uint8Array.from(chars, (c) => id.get(c)!);
  const testCount = Math.max(1, Math.floor(windows / 10));
  const trainCount = windows - testCount;
  const split = (first: number, count: number): Split => {
    const images = new Uint8Array(count * (context + 1));
    for (let w = 0; w < count; w++) images.set(ids.subarray((first + w) * context, (first + w) * context + context + 1), w * (context + 1));
    return { images, labels: new Uint8Array(count), count };
  };
  return {
    name,
    source,
    shape: [1, 1, context + 1],
    classes: vocab.length,
    train: split(0, trainCount),
    test: split(trainCount, testCount),
    normalize: { scale: 1, shift: 0 }, // token ids pass through as exact floats
    classNames: vocab,
  };
}
