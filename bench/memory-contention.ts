/**
 * Do two threads streaming from beyond the cache at once pay more per byte than one alone, beyond
 * what the simulator already charges (the compute slowdown of k programs at once, times every kernel;
 * reuse distances over all programs' bytes, as one shared last-level cache)?
 *
 * Each thread runs weighted_sum of three vectors (n = 235,152 floats, a small model's size: a gossip
 * mixing step) round a ring of its own of F bytes, so each call's operands were last touched F bytes
 * of its own ago, and the same call repeated on one operand set (warm); k = 1 and k = 2 threads at
 * once, in one shared WebAssembly.Memory as calibrate's step replay and a run's workers are; rounds
 * alternate the k and the fastest round counts (other load only ever slows a round down). Printed per
 * F: per-call seconds warm and round the ring per k, the cold extra per byte (ring − warm), and
 * `factor`: the cold extra at k over that at 1, divided by the warm call's own slowdown at k.
 *
 * --shared: one ring of F bytes walked by both threads half a ring apart, thread 0 writing each slot's
 * first vector and reading the other three, thread 1 writing the last and reading the first three:
 * each reads what the other core wrote F/2 bytes of each thread's before (a gossip round's hand-off
 * of messages between workers).
 *
 * How to read it: from memory (F = 64, 128 MiB) the factor is what the issue asked about (bandwidth
 * shared by two cores); at smaller F, k = 2 at F/2 against k = 1 at F has the same bytes between
 * reuses, and is what the simulator's shared reuse distance assumes is equal. On the 2-core
 * development machine (AMD EPYC, private 1 MiB L2, one 32 MiB L3), 2026-12-02, load 0.6–1.9, four
 * runs: from memory k = 2 pays 68–77 ps per cold byte against 64–74 alone (×1.04–1.09, within the
 * warm call's own ×1.05–1.19): no bandwidth term; two private rings of 12 MiB pay 11–24 ps/B where
 * one of 24 pays 24–55, and of 16 MiB 38–68 where one of 32 pays 50–65: never more than the shared
 * distance charges; the hand-off (--shared, 24 MiB) 25–35 ps/B against 24–50 for one thread alone.
 * Twice 24 MiB (48 in one cache) pays ×1.3–2.5 one thread's 24: the cache's capacity, which the
 * shared reuse distance already charges (the weighted_sum curve at 48 MiB: 54–65 ps/B).
 *
 *   flock /tmp/skein-bench.lock npx bun bench/memory-contention.ts [--ms 150] [--rounds 5] [--mib 24,64] [--shared]
 */
import { loadavg } from "node:os";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../engine/memory/arena.ts";

/** Ring sizes measured, per thread: beyond this machine's last-level cache (24 MiB: where a mixing step starts paying most). */
const CONTENTION_FOOTPRINTS = [24, 64].map((m) => m << 20);

/** Floats per operand: a small model's size (mlp 784-256-128-10), not a power of two (operands a power of two apart share cache sets). */
const FLOATS = 235_152;
const OPERANDS = 4; // weighted_sum of three inputs: three read streams, one written

const WORKER_CODE = `let k, ring, slots, table, n, bytes;
const call = (s) => {
  const p = ring + s * bytes;
  const v = bytes / 4;
  // Thread 1 of a shared ring writes the slot's last vector and reads the first three: each reads what the other wrote.
  if (role === 1) { table[0] = p; table[1] = p + v; table[2] = p + 2 * v; k.weighted_sum(p + 3 * v, tensorsAt, weightsAt, 3, n); return; }
  table[0] = p + v; table[1] = p + 2 * v; table[2] = p + 3 * v;
  k.weighted_sum(p, tensorsAt, weightsAt, 3, n);
};
let tensorsAt, weightsAt, role = 0;
self.onmessage = (e) => {
  const d = e.data;
  if (d.ring !== undefined && !d.module) { ring = d.ring; role = d.role; postMessage(null); return; }
  if (d.module) {
    k = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
    ring = d.ring; bytes = d.bytes; n = d.n; tensorsAt = d.tensors; weightsAt = d.weights;
    table = new Int32Array(d.memory.buffer, d.tensors, 3);
    for (let s = 0; s < d.maxSlots; s++) call(s); // first touch of this thread's ring
    for (const t0 = performance.now(); performance.now() - t0 < d.warmMs;) call(0);
    postMessage(null);
    return;
  }
  const words = new Int32Array(d.control);
  const from = d.from ?? 0;
  for (let s = 0; s < d.slots; s++) call((s + from) % d.slots);
  Atomics.add(words, 1, 1);
  Atomics.wait(words, 0, 0);
  const t0 = performance.now();
  let calls = 0;
  while (performance.now() - t0 < d.ms) { for (let s = 0; s < d.slots; s++) call((s + from) % d.slots); calls += d.slots; }
  postMessage({ calls, ms: performance.now() - t0 });
};`;

interface ContentionPoint {
  footprint: number;
  /** Per k = 1…threads: seconds per call, warm and round the ring (fastest round). */
  warm: number[];
  ring: number[];
  /** Per k: (ring − warm at k) / (ring − warm at 1) / (warm at k / warm at 1). */
  factor: number[];
}

