/**
 * GEMM throughput against the machine's multiply-add ceiling, for both kernel builds.
 *
 *   npx bun bench/kernels.bench.ts            both builds
 *   npx bun bench/kernels.bench.ts relaxed    one build (relaxed | simd)
 *
 * Shapes: squares 128³…1024³, and the GEMMs of one training step of the MLP 784-256-128-10 at batch
 * 128 (forward gemm_nn; backward dW = xᵀ·dz as gemm_tn, dx = dz·Wᵀ as gemm_nt). The ceiling is
 * fma_ceiling: 12 independent f32x4 multiply-add chains, no memory traffic. One thread.
 *
 * The machine's speed drifts (shared cores, boost clocks), so "% ceiling" divides each GEMM by a
 * ceiling re-measured right after that GEMM's trial (median of a short burst), or by the up-front
 * ceiling when that is higher (shown beside it);
 * "best GFLOP/s" is from the fastest sample, what the kernel does when the machine is quiet.
 */
import { bench, do_not_optimize, run, summary } from "mitata";
import { GEMM_PACK_FLOATS, type KernelExports } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule, type KernelVariant } from "../engine/kernels/load.ts";
import { benchArgs } from "./args.ts";

type Layout = "nn" | "nt" | "tn";
interface Shape { layout: Layout; M: number; K: number; N: number; label: string }

const square = (n: number): Shape => ({ layout: "nn", M: n, K: n, N: n, label: `${n}³` });
const SHAPES: Shape[] = [
  square(128), square(256), square(512), square(1024),
  { layout: "nt", M: 512, K: 512, N: 512, label: "512³" },
  { layout: "tn", M: 512, K: 512, N: 512, label: "512³" },
  // MLP 784-256-128-10, batch 128: forward
  { layout: "nn", M: 128, K: 784, N: 256, label: "mlp fwd 1" },
  { layout: "nn", M: 128, K: 256, N: 128, label: "mlp fwd 2" },
  { layout: "nn", M: 128, K: 128, N: 10, label: "mlp fwd 3" },
  // backward: weight gradients
  { layout: "tn", M: 784, K: 128, N: 256, label: "mlp dW 1" },
  { layout: "tn", M: 256, K: 128, N: 128, label: "mlp dW 2" },
  { layout: "tn", M: 128, K: 128, N: 10, label: "mlp dW 3" },
  // backward: input gradients
  { layout: "nt", M: 128, K: 256, N: 784, label: "mlp dx 1" },
  { layout: "nt", M: 128, K: 128, N: 256, label: "mlp dx 2" },
  { layout: "nt", M: 128, K: 10, N: 128, label: "mlp dx 3" },
];

const CEILING_ITERS = 2_000_000;
const CEILING_FLOPS = CEILING_ITERS * 96;

const { positionals } = benchArgs("kernels.bench", { options: {}, allowPositionals: true });
const BUILDS: KernelVariant[] = ["relaxed", "simd"];
if (positionals.length > 1 || (positionals[0] !== undefined && !(BUILDS as string[]).includes(positionals[0]))) {
  console.error(`kernels.bench: ${positionals.join(" ")}: want one build, relaxed or simd, or none for both`);
  process.exit(2);
}
const variants: KernelVariant[] = positionals[0] ? [positionals[0] as KernelVariant] : BUILDS;

interface Case { variant: KernelVariant; shape: Shape | null; name: string; flops: number }
const cases: Case[] = [];
const kernelsOf = new Map<KernelVariant, KernelExports>();

