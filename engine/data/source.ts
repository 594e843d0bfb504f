/**
 * The `--data` spec: one string names where samples come from.
 *   digits             the embedded 10,000 real digits (default; no download)
 *   idx:DIR            MNIST-layout IDX files (MNIST, Fashion-MNIST, ...), raw or .gz
 *   cifar10:DIR        CIFAR-10 binary version
 *   synthetic[:N[:SEED]]  N train samples (default 2000) of learnable 1×28×28, 10-class data
 *   text:FILE[:CONTEXT]   characters of a UTF-8 file in windows of CONTEXT + 1 (default 64)
 */
import { resolve } from "node:path";
import { UserError } from "../errors.ts";
import { checkSplitBytes } from "./limits.ts";
import { loadCifar10 } from "./cifar10.ts";
import { loadEmbeddedDigits } from "./embedded.ts";
import { loadIdx } from "./idx.ts";
import { synthetic } from "./synthetic.ts";
import { loadText, parseTextSpec, type TextSpec } from "./text.ts";
import type { Dataset } from "./types.ts";

export type DataSpec =
  | { kind: "digits" }
  | { kind: "idx"; dir: string }
  | { kind: "cifar10"; dir: string }
  | { kind: "synthetic"; trainCount: number; seed: number }
  | TextSpec;

export const DEFAULT_DATA_SPEC = "digits";
const SYNTHETIC_DEFAULT_COUNT = 2000;
/** Synthetic data has its own fixed seed: the data set is part of the spec, not of the training seed. */
const SYNTHETIC_DEFAULT_SEED = 1;
/** 1×28×28 u8 pixels. */
const SYNTHETIC_SAMPLE_BYTES = 28 * 28;
const VALID = "digits, idx:DIR, cifar10:DIR, synthetic, synthetic:N, synthetic:N:SEED, text:brown|names|FILE[:CONTEXT]";

export function parseDataSpec(spec: string): DataSpec {
  const colon = spec.indexOf(":");
  const scheme = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? undefined : spec.slice(colon + 1);
  switch (scheme) {
    case "digits":
      if (rest !== undefined) throw new UserError(`data ${spec}: digits takes no argument`);
      return { kind: "digits" };
    case "idx":
    case "cifar10":
      if (!rest) throw new UserError(`data ${spec}: missing folder, write ${scheme}:DIR`);
      return { kind: scheme, dir: resolve(rest) };
    case "synthetic": {
      if (rest === undefined) return { kind: "synthetic", trainCount: SYNTHETIC_DEFAULT_COUNT, seed: SYNTHETIC_DEFAULT_SEED };
      const [countText, seedText, ...extra] = rest.split(":");
      const trainCount = Number(countText);
      const seed = seedText === undefined ? SYNTHETIC_DEFAULT_SEED : Number(seedText);
      if (extra.length > 0 || !/^\d+$/.test(countText ?? "") || trainCount < 1 || trainCount > 10_000_000) {
        throw new UserError(`data ${spec}: want synthetic:N with N a whole number of train samples in 1..10000000`);
      }
      if (seedText !== undefined && !/^\d+$/.test(seedText)) throw new UserError(`data ${spec}: SEED must be a non-negative integer`);
      // Train and test (a quarter as many) are generated in memory, then copied into the run's arena.
      checkSplitBytes(`data ${spec}`, trainCount, SYNTHETIC_SAMPLE_BYTES);
      return { kind: "synthetic", trainCount, seed };
    }
    case "text":
      return parseTextSpec(spec, rest);
    default:
      throw new UserError(`data ${JSON.stringify(spec)}: unknown source; valid: ${VALID}`);
  }
}

/** Parses and loads. Every problem with the spec or the files is a UserError naming them. */
export async function loadDataset(spec: string = DEFAULT_DATA_SPEC): Promise<Dataset> {
  const parsed = parseDataSpec(spec);
  switch (parsed.kind) {
    case "digits":
      return loadEmbeddedDigits();
    case "idx":
      return loadIdx(parsed.dir, { source: spec });
    case "cifar10":
      return loadCifar10(parsed.dir, spec);
    case "synthetic":
      return synthetic({
        shape: [1, 28, 28],
        classes: 10,
        trainCount: parsed.trainCount,
        // 20% held out, like the embedded digits.
        testCount: Math.max(1, Math.ceil(parsed.trainCount / 4)),
        seed: parsed.seed,
        source: spec,
      });
    case "text":
      return loadText(parsed, spec);
  }
}
