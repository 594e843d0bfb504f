/**
 * What the main thread of a process in a run across processes does while its programs train: its
 * CPU (user and system) and how often it slept and was woken (voluntary context switches: each is one
 * wait of the event loop that ended), beside counts of each thing that can wake it or that it does per
 * message. The nats bench divides them by the steps to say what a step costs each rank's main thread.
 *
 * The CPU and context switches come from Linux's /proc (NaN elsewhere), read at the start and end of
 * each epoch's programs: the window the training steps run in, without start-up or evaluation.
 */
import { readFileSync } from "node:fs";

/** Counts and figures of one process's main thread, summed over the epochs it served. */
export interface MainThreadFigures {
  /** CPU seconds of the main thread while the programs ran (user, system). */
  userSeconds: number;
  systemSeconds: number;
  /** Times it went to sleep and was woken (voluntary context switches), and was preempted (involuntary). */
  sleeps: number;
  preemptions: number;
  /** Minor page faults the main thread took (a fresh buffer's first touch of its pages). */
  pageFaults: number;
  /** Atomics.waitAsync armed on the outbox, and those that ended by a program's claim (not the timeout). */
  outboxWaits: number;
  outboxWakes: number;
  /** Turns spent waiting for a producer between its claim and its write (setImmediate). */
  retries: number;
  /** Barrier hand-overs waited for (Atomics.waitAsync on WORD.barrierHandOff). */
  barrierWaits: number;
  /** Wakes relayed to another process, and relayed wakes accepted from one. */
  relayed: number;
  accepted: number;
  /** Heartbeats and progress reports sent (timer ticks). */
  timerMessages: number;
  /** Writes handed to the socket, reads it delivered (the runtime's data callbacks) and direct reads (readSync). */
  socketWrites: number;
  socketReads: number;
  directReads: number;
}

export const noFigures = (): MainThreadFigures => ({
  userSeconds: 0,
  systemSeconds: 0,
  sleeps: 0,
  preemptions: 0,
  pageFaults: 0,
  outboxWaits: 0,
  outboxWakes: 0,
  retries: 0,
  barrierWaits: 0,
  relayed: 0,
  accepted: 0,
  timerMessages: 0,
  socketWrites: 0,
  socketReads: 0,
  directReads: 0,
});

/**
 * The fields of a /proc stat file after the command name (which may hold spaces, so it is cut at its
 * closing parenthesis): index 7 minor faults, 11 utime, 12 stime (clock ticks, USER_HZ = 100).
 */
export const procStatFields = (path: string): string[] => readFileSync(path, "utf8").split(") ")[1]!.split(" ");

/** This process's main thread's CPU seconds and context switches so far (Linux; NaN elsewhere). */
export function mainThreadNow(): { userSeconds: number; systemSeconds: number; sleeps: number; preemptions: number; pageFaults: number } {
  try {
    const dir = `/proc/self/task/${process.pid}`;
    const stat = procStatFields(`${dir}/stat`);
    const status = readFileSync(`${dir}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? NaN);
    return { userSeconds: Number(stat[11]) / 100, systemSeconds: Number(stat[12]) / 100, sleeps: field("voluntary_ctxt_switches"), preemptions: field("nonvoluntary_ctxt_switches"), pageFaults: Number(stat[7]) };
  } catch {
    return { userSeconds: NaN, systemSeconds: NaN, sleeps: NaN, preemptions: NaN, pageFaults: NaN };
  }
}
