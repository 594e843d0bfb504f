/**
 * Adds fits for the kernels a cost table lacks, keeping everything it has: the machine, contention,
 * context, call and jitter fields and the kernels already fitted. Used when kernels are added to
 * WORK after a table was calibrated (the default table was, at low load); times only the missing
 * kernels, as `skein calibrate` step 1 does, and says so in the table's measuredOn.
 *
 *   flock /tmp/skein-bench.lock npx bun bench/merge-kernel-costs.ts [TABLE] [--quick] [--refit NAME,...]
 *
 * --refit also times and fits the kernels named, replacing their fits (after their cost features
 * changed). --gather (alone) times the gather from memory instead (calibrate's memory step, on the
 * digits' 784-byte rows) and sets memory.gatherFootprint and memory.coldSecondsPerByte.gather_batch.
 * TABLE defaults to engine/runtime/costs-default.json and is rewritten in place.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { calibrateKernels } from "../engine/cli/calibrate-kernels.ts";
import { checkCostTable } from "../engine/runtime/costs.ts";
import { WORK } from "../engine/runtime/kernel-work.ts";
import { calibrateGather } from "../engine/cli/calibrate-memory.ts";
import { loadKernelModule } from "../engine/kernels/load.ts";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const refitAt = args.indexOf("--refit");
const refit = refitAt >= 0 ? (args[refitAt + 1] ?? "").split(",").filter((n) => n.length > 0) : [];
for (const name of refit) if (!(name in WORK)) throw new Error(`--refit ${name}: no such kernel`);
const path = args.find((a, i) => !a.startsWith("--") && i !== refitAt + 1) ?? new URL("../engine/runtime/costs-default.json", import.meta.url).pathname;
const table = JSON.parse(readFileSync(path, "utf8"));
if (args.includes("--gather")) {
  const { module } = await loadKernelModule();
  const gather = calibrateGather(module, { quick, sampleBytes: 784 });
  const load = loadavg()[0]!.toFixed(1);
  console.log(`gather from memory: ${(gather.coldSecondsPerByte * 1e12).toFixed(1)} ps per byte beyond a ${(gather.footprint / (1 << 20)).toFixed(1)} MiB data set (load average ${load})`);
  const merged = {
    ...table,
    measuredOn: `${table.measuredOn}; the gather from memory added ${new Date().toISOString()} (load average ${load})`,
    memory: { ...table.memory, gatherFootprint: gather.footprint, coldSecondsPerByte: { ...table.memory.coldSecondsPerByte, gather_batch: gather.coldSecondsPerByte } },
  };
  checkCostTable(merged, path);
  writeFileSync(path, JSON.stringify(merged, null, 2) + "\n");
  console.log(`wrote ${path}`);
  process.exit(0);
}
const missing = Object.keys(WORK).filter((name) => !(name in table.kernels) || refit.includes(name));
if (missing.length === 0) {
  console.log(`${path}: every kernel in WORK already has a fit`);
  process.exit(0);
}
const load = loadavg()[0]!.toFixed(1);
console.log(`${path}: timing ${missing.join(", ")} (load average ${load})`);
const fits = await calibrateKernels({ models: ["mlp:784-256-128-10", "lenet"], data: "digits", quick, say: (line) => console.log(line), only: missing });
for (const [name, c] of Object.entries(fits)) {
  const rate = WORK[name]!.unit === "flops" ? `${(1e-9 / c.perUnit).toFixed(1)} GFLOP/s` : `${(c.perUnit * 1e9).toFixed(3)} ns/elem`;
  console.log(`${name.padEnd(28)} shapes ${String(c.shapes).padStart(3)}  fixed ${(c.fixed * 1e6).toFixed(2).padStart(7)} µs  ${rate}${c.perByte ? ` + ${(1e-9 / c.perByte).toFixed(1)} GB/s` : ""}${(c.perMore ?? []).map((x, i) => ` + ${(x * 1e9).toFixed(3)} ns/${WORK[name]!.more![i]!.what}`).join("")}  fit error ${(c.fitError * 100).toFixed(1)}%`);
}
const merged = {
  ...table,
  measuredOn: `${table.measuredOn}; kernels ${missing.join(", ")} ${refit.length > 0 ? "fitted again" : "added"} ${new Date().toISOString()} (load average ${load}, ${quick ? "quick" : "full"} timings, the other fields and kernels as first measured)`,
  kernels: { ...table.kernels, ...fits },
};
checkCostTable(merged, path);
writeFileSync(path, JSON.stringify(merged, null, 2) + "\n");
console.log(`wrote ${path}`);
