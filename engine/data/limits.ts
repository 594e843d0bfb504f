/**
 * Limits on what a data file or spec may claim, checked before anything of that size is allocated:
 * the samples of a run are copied into its shared WebAssembly memory (at most 4 GiB, with the model,
 * optimizer state and activations beside them), so a data set past a quarter of that cannot train
 * anyway, and a file that claims more (a hand-edited header, a gzip bomb) is refused while it is
 * still a few bytes of header.
 */
import { UserError } from "../errors.ts";

/** Pixel bytes of one split (train or test) of one data set. */
export const MAX_SPLIT_BYTES = 1 << 30;

/**
 * deflate's largest possible expansion is about 1032:1 (a run of one byte), so a gzip file of n bytes
 * cannot inflate to more than this: a header claiming more is refused without inflating anything.
 */
export const MAX_DEFLATE_RATIO = 1032;

/** Refuse `count` samples of `sampleBytes` each when they cannot fit (a UserError naming `what`). */
export function checkSplitBytes(what: string, count: number, sampleBytes: number): void {
  const bytes = count * sampleBytes;
  if (bytes > MAX_SPLIT_BYTES) {
    throw new UserError(`${what}: ${count} samples of ${sampleBytes} bytes = ${formatBytes(bytes)}, more than the ${formatBytes(MAX_SPLIT_BYTES)} one split may hold`);
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${n} bytes`;
}
