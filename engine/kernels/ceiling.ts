/**
 * The multiply-add ceiling of one core: GFLOP/s of a loop that only multiplies and adds in registers
 * (the kernel module's fma_ceiling), the limit no kernel can pass. It is measured once per machine and
 * kernel build and cached in the user's cache folder, so a run's summary can say how close to the
 * machine's limit it came without spending a second on every run.
 *
 * Cores here are often shared, so a measurement takes the best of several short bursts: the ceiling
 * is what a core can do, not what it did while a neighbour was busy.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { cpus, homedir } from "node:os";
import { join } from "node:path";
import { instantiateKernels, loadKernelModule } from "./load.ts";

const FLOPS_PER_ITERATION = 96; // 12 f32x4 multiply-adds
const BURST_ITERATIONS = 2_000_000;
const BURSTS = 12;

export interface Ceiling {
  gflopsPerCore: number;
  /** Which build and machine it was measured for (the cache key). */
  key: string;
  /** True when read from the cache rather than measured now. */
  cached: boolean;
}

export function ceilingCacheFile(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "skein", "ceiling.json");
}

/** Measure now: the best of BURSTS bursts on this thread. */
export async function measureCeiling(): Promise<{ gflopsPerCore: number; variant: string }> {
  const { module, variant } = await loadKernelModule();
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const k = instantiateKernels(module, memory);
  k.fma_ceiling(BURST_ITERATIONS / 10); // warm the JIT
  let best = 0;
  for (let i = 0; i < BURSTS; i++) {
    const t = performance.now();
    k.fma_ceiling(BURST_ITERATIONS);
    const seconds = (performance.now() - t) / 1000;
    best = Math.max(best, (BURST_ITERATIONS * FLOPS_PER_ITERATION) / seconds / 1e9);
  }
  return { gflopsPerCore: best, variant };
}

/** The cached ceiling for this machine and build, measured and cached first if there is none. */
export async function multiplyAddCeiling(): Promise<Ceiling> {
  const { variant } = await loadKernelModule();
  const key = `${variant} | ${cpus()[0]?.model ?? "unknown cpu"} | ${cpus().length} cpus`;
  const file = ceilingCacheFile();
  let cache: Record<string, number> = {};
  try {
    cache = JSON.parse(await readFile(file, "utf8"));
    const known = cache[key];
    if (typeof known === "number" && known > 0) return { gflopsPerCore: known, key, cached: true };
  } catch {
    cache = {}; // absent or unreadable: measure
  }
  const { gflopsPerCore } = await measureCeiling();
  try {
    await mkdir(join(file, ".."), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ ...cache, [key]: gflopsPerCore }, null, 2) + "\n");
    await rename(tmp, file); // never a half-written cache
  } catch {
    // A read-only home: measure again next time.
  }
  return { gflopsPerCore, key, cached: false };
}

/**
 * The ceiling measured during a run, in that run's conditions: after each epoch but the first (whose
 * aftermath still has the optimising compilers at work; a one-epoch run samples after it anyway),
 * while the workers wait, a short window of the multiply-add loop on this thread, its length a small
 * share of the epoch's. A window's figure is its mean (every FLOP over every second, as the run's
 * GFLOP/s is), so a machine busy with other work lowers it as it lowered the epoch; the ceiling is the
 * best window's, so that the run's own stragglers (compilation, garbage collection) that can still be
 * running between epochs do not lower it. Measured after a 5-epoch MLP run: windows right after
 * epoch 0 gave 20 GFLOP/s, later ones 54-57, a separate process over the training's length 58.
 * One thread: with several workers the run's cores were all busy and the ceiling's were not, which
 * can only lower the run's fraction.
 */
export class CeilingProbe {
  private best = 0;

  private constructor(private readonly k: ReturnType<typeof instantiateKernels>) {}

  static async open(): Promise<CeilingProbe> {
    const { module } = await loadKernelModule();
    const k = instantiateKernels(module, new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }));
    for (let i = 0; i < 40; i++) k.fma_ceiling(PROBE_BURST); // the optimising tier, as the trained kernels are by then
    return new CeilingProbe(k);
  }

  /** Run the loop for about `ms` milliseconds (whole bursts of about 0.1 ms); returns the window's GFLOP/s. */
  sample(ms: number): number {
    const started = performance.now();
    let now = started;
    let bursts = 0;
    while (now - started < ms) {
      this.k.fma_ceiling(PROBE_BURST);
      bursts++;
      now = performance.now();
    }
    const gflops = (bursts * PROBE_BURST * FLOPS_PER_ITERATION) / ((now - started) / 1000) / 1e9;
    this.best = Math.max(this.best, gflops);
    return gflops;
  }

  /** The best window's GFLOP/s so far; 0 before the first. */
  gflopsPerCore(): number {
    return this.best;
  }
}

/** Whether to sample after epoch `epoch` (0-based) of `epochs`: every one but the first, unless it is the only one. */
export const probeAfter = (epoch: number, epochs: number): boolean => epoch > 0 || epochs === 1;

const PROBE_BURST = 60_000; // 5.76 MFLOP: about 0.1 ms at 60 GFLOP/s

/** The window after an epoch of `epochSeconds`: 3% of it, at least 4 ms and at most 100 ms. */
export const probeMs = (epochSeconds: number): number => Math.min(100, Math.max(4, 30 * epochSeconds));
