/**
 * How far a cost table's warm cost of each streaming kernel is from what its calls take, at the sizes
 * runs use: each of the 15 streaming kernels timed warm (the same call over and over, as calibrate
 * times kernels; operands laid out end to end as a run's arena has them) at calibrate's vector sizes,
 * at the preset models' parameter counts (lenet 61,760; mlp:784-256-128-10 235,152) and, with
 * --sweep, at footprints a power of two apart from 1 KiB to 64 MiB; against each table's cost of the
 * same call (kernels alone: no kernels-in-context factor, no time around the call).
 *
 * Each call's time is its fastest median over --rounds (3) passes. Prints per kernel and size the measured µs, each table's µs and its ratio (fit / measured), then per
 * table and kernel the root mean square of the relative errors over the sizes and the ratio at the mlp's.
 *
 *   flock /tmp/skein-bench.lock npx bun bench/streaming-fit.ts [--costs A.json,B.json] [--sweep] [--kernels copy,weighted_sum] [--rounds 3] [--quick]
 */
import { loadavg } from "node:os";
import { benchArgs, numberFlag } from "./args.ts";
import { streamingCalls, timeStreaming, type StreamingCall } from "../engine/cli/calibrate-streaming.ts";
import { loadKernelModule } from "../engine/kernels/load.ts";
import { Network } from "../engine/model/network.ts";
import { STREAMING_KERNELS, isStreamingKernel, type StreamingKernel } from "../engine/runtime/cache-model.ts";
import { defaultCostTable, kernelCostFunction, loadCostTable, type CostTable } from "../engine/runtime/costs.ts";

const SCRIPT = "streaming-fit";
const { values } = benchArgs(SCRIPT, {
  options: {
    costs: { type: "string" },
    sweep: { type: "boolean", default: false },
    kernels: { type: "string" },
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
  },
});
const kernels = (values.kernels?.split(",") ?? [...STREAMING_KERNELS]).map((name) => {
  if (!isStreamingKernel(name)) {
    console.error(`${SCRIPT}: --kernels ${name}: not a streaming kernel (${STREAMING_KERNELS.join(", ")})`);
    process.exit(2);
  }
  return name as StreamingKernel;
});
const tables: { label: string; table: CostTable }[] = [
  { label: "default", table: defaultCostTable() },
  ...(values.costs?.split(",").filter((p) => p.length > 0) ?? []).map((path) => ({ label: path.split("/").pop()!, table: loadCostTable(path) })),
].map(({ label, table }) => ({ label, table: { ...table, contextFactor: 1, callSeconds: 0 } }));

/** Calibrate's vector sizes (step 1b) and the preset models' parameter counts. */
const MODELS = { lenet: new Network("lenet", [1, 28, 28], 10).paramFloats, mlp: new Network("mlp:784-256-128-10", [1, 28, 28], 10).paramFloats };
const VECTOR_SIZES = [256, 4096, 65536, 262144, 1 << 20];
const sizes = [...VECTOR_SIZES, MODELS.lenet, MODELS.mlp].sort((a, b) => a - b);
const { module } = await loadKernelModule();
const all = streamingCalls(sizes, 2 * (1 << 20), kernels);
// Without --sweep, only the sizes runs use (weighted_sum: three inputs, a ring's mixing step, and its other counts at those sizes).
const calls: StreamingCall[] = values.sweep ? all : all.filter((c) => sizes.includes(c.n));
console.log(`${SCRIPT}: ${calls.length} warm calls, load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
const rounds = numberFlag(SCRIPT, "rounds", values.rounds, 3, { min: 1, max: 50, integer: true });
const points = timeStreaming(module, calls, values.quick ?? false, rounds);

const fmt = (s: number) => (s * 1e6).toFixed(s < 1e-5 ? 3 : 1);
const name = (n: number) => (n === MODELS.mlp ? " (mlp)" : n === MODELS.lenet ? " (lenet)" : "");
console.log(`kernel            n (k)             footprint   measured µs  ${tables.map((t) => `${t.label.padEnd(24)} fit µs  ratio`).join("  ")}`);
const errors = tables.map(() => new Map<string, { sq: number; count: number; mlp: number[] }>());
for (const p of points) {
  const cells = tables.map(({ table }, i) => {
    const fit = kernelCostFunction(table, p.name)(p.args);
    const e = errors[i]!.get(p.name) ?? { sq: 0, count: 0, mlp: [] };
    e.sq += ((fit - p.seconds) / p.seconds) ** 2;
    e.count++;
    if (p.n === MODELS.mlp) e.mlp.push(fit / p.seconds);
    errors[i]!.set(p.name, e);
    return `${"".padEnd(24)} ${fmt(fit).padStart(6)}  ${(fit / p.seconds).toFixed(2)}`;
  });
  const what = `${p.n}${p.name === "weighted_sum" ? ` (${p.parts})` : ""}${name(p.n)}`;
  console.log(`${p.name.padEnd(18)}${what.padEnd(18)}${(p.footprint / 1024).toFixed(0).padStart(8)} KiB  ${fmt(p.seconds).padStart(10)}  ${cells.join("  ")}`);
}
for (const [i, { label }] of tables.entries()) {
  console.log(`\n${label}: root mean square of (fit − measured) / measured over the sizes above; fit / measured at the mlp's size`);
  for (const [kernel, e] of errors[i]!) console.log(`  ${kernel.padEnd(18)} ${(100 * Math.sqrt(e.sq / e.count)).toFixed(1).padStart(6)}%   mlp ${e.mlp.map((r) => r.toFixed(2)).join(" ")}`);
}
console.log(`load average at the end ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);

