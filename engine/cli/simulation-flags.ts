/**
 * `skein train` flags of the simulated executor: the cost table, the machine and the network. They
 * only mean something with `--executor simulated`; given with another executor they are an error.
 */
import { UserError } from "../errors.ts";
import type { TrainConfig } from "../algorithms/config.ts";
import { MACHINES, type MachineName } from "../runtime/costs.ts";
import type { FlagSpec, FlagValue } from "./flags.ts";

export const SIMULATION_FLAGS: FlagSpec[] = [
  { name: "costs", type: "string", valueName: "FILE", help: "simulated: the cost table (JSON, as skein calibrate writes; default: the table shipped with skein)" },
  { name: "machine", type: "string", choices: MACHINES, help: "simulated: measured = the table's cores and their contention; ideal = one independent core per program (default measured)" },
  { name: "network", type: "string", valueName: "NAME|FILE", help: "simulated: what declared messages cost: shm (nothing beyond the kernels), 10gbe, 100gbe, or a JSON {latencySeconds, bytesPerSecond} (default shm)" },
  { name: "network-procs", type: "string", valueName: "P", help: "simulated: the programs placed on P processes in contiguous shares, as --procs runs them: only messages between processes cost --network time (default: every program its own host)" },
];

/** The configuration with the simulation flags given (kept from a resumed run's unless given again). */
export function withSimulationFlags(config: TrainConfig, given: Set<string>, v: Record<string, FlagValue | undefined>): TrainConfig {
  const named = SIMULATION_FLAGS.filter((f) => given.has(f.name));
  if (named.length === 0) return config;
  if (config.executor !== "simulated") throw new UserError(`--${named[0]!.name} applies to --executor simulated, not ${config.executor}`);
  const simulation = { ...config.simulation };
  if (given.has("costs")) simulation.costs = String(v.costs);
  if (given.has("machine")) simulation.machine = v.machine as MachineName;
  if (given.has("network")) simulation.network = String(v.network);
  if (given.has("network-procs")) {
    const procs = Number(v["network-procs"]);
    if (!Number.isInteger(procs) || procs < 1) throw new UserError(`--network-procs ${String(v["network-procs"])}: want a whole number of processes, 1 or more`);
    simulation.procs = procs;
  }
  return { ...config, simulation };
}
