/**
 * A learnable synthetic data set for tests and benchmarks: each class has a random prototype image
 * (uniform pixels in [0,1]); a sample is its class prototype plus Gaussian pixel noise, clamped and
 * quantized to u8 like a real image. A linear model separates the classes, a small MLP gets near
 * 100%, so "loss goes down" and "accuracy beats chance" are meaningful checks; the noise keeps it from
 * being memorized in one step.
 *
 * Deterministic from the seed alone: prototypes, train and test come from separate derived streams,
 * so changing testCount does not change the train samples.
 */
import { UserError } from "../errors.ts";
import { Rng } from "../rng.ts";
import { sampleSize, standardizeFromTrain, type Dataset, type Split } from "./types.ts";

export interface SyntheticOptions {
  shape: [number, number, number];
  classes: number;
  trainCount: number;
  testCount: number;
  seed: number;
  /** Std of the per-pixel noise, in units of the [0,1] pixel range (default 0.4). */
  noise?: number;
  /** Dataset.source to record (default "synthetic:<trainCount>"). */
  source?: string;
}

export function synthetic(options: SyntheticOptions): Dataset {
  const { shape, classes, trainCount, testCount, seed } = options;
  const noise = options.noise ?? 0.4;
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 1)) throw new UserError(`synthetic: shape must be three positive integers, got ${shape.join("×")}`);
  if (!Number.isInteger(classes) || classes < 1 || classes > 256) throw new UserError(`synthetic: classes must be an integer in 1..256 (labels are bytes), got ${classes}`);
  for (const [name, n] of [["trainCount", trainCount], ["testCount", testCount]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new UserError(`synthetic: ${name} must be a positive integer, got ${n}`);
  }
  if (!(noise >= 0) || !Number.isFinite(noise)) throw new UserError(`synthetic: noise must be a finite number ≥ 0, got ${noise}`);

  const pixels = sampleSize(shape);
  const prototypeRng = Rng.derive(seed, "synthetic", "prototypes");
  const prototypes = new Float64Array(classes * pixels);
  for (let i = 0; i < prototypes.length; i++) prototypes[i] = prototypeRng.nextFloat();

  const train = sampleSplit(Rng.derive(seed, "synthetic", "train"), prototypes, pixels, classes, trainCount, noise);
  const test = sampleSplit(Rng.derive(seed, "synthetic", "test"), prototypes, pixels, classes, testCount, noise);
  return {
    name: "synthetic",
    source: options.source ?? `synthetic:${trainCount}`,
    shape: [...shape],
    classes,
    train,
    test,
    normalize: standardizeFromTrain(train),
  };
}

/** Balanced labels (each class ⌊count/classes⌋ or one more), in shuffled order. */
function sampleSplit(rng: Rng, prototypes: Float64Array, pixels: number, classes: number, count: number, noise: number): Split {
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % classes;
  rng.shuffleInPlace(labels);
  const images = new Uint8Array(count * pixels);
  const jitter = new Float64Array(pixels);
  for (let i = 0; i < count; i++) {
    rng.fillNormal(jitter, 0, noise);
    const proto = labels[i]! * pixels;
    const out = i * pixels;
    for (let p = 0; p < pixels; p++) {
      const v = prototypes[proto + p]! + jitter[p]!;
      images[out + p] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return { images, labels, count };
}
