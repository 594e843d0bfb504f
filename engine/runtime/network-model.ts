/**
 * The network between the simulated processes: α (seconds per message) and β (bytes per second on one
 * link), and the CPU a transport spends per byte where measured. A cost table names networks of its
 * own beside the presets; `--network` picks one by name or reads one from a file.
 */
import { existsSync } from "node:fs";
import { UserError } from "../errors.ts";
import { readUserTextFile } from "../user-file.ts";
import { checkTransportCpu, type TransportCpu } from "./transport-cpu.ts";
import { isNumber } from "./json-check.ts";

export interface NetworkModel {
  /** α: seconds per message. */
  latencySeconds: number;
  /** β: bytes per second on one link; null = no limit (shared memory: a kernel already pays the copy). */
  bytesPerSecond: number | null;
  /** CPU the transport spends per byte between processes, where measured (process-network.ts charges it). */
  cpuSecondsPerByte?: TransportCpu;
}

/** Networks every table knows without saying: shared memory (free beyond the kernels), 10 and 100 GbE. */
export const NETWORK_PRESETS: Record<string, NetworkModel> = {
  // Shared memory: the kernels that read a peer's vector already pay for moving it.
  shm: { latencySeconds: 0, bytesPerSecond: null },
  // TCP over 10 GbE: ~25 µs one-way latency, 1.25 GB/s line rate.
  "10gbe": { latencySeconds: 25e-6, bytesPerSecond: 1.25e9 },
  // RDMA over 100 GbE: ~3 µs, 12.5 GB/s.
  "100gbe": { latencySeconds: 3e-6, bytesPerSecond: 12.5e9 },
};

/** A network model from JSON, or a UserError naming `where`. */
export function checkNetwork(json: unknown, where: string): NetworkModel {
  const n = json as Record<string, unknown> | null;
  if (typeof n !== "object" || n === null) throw new UserError(`${where}: not a JSON object`);
  if (!isNumber(n.latencySeconds) || n.latencySeconds < 0) throw new UserError(`${where}: latencySeconds must be a number ≥ 0`);
  if (n.bytesPerSecond !== null && (!isNumber(n.bytesPerSecond) || n.bytesPerSecond <= 0)) throw new UserError(`${where}: bytesPerSecond must be a positive number or null`);
  const model: NetworkModel = { latencySeconds: n.latencySeconds, bytesPerSecond: n.bytesPerSecond as number | null };
  if (n.cpuSecondsPerByte !== undefined) model.cpuSecondsPerByte = checkTransportCpu(n.cpuSecondsPerByte, `${where}: cpuSecondsPerByte`);
  return model;
}

/** `--network shm|10gbe|100gbe|FILE`: a preset or table entry by name, else a JSON file. */
export function resolveNetwork(table: { networks: Record<string, NetworkModel> }, spec: string): NetworkModel {
  const known = table.networks[spec];
  if (known) return known;
  if (!existsSync(spec)) throw new UserError(`--network ${spec}: neither ${Object.keys(table.networks).join(", ")} nor a file`);
  const text = readUserTextFile(spec, `--network ${spec}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UserError(`--network ${spec}: not JSON`);
  }
  return checkNetwork(json, `--network ${spec}`);
}

/** Seconds to send `bytes` in all, as `messages` messages, over one link: α · messages + bytes / β. */
export function trafficSeconds(n: NetworkModel, bytes: number, messages = 1): number {
  if (bytes <= 0) return 0;
  return messages * n.latencySeconds + (n.bytesPerSecond === null ? 0 : bytes / n.bytesPerSecond);
}

/**
 * Seconds of a ring all-reduce of `bytes` among `parties`: 2(P−1) steps, each a message of 1/P of the
 * bytes, so every node sends 2(P−1)/P of them (reduce-scatter, then all-gather).
 */
export function allReduceSeconds(n: NetworkModel, bytes: number, parties: number): number {
  if (parties <= 1) return 0;
  return trafficSeconds(n, (2 * (parties - 1) * bytes) / parties, 2 * (parties - 1));
}
