/**
 * A cost table from before the streaming kernels' cost by footprint, rewritten so today's loader takes
 * it and charges what it charged: each streaming kernel's fixed + perUnit · elements as a flat curve
 * per byte of its footprint (perUnit / (4 · operands)); weighted_sum's perUnit · k · n as
 * perUnit · k / (4 (k + 1)) per byte, exact for three inputs (a ring's mixing step) in `warm` and for
 * two in `warmTwoInputs`. Its curves by distance need no change: a flat warm curve adds nothing below
 * the ring's call. For paired validation against a new table in one process:
 *
 *   npx bun bench/flat-warm-costs.ts OLD.json OUT.json
 *   flock /tmp/skein-bench.lock npx bun bench/simulated.bench.ts --costs OUT.json --against NEW.json ...
 */
import { readFileSync, writeFileSync } from "node:fs";
import { STREAMING_KERNELS, STREAMING_OPERANDS } from "../engine/runtime/cache-model.ts";
import { checkCostTable } from "../engine/runtime/costs.ts";

const [from, to] = process.argv.slice(2);
if (!from || !to) {
  console.error("flat-warm-costs: usage: npx bun bench/flat-warm-costs.ts OLD.json OUT.json");
  process.exit(2);
}
const table = JSON.parse(readFileSync(from, "utf8"));
const flat = (perByte: number) => ({ footprints: [1], secondsPerByte: [perByte] });
for (const name of STREAMING_KERNELS) {
  const c = table.kernels[name];
  if (c.warm) continue;
  if (name === "weighted_sum") {
    c.warm = flat((c.perUnit * 3) / 16);
    c.warmTwoInputs = flat((c.perUnit * 2) / 12);
  } else c.warm = flat(c.perUnit / (4 * STREAMING_OPERANDS[name]));
  c.perUnit = 0;
}
table.measuredOn += "; streaming kernels' affine costs rewritten as flat costs per byte (bench/flat-warm-costs.ts)";
checkCostTable(table, to);
writeFileSync(to, JSON.stringify(table, null, 2) + "\n");
console.log(`wrote ${to}`);
