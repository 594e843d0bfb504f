/**
 * Residual CNNs, side by side in one run:
 *  1. 3×3 convolutions of resnet:20 (28×28×1 and 32×32×3 inputs, batch 64), as the Conv2d layer runs
 *     them: GEMM-equivalent GFLOP/s (2·N·Cout·Cin·9·OH·OW per forward, twice that per backward; Winograd
 *     does fewer multiplies for the same result, so this can pass 100%) as a share of the multiply-add
 *     ceiling measured right after each trial over the same wall time; where the layer takes the
 *     Winograd path, also its speed against im2col + GEMM and the direct 3×3 kernel, paired.
 *  2. resnet:20 training throughput on one worker against PyTorch on one thread (bench/peers/
 *     torch_resnet.py, the same network and optimizer), as a paired ratio: trials alternate, the
 *     median of per-pair ratios is reported, so drift slower than one pair cancels. Skipped with a
 *     message where PyTorch is not installed.
 *  3. gpt:4-4-128-64 on Brown-corpus text, the same way against bench/peers/torch_gpt.py (tokens/s);
 *     with --accuracy also the held-out loss of both after one epoch over the same windows (the same
 *     number of tokens, each in its own shuffled order).
 *
 *   npx bun bench/models.bench.ts [--pairs 7] [--accuracy] [--only gpt]
 *
 * Medians of paired trials rather than mitata's back-to-back samples: this host's speed drifts by
 * tens of percent over seconds (shared cores), which a ratio of two separate runs would measure.
 */
import { convColsFloats, GEMM_PACK_FLOATS, type KernelExports } from "../engine/kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../engine/kernels/load.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, TrainingSession, type TrainConfig } from "../engine/train.ts";
import { loadDataset } from "../engine/data/index.ts";
import { Conv2d, WINOGRAD_MIN_CHANNELS } from "../engine/model/conv2d.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lineReader } from "./peers/torch-client.ts";

const pairsArg = process.argv.indexOf("--pairs");
const onlyArg = process.argv.indexOf("--only");
const ONLY = onlyArg > 0 ? process.argv[onlyArg + 1] : undefined;
const ACCURACY = process.argv.includes("--accuracy");
const PAIRS = pairsArg > 0 ? Number(process.argv[pairsArg + 1]) : 7;
const BATCH = 64;
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
const time = (fn: () => void) => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};

// ---- 1. convolutions vs the ceiling ----------------------------------------------------------------

interface ConvShape { label: string; cin: number; cout: number; h: number; stride: 1 | 2; count: number }
/** resnet:20's 3×3 convolutions (count = how many of each in one forward). */
function resnet20Convs(c: number, h: number): ConvShape[] {
  const h2 = Math.ceil(h / 2), h3 = Math.ceil(h2 / 2);
  return [
    { label: `stem ${c}→16 ${h}²`, cin: c, cout: 16, h, stride: 1, count: 1 },
    { label: `16→16 ${h}²`, cin: 16, cout: 16, h, stride: 1, count: 6 },
    { label: `16→32 ${h}²/2`, cin: 16, cout: 32, h, stride: 2, count: 1 },
    { label: `32→32 ${h2}²`, cin: 32, cout: 32, h: h2, stride: 1, count: 5 },
    { label: `32→64 ${h2}²/2`, cin: 32, cout: 64, h: h2, stride: 2, count: 1 },
    { label: `64→64 ${h3}²`, cin: 64, cout: 64, h: h3, stride: 1, count: 5 },
  ];
}

