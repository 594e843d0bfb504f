/**
 * What moving bytes between processes costs in CPU, apart from the time on the wire. Over a broker on
 * one machine (NATS), each byte is copied by the sending process, by the broker, and by the receiving
 * process, and on a machine with no core to spare those copies take turns with the computation: on 2
 * cores the network's share of a 2-process gossip round was measured at 2.5–3× what latency and
 * bandwidth alone predict. The nats bench measures these figures (`--network-out` writes them with the
 * latency and bandwidth), per process, as CPU seconds per byte.
 */
import { UserError } from "../errors.ts";

export interface TransportCpu {
  /** The sending process: framing, the copy into the socket, the system call. */
  sendSecondsPerByte: number;
  /** The receiving process: the socket's reads, the copy into the arena. */
  receiveSecondsPerByte: number;
  /** The relay between them (nats-server), on the same machine: 0 where it runs elsewhere. */
  relaySecondsPerByte: number;
}

export function checkTransportCpu(json: unknown, where: string): TransportCpu {
  const c = json as Record<string, unknown> | null;
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new UserError(`${where}: must be an object of sendSecondsPerByte, receiveSecondsPerByte, relaySecondsPerByte`);
  const out: Record<string, number> = {};
  for (const key of ["sendSecondsPerByte", "receiveSecondsPerByte", "relaySecondsPerByte"]) {
    const v = c[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new UserError(`${where}.${key}: must be a number ≥ 0 (CPU seconds per byte)`);
    out[key] = v;
  }
  return out as unknown as TransportCpu;
}
