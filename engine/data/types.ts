/**
 * What every data source produces. Images stay as bytes until a batch is built: a u8 sample is a
 * quarter of an f32 one, so a whole training set (MNIST 47 MB, CIFAR-10 150 MB) fits in memory as u8
 * and the batcher converts only the samples it is about to feed.
 */

/** One split of a data set: `count` samples, sample-major, C·H·W bytes each (CHW for colour). */
export interface Split {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export interface Dataset {
  /** Short name for reports: "digits", "fashion-mnist", "cifar10", "synthetic". */
  name: string;
  /** The spec it was loaded from, e.g. "idx:/usr/share/datasets/fashion-mnist" (reproduces the run). */
  source: string;
  /** [channels, height, width] of one sample. */
  shape: [number, number, number];
  classes: number;
  train: Split;
  test: Split;
  /** pixel f32 = byte · scale + shift. See `standardizeFromTrain`. */
  normalize: { scale: number; shift: number };
  /** Human names of the classes, where the source ships them (CIFAR-10's batches.meta.txt). */
  classNames?: string[];
}

/** Bytes per sample: C·H·W. */
export function sampleSize(shape: readonly [number, number, number]): number {
  return shape[0] * shape[1] * shape[2];
}

/**
 * Standardization to zero mean and unit variance over all train pixels (the usual MNIST
 * 0.1307/0.3081 treatment, computed instead of hard-coded so every source gets it):
 * scale = 1/(255·std), shift = −mean/std with mean and std of byte/255.
 *
 * Why standardize rather than plain 1/255: the weight initializers (He/Xavier) assume inputs of
 * roughly unit variance; MNIST bytes/255 have mean 0.13 and std 0.31, so without it the first
 * layer starts ~3× too small and one learning rate does not fit every data set.
 * Why the train split only: the test split must not influence anything the model sees.
 * Why one scalar and not per channel: it keeps the batcher a single fused multiply-add; CIFAR's
 * channel means differ by only a few percent.
 */
export function standardizeFromTrain(train: Split): { scale: number; shift: number } {
  const bytes = train.images;
  if (bytes.length === 0) return { scale: 1 / 255, shift: 0 };
  const histogram = new Float64Array(256);
  for (let i = 0; i < bytes.length; i++) histogram[bytes[i]!]++;
  let sum = 0;
  let sumSq = 0;
  for (let v = 0; v < 256; v++) {
    sum += histogram[v]! * v;
    sumSq += histogram[v]! * v * v;
  }
  const mean = sum / bytes.length / 255;
  const variance = Math.max(0, sumSq / bytes.length / (255 * 255) - mean * mean);
  const std = Math.sqrt(variance);
  // A constant image set has no spread to divide by: fall back to centring only.
  const safeStd = std > 1e-6 ? std : 1;
  return { scale: 1 / (255 * safeStd), shift: -mean / safeStd };
}