/** The multiply-add ceiling now, in GFLOP/s: median of a ~0.1 s burst. */
function ceilingNow(k: KernelExports): number {
  const iters = CEILING_ITERS / 4;
  const times: number[] = [];
  for (let i = 0; i < 25; i++) {
    const t = performance.now();
    k.fma_ceiling(iters);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return (iters * 96) / (times[times.length >> 1]! * 1e6);
}
const ceilingAfter = new Map<string, number>();

for (const variant of variants) {
  const { module } = await loadKernelModule(variant);
  const maxFloats = Math.max(...SHAPES.map((s) => s.M * s.K + s.K * s.N + s.M * s.N + GEMM_PACK_FLOATS(s.M, s.K, s.N)));
  const pages = Math.ceil((maxFloats * 4 + 4 * 65536) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k: KernelExports = instantiateKernels(module, memory);
  kernelsOf.set(variant, k);
  const f32 = new Float32Array(memory.buffer);
  let s = 12345;
  for (let i = 1024 / 4; i < f32.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f32[i] = s / 2 ** 32 - 0.5;
  }

  summary(() => {
    const name = `${variant} fma_ceiling`;
    cases.push({ variant, shape: null, name, flops: CEILING_FLOPS });
    bench(name, () => do_not_optimize(k.fma_ceiling(CEILING_ITERS)));
    for (const shape of SHAPES) {
      const { layout, M, K, N } = shape;
      const A = 1024;
      const B = A + Math.ceil((M * K * 4) / 64) * 64;
      const C = B + Math.ceil((K * N * 4) / 64) * 64;
      const P = C + Math.ceil((M * N * 4) / 64) * 64;
      const fn = k[`gemm_${layout}`];
      const caseName = `${variant} gemm_${layout} ${shape.label} (${M}×${K}×${N})`;
      cases.push({ variant, shape, name: caseName, flops: 2 * M * K * N });
      bench(caseName, () => fn(C, A, B, M, K, N, 0, P));
    }
  });
}

const result = await run({
  format: "quiet",
  observe(trial) {
    const name = trial.runs[0]?.name ?? "";
    const variant = variants.find((v) => name.startsWith(`${v} `));
    if (variant) ceilingAfter.set(name, ceilingNow(kernelsOf.get(variant)!));
    return trial;
  },
});
const medianMs = new Map<string, number>();
const minMs = new Map<string, number>();
for (const trial of result.benchmarks) {
  const r = trial.runs[0];
  if (r?.stats) {
    medianMs.set(r.name, r.stats.p50 / 1e6);
    minMs.set(r.name, r.stats.min / 1e6);
  }
}

const rows: string[][] = [["build", "kernel", "shape (M×K×N)", "median ms", "GFLOP/s", "best GFLOP/s", "ceiling GFLOP/s", "% ceiling"]];
for (const variant of variants) {
  const ceilingCase = cases.find((c) => c.variant === variant && !c.shape)!;
  const ceiling = ceilingCase.flops / (medianMs.get(ceilingCase.name)! * 1e6);
  const best = ceilingCase.flops / (minMs.get(ceilingCase.name)! * 1e6);
  rows.push([variant, "fma_ceiling", "-", medianMs.get(ceilingCase.name)!.toFixed(3), ceiling.toFixed(1), best.toFixed(1), ceiling.toFixed(1), "100%"]);
  for (const c of cases.filter((c) => c.variant === variant && c.shape)) {
    const ms = medianMs.get(c.name)!;
    const gflops = c.flops / (ms * 1e6);
    // the larger of the re-measured and the up-front ceiling: a burst that lands in a slow moment
    // must not flatter the GEMM
    const near = Math.max(ceilingAfter.get(c.name) ?? 0, ceiling);
    const { layout, M, K, N, label } = c.shape!;
    const best = c.flops / (minMs.get(c.name)! * 1e6);
    rows.push([variant, `gemm_${layout} ${label}`, `${M}×${K}×${N}`, ms.toFixed(3), gflops.toFixed(1), best.toFixed(1), near.toFixed(1), `${((100 * gflops) / near).toFixed(0)}%`]);
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((cell, j) => (j >= 3 ? cell.padStart(widths[j]!) : cell.padEnd(widths[j]!))).join("  "));
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
}

/**
 * The target, measured paired: gemm_nn 512³ and a multiply-add burst of about the same length
 * alternate, and the median of per-pair ratios is reported. Speed drifts that last longer than one
 * pair (~12 ms) cancel out, which the table's separate medians cannot promise.
 */
const PAIRS = 60;
for (const variant of variants) {
  const k = kernelsOf.get(variant)!;
  const n = 512;
  const A = 1024;
  const B = A + n * n * 4;
  const C = B + n * n * 4;
  const P = C + n * n * 4;
  const gemmFlops = 2 * n * n * n;
  const burst = Math.round(gemmFlops / 96); // fma_ceiling does 96 flops per iteration
  const ratios: number[] = [];
  for (let i = 0; i < PAIRS + 5; i++) {
    let t = performance.now();
    k.gemm_nn(C, A, B, n, n, n, 0, P);
    const gemm = performance.now() - t;
    t = performance.now();
    do_not_optimize(k.fma_ceiling(burst));
    const ceiling = performance.now() - t;
    if (i >= 5) ratios.push(ceiling / gemm); // same flops: the time ratio is the GFLOP/s ratio
  }
  ratios.sort((a, b) => a - b);
  const q = (p: number) => (100 * ratios[Math.floor(p * (PAIRS - 1))]!).toFixed(0);
  console.log(`\n${variant}: gemm_nn 512³ / multiply-add ceiling, paired (median of ${PAIRS}): ${q(0.5)}%  (quartiles ${q(0.25)}–${q(0.75)}%; target ≥ 75%)`);
}