/** Per footprint: seconds per call warm and round the ring for k = 1…threads at once, and the factor. */
async function measureStreamingContention(
  module: WebAssembly.Module,
  o: { threads?: number; ms: number; rounds: number; footprints: number[]; warmMs?: number; verbose?: (line: string) => void; sharedRing?: boolean },
): Promise<ContentionPoint[]> {
  const threads = o.threads ?? 2;
  const largest = Math.max(...o.footprints);
  const bytes = OPERANDS * FLOATS * 4;
  const planner = new ArenaPlanner();
  const rings = Array.from({ length: threads }, (_, t) => planner.reserve("scratch", `contention.ring${t}`, largest));
  const tensors = Array.from({ length: threads }, (_, t) => planner.reserve("control", `contention.tensors${t}`, 16));
  const weights = planner.reserve("control", "contention.weights", 16);
  const memory = createSharedMemory(planner.finish());
  for (const r of rings) f32(memory, r, largest / 4).fill(0.5);
  f32(memory, weights, 3).fill(1 / 3);

  const url = URL.createObjectURL(new Blob([WORKER_CODE], { type: "application/javascript" }));
  const workers = rings.map(() => new Worker(url));
  const ask = <T>(w: Worker, message: unknown) =>
    new Promise<T>((resolve, reject) => {
      w.onmessage = (e) => resolve(e.data as T);
      w.onerror = (e) => reject(new Error(e.message));
      w.postMessage(message);
    });
  try {
    const maxSlots = Math.floor(largest / bytes);
    await Promise.all(workers.map((w, t) => ask(w, { module, memory, ring: rings[t], bytes, n: FLOATS, tensors: tensors[t], weights, maxSlots, warmMs: o.warmMs ?? 300 })));
    // One ring walked by all threads, each from its own start (what one wrote, the others read next).
    if (o.sharedRing) await Promise.all(workers.map((w, t) => ask(w, { ring: rings[0], role: t % 2 })));
    /** Mean seconds per call of k threads at once, each cycling over `slots` operand sets. */
    const run = async (k: number, slots: number): Promise<number> => {
      const control = new SharedArrayBuffer(8);
      const words = new Int32Array(control);
      const done = workers.slice(0, k).map((w, t) => ask<{ calls: number; ms: number }>(w, { control, ms: o.ms, slots, from: o.sharedRing ? Math.floor((t * slots) / k) : 0 }));
      while (Atomics.load(words, 1) < k) await Bun.sleep(1);
      Atomics.store(words, 0, 1);
      Atomics.notify(words, 0);
      const results = await Promise.all(done);
      return results.reduce((a, r) => a + r.ms / 1000 / r.calls, 0) / k;
    };
    const points: ContentionPoint[] = [];
    for (const footprint of o.footprints) {
      const slots = Math.floor(footprint / bytes);
      const warm = new Array<number>(threads).fill(Infinity);
      const ring = new Array<number>(threads).fill(Infinity);
      for (let round = 0; round < o.rounds; round++) {
        for (let k = 1; k <= threads; k++) {
          warm[k - 1] = Math.min(warm[k - 1]!, await run(k, 1));
          ring[k - 1] = Math.min(ring[k - 1]!, await run(k, slots));
        }
      }
      const extra1 = Math.max(ring[0]! - warm[0]!, 1e-12);
      const factor = warm.map((w, i) => (i === 0 ? 1 : (ring[i]! - w) / extra1 / (w / warm[0]!)));
      points.push({ footprint, warm, ring, factor });
      o.verbose?.(
        `  ${footprint >> 20} MiB: ` +
          warm.map((w, i) => `k=${i + 1} warm ${(w * 1e6).toFixed(0)} µs ring ${(ring[i]! * 1e6).toFixed(0)} µs cold +${((ring[i]! - w) / bytes * 1e12).toFixed(1)} ps/B`).join("; ") +
          `; warm ×${(warm[threads - 1]! / warm[0]!).toFixed(3)}, cold extra ×${((ring[threads - 1]! - warm[threads - 1]!) / extra1).toFixed(3)}, factor ${factor.map((f) => f.toFixed(3)).join(", ")}`,
      );
    }
    return points;
  } finally {
    for (const w of workers) w.terminate();
    URL.revokeObjectURL(url);
  }
}

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const ms = flag("ms", 150);
const rounds = flag("rounds", 5);
const fi = argv.indexOf("--mib");
const footprints = fi >= 0 ? (argv[fi + 1] ?? "").split(",").map((m) => Number(m) * (1 << 20)) : CONTENTION_FOOTPRINTS;
if (!footprints.every((f) => Number.isInteger(f) && f >= 8 << 20) || !(ms > 0) || !(rounds >= 1)) {
  console.error("memory-contention: --mib takes sizes of at least 8 (MiB, comma-separated); --ms and --rounds positive numbers");
  process.exit(2);
}

const { module } = await loadKernelModule();
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
const r = await measureStreamingContention(module, { ms, rounds, footprints, sharedRing: argv.includes("--shared"), verbose: (line) => console.log(line) });
for (const p of r) console.log(`${p.footprint >> 20} MiB: factor on the cold extra per k (beyond the warm ratio) ${p.factor.map((x) => x.toFixed(3)).join(", ")}`);
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