const { module, variant } = await loadKernelModule();
const pages = 4096; // 256 MiB
const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
const k: KernelExports = instantiateKernels(module, memory);
const heap = new Float32Array(memory.buffer);
for (let i = 256; i < heap.length; i++) heap[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;

/**
 * The multiply-add ceiling, GFLOP/s, over at least `ms` of wall time: as long as the trial it is
 * compared with, so both see the same share of a core when other processes compete for it.
 */
function ceilingOver(ms: number): number {
  const iters = 50_000; // ≈ 0.1 ms
  let calls = 0;
  const t = performance.now();
  do {
    k.fma_ceiling(iters);
    calls++;
  } while (performance.now() - t < ms);
  return (calls * iters * 96) / ((performance.now() - t) * 1e6);
}

if (ONLY === undefined || ONLY === "resnet") {
console.log(`3×3 convolutions, batch ${BATCH}, ${variant} build, one thread, as the layer runs them (Winograd F(2×2,3×3) where stride 1 and ≥ ${WINOGRAD_MIN_CHANNELS} channels, else im2col + GEMM);`);
console.log(`GEMM-equivalent flops (2·N·Cout·Cin·9·OH·OW per pass) as a share of the multiply-add ceiling measured right after each trial for as long as it took (median of ${PAIRS * 3}):`);
const totals = new Map<string, { flops: number; ms: number; ceilingFlops: number }>();
for (const [c, h] of [[1, 28], [3, 32]] as const) {
  const key = `${c}×${h}×${h}`;
  const total = { flops: 0, ms: 0, ceilingFlops: 0 };
  for (const s of resnet20Convs(c, h)) {
    const layer = new Conv2d([s.cin, s.h, s.h], s.cout, 3, s.stride, 1, "identity", false);
    const oh = layer.outH;
    const N = BATCH;
    const colsF = Math.max(convColsFloats(s.cin, 3, 3, oh, oh, s.cout), layer.colsFloats());
    const packF = Math.max(GEMM_PACK_FLOATS(s.cout, s.cin * 9, oh * oh), GEMM_PACK_FLOATS(s.cout, oh * oh, s.cin * 9), GEMM_PACK_FLOATS(s.cin * 9, s.cout, oh * oh));
    let at = 1024;
    const take = (floats: number) => ((at += floats * 4 + 64), at - floats * 4 - 64);
    const x = take(N * s.cin * s.h * s.h), dx = take(N * s.cin * s.h * s.h), w = take(s.cout * s.cin * 9), dw = take(s.cout * s.cin * 9);
    const y = take(N * s.cout * oh * oh), cols = take(colsF), pack = take(packF);
    if (at > memory.buffer.byteLength) throw new Error("bench memory too small");
    const scratch = { cols, pack };
    const flops = 2 * N * s.cout * s.cin * 9 * oh * oh;
    const fwd: number[] = [], bwd: number[] = [], vsIm2col: number[] = [];
    let fwdMs = 0, bwdMs = 0;
    for (let r = 0; r < PAIRS * 3; r++) {
      const tf = time(() => layer.convolve(k, y, x, w, N, scratch));
      const tb = time(() => layer.convolveBackward(k, dx, dw, y, x, w, N, 0, scratch));
      const ceiling = ceilingOver(tf + tb);
      fwd.push(flops / (tf * 1e6) / ceiling);
      bwd.push((2 * flops) / (tb * 1e6) / ceiling);
      fwdMs += tf;
      bwdMs += tb;
      total.ceilingFlops += ceiling * (tf + tb) * 1e6 * s.count;
      if (layer.winograd) {
        const im2colF = time(() => k.conv2d_forward(y, x, w, N, s.cin, s.h, s.h, s.cout, 3, 3, s.stride, 1, cols, pack));
        const im2colB = time(() => k.conv2d_backward(dx, dw, y, x, w, N, s.cin, s.h, s.h, s.cout, 3, 3, s.stride, 1, 0, cols, pack));
        vsIm2col.push((im2colF + im2colB) / (tf + tb));
      }
    }
    total.flops += 3 * flops * s.count * PAIRS * 3;
    total.ms += (fwdMs + bwdMs) * s.count;
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`.padStart(4);
    const d = layer.winograd ? `   Winograd ×${median(vsIm2col).toFixed(2)} im2col's speed (forward + backward)` : "   (im2col)";
    console.log(`  ${key} ${s.label.padEnd(16)} forward ${pct(median(fwd))}  backward ${pct(median(bwd))}${d}`);
  }
  totals.set(key, total);
}
for (const [key, t] of totals) {
  console.log(`  ${key} resnet:20, all 3×3 convolutions of a training step (weighted by count): ${(t.flops / (t.ms * 1e6)).toFixed(1)} GFLOP/s GEMM-equivalent = ${((100 * t.flops) / t.ceilingFlops).toFixed(0)}% of the ceiling over the same trials (target ≥ 70%)`);
}

}

// ---- 2. resnet:20 training vs PyTorch -------------------------------------------------------------

interface Peer { send(line: string | number): Promise<{ seconds: number; loss: number }>; close(): void; info: string }

/** Starts a PyTorch peer script with the first python that has torch; the reason instead if none. */
async function startTorch(script: string, args: (number | string)[]): Promise<Peer | string> {
  let reason = "no python3 found";
  for (const python of ["/usr/bin/python3", "python3"]) {
    let proc;
    try {
      // One thread everywhere: torch's own pool and whatever BLAS it links (OpenBLAS spawns its own).
      const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
      proc = Bun.spawn([python, join(import.meta.dir, "peers", script), ...args.map(String)], { stdin: "pipe", stdout: "pipe", stderr: "inherit", env });
    } catch {
      continue;
    }
    const readLine = lineReader(proc.stdout, () => "PyTorch peer exited");
    const first = JSON.parse(await readLine());
    if (first.skipped) {
      reason = `${python}: ${first.skipped}`;
      proc.kill();
      continue;
    }
    return {
      info: `torch ${first.torch}, ${first.threads} thread, BLAS: ${first.blas}`,
      async send(steps) {
        proc.stdin.write(`${steps}\n`);
        await proc.stdin.flush();
        return JSON.parse(await readLine());
      },
      close: () => proc.kill(),
    };
  }
  return reason;
}

const STEPS = 2;
const torch = ONLY === undefined || ONLY === "resnet" ? await startTorch("torch_resnet.py", [20, 1, 28, 28, BATCH, 10]) : "not asked for (--only)";
if (typeof torch === "string") {
  console.log(`\nresnet:20 vs PyTorch: skipped (${torch})`);
} else {
  const config: TrainConfig = {
    algo: "sync",
    model: "resnet:20",
    data: `synthetic:${BATCH * STEPS}`,
    epochs: 1_000_000,
    batch: BATCH,
    workers: 1,
    executor: "threads",
    seed: 1,
    optimizer: { ...defaultOptimizer("momentum"), lr: 0.01 },
  };
  const skein = await TrainingSession.open(config);
  await skein.trainEpoch(); // warm-up: JIT tiers, page faults
  await torch.send(1);
  const ratios: number[] = [], skeinRates: number[] = [], torchRates: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const t = performance.now();
    await skein.trainEpoch();
    const skeinRate = (BATCH * STEPS) / ((performance.now() - t) / 1000);
    const torchRate = (BATCH * STEPS) / (await torch.send(STEPS)).seconds;
    skeinRates.push(skeinRate);
    torchRates.push(torchRate);
    ratios.push(skeinRate / torchRate);
  }
  skein.close();
  torch.close();
  console.log(`\nresnet:20 on 1×28×28, batch ${BATCH}, SGD momentum, training samples/s (median of ${PAIRS} alternating pairs of ${STEPS} steps):`);
  console.log(`  PyTorch 1 thread (${torch.info})  ${median(torchRates).toFixed(1)}`);
  console.log(`  skein 1 worker (${skein.kernels})        ${median(skeinRates).toFixed(1)}   ×${median(ratios).toFixed(2)} PyTorch, paired   (target ≥ 0.5×)`);
}

