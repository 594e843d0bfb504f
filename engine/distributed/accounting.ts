import { noFigures, type MainThreadFigures } from "./main-thread.ts";

/**
 * What a run across processes says about its communication: per process, the bytes and frames it sent
 * and the time its main thread spent exchanging; for the summary, the totals and bytes per node per step.
 */

/** Communication figures of a process: what it sent, and how long its programs waited on other processes. */
export interface CommunicationStats {
  bytesSent: number;
  framesSent: number;
  /** Seconds the main thread spent between a barrier's hand-over and its release. */
  seconds: number;
  /** What the main thread did while the programs ran (absent from a process that does not count it). */
  mainThread?: MainThreadFigures;
}

/** A run across processes, in its summary. */
export interface ProcessesSummary {
  count: number;
  /** "rank r (pid p on host)" per rank. */
  ranks: string[];
  /** Bytes every process published to the others over NATS (frames with their headers), in total. */
  bytesSent: number;
  /** NATS messages every process published to the others (heartbeats and progress included), in total. */
  framesSent: number;
  /** bytesSent per node (gossip node, else program) per step of this session. */
  bytesPerNodeStep: number;
  /** Per rank: seconds its main thread spent exchanging at barriers and relaying hand-offs. */
  communicationSeconds: number[];
  /** Per rank: its main thread's CPU, sleeps and counts while the programs ran (main-thread.ts). */
  mainThread: MainThreadFigures[];
}

/** The summary's account from each rank's figures (a rank that sent none counts as zero). */
export function summarizeProcesses(names: readonly string[], byRank: readonly (CommunicationStats | undefined)[], steps: number, nodes: number): ProcessesSummary {
  const ranks = names.map((_, r) => byRank[r] ?? { bytesSent: 0, framesSent: 0, seconds: 0 });
  const bytesSent = ranks.reduce((a, c) => a + c.bytesSent, 0);
  const framesSent = ranks.reduce((a, c) => a + c.framesSent, 0);
  return { count: names.length, ranks: [...names], bytesSent, framesSent, bytesPerNodeStep: steps > 0 ? bytesSent / (nodes * steps) : 0, communicationSeconds: ranks.map((c) => c.seconds), mainThread: ranks.map((c) => c.mainThread ?? noFigures()) };
}

/** Bytes for a trace span's name: B, kB or MB. */
export const formatBytes = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${Math.round(n / 1e3)} kB` : `${n} B`);