// ---- 3. gpt:4-4-128-64 on Brown text vs PyTorch ------------------------------------------------------

if (ONLY === undefined || ONLY === "gpt") {
  const [L, H, E, T] = [4, 4, 128, 64];
  const GPT_BATCH = 16;
  const brown = await loadDataset(`text:brown:${T}`);
  const vocab = brown.classNames!;
  /** The text of the first `windows` train windows (each shares its last character with the next). */
  const brownText = (windows: number) => {
    let text = "";
    for (let w = 0; w < windows; w++) {
      const window = brown.train.images.subarray(w * (T + 1), (w + 1) * (T + 1));
      text += Array.from(w === windows - 1 ? window : window.subarray(0, T), (b) => vocab[b]).join("");
    }
    return text;
  };
  const dir = mkdtempSync(join(tmpdir(), "skein-gpt-bench-"));
  /** A text file of `windows` Brown windows, its skein dataset, and its windows as files for the peer. */
  const corpusOf = async (name: string, windows: number) => {
    const file = join(dir, `${name}.txt`);
    writeFileSync(file, brownText(windows));
    const d = await loadDataset(`text:${file}:${T}`);
    writeFileSync(join(dir, `${name}.train.u8`), d.train.images);
    writeFileSync(join(dir, `${name}.test.u8`), d.test.images);
    return { spec: `text:${file}:${T}`, d, train: join(dir, `${name}.train.u8`), test: join(dir, `${name}.test.u8`) };
  };
  const gptConfig = (data: string, epochs: number): TrainConfig => ({
    algo: "sync",
    model: `gpt:${L}-${H}-${E}-${T}`,
    data,
    epochs,
    batch: GPT_BATCH,
    workers: 1,
    executor: "threads",
    seed: 1,
    optimizer: defaultOptimizer("adam"),
  });

  // Speed: a corpus of exactly STEPS batches of train windows per epoch (the tenth after them is its test split).
  let speedWindows = STEPS * GPT_BATCH;
  while (speedWindows - Math.floor(speedWindows / 10) < STEPS * GPT_BATCH) speedWindows++;
  const speed = await corpusOf("speed", speedWindows);
  const peer = await startTorch("torch_gpt.py", [L, H, E, T, speed.d.classes, GPT_BATCH, speed.train, speed.test]);
  if (typeof peer === "string") {
    console.log(`
gpt:${L}-${H}-${E}-${T} vs PyTorch: skipped (${peer})`);
  } else {
    const skein = await TrainingSession.open(gptConfig(speed.spec, 1_000_000));
    const tokensPerEpoch = speed.d.train.count * T;
    await skein.trainEpoch();
    await peer.send(`train ${STEPS}`);
    const ratios: number[] = [], skeinRates: number[] = [], torchRates: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const t = performance.now();
      await skein.trainEpoch();
      const skeinRate = tokensPerEpoch / ((performance.now() - t) / 1000);
      const torchRate = (STEPS * GPT_BATCH * T) / (await peer.send(`train ${STEPS}`)).seconds;
      skeinRates.push(skeinRate);
      torchRates.push(torchRate);
      ratios.push(skeinRate / torchRate);
    }
    skein.close();
    peer.close();
    console.log(`
gpt:${L}-${H}-${E}-${T} on Brown text, batch ${GPT_BATCH}×${T} tokens, Adam, training tokens/s (median of ${PAIRS} alternating pairs of ${STEPS} steps):`);
    console.log(`  PyTorch 1 thread (${peer.info})  ${median(torchRates).toFixed(0)}`);
    console.log(`  skein 1 worker                        ${median(skeinRates).toFixed(0)}   ×${median(ratios).toFixed(2)} PyTorch, paired   (target ≥ 0.5×)`);

    if (ACCURACY) {
      // Same windows, same number of tokens (one epoch each), same hyperparameters.
      const acc = await corpusOf("accuracy", 3000);
      const steps = Math.ceil(acc.d.train.count / GPT_BATCH);
      const t = performance.now();
      const summary = await train(gptConfig(acc.spec, 1));
      const skeinSeconds = (performance.now() - t) / 1000;
      const accPeer = (await startTorch("torch_gpt.py", [L, H, E, T, acc.d.classes, GPT_BATCH, acc.train, acc.test])) as Peer;
      const torchSeconds = (await accPeer.send(`train ${steps}`)).seconds;
      const torchLoss = (await accPeer.send("eval")).loss;
      accPeer.close();
      console.log(`
held-out loss after one epoch of ${acc.d.train.count} Brown windows (${acc.d.train.count * T} tokens, ${steps} steps), ${acc.d.test.count} test windows:`);
      console.log(`  PyTorch ${torchLoss.toFixed(4)} nats/char (${(torchLoss / Math.LN2).toFixed(3)} bits/char, ${torchSeconds.toFixed(0)} s)`);
      console.log(`  skein   ${summary.testLoss.toFixed(4)} nats/char (${(summary.testLoss / Math.LN2).toFixed(3)} bits/char, ${skeinSeconds.toFixed(0)} s)   difference ${(summary.testLoss - torchLoss).toFixed(4)} (target within 0.05)`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
