/**
 * How processes find a run. A coordinator calls on `skein.call` a few times a second with its run id;
 * an idle `skein join` process answers with a request on `skein.run.<id>.enlist` and gets back its rank
 * and the job (configuration, data spec, seed: each process loads the data itself), or "full".
 */
import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { RunError } from "../errors.ts";
import type { TrainConfig } from "../algorithms/config.ts";
import { runIdHex } from "./frame.ts";

export const CALL_SUBJECT = "skein.call";
const CALL_EVERY_MS = 250;

export interface Job {
  runId: string;
  rank: number;
  procs: number;
  config: TrainConfig;
  /** Epochs already done (a resumed run): the followers' epoch numbers start here. */
  epochsDone: number;
  /** Record spans for the coordinator's trace.json. */
  trace?: boolean;
}

export interface Enlisted {
  rank: number;
  host: string;
  pid: number;
}

export const describeRank = (rank: number, host: string, pid: number): string => `rank ${rank} (pid ${pid} on ${host})`;

/**
 * Call until procs − 1 processes have enlisted (or `deadlineMs` passes, or `abandon` rejects); each
 * gets the next rank and `jobFor(rank)`.
 */
export async function enlist(nc: NatsConnection, runId: bigint, procs: number, jobFor: (rank: number) => Job, deadlineMs: number, abandon: Promise<never>): Promise<Enlisted[]> {
  const hex = runIdHex(runId);
  const enlisted: Enlisted[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const sub = nc.subscribe(`skein.run.${hex}.enlist`, {
    callback: (err, msg) => {
      if (err) return;
      let who: { host?: unknown; pid?: unknown };
      try {
        who = msg.json();
      } catch {
        return;
      }
      if (enlisted.length >= procs - 1) return void msg.respond(JSON.stringify({ full: true }));
      const rank = enlisted.length + 1;
      enlisted.push({ rank, host: String(who.host ?? "?"), pid: Number(who.pid ?? 0) });
      msg.respond(JSON.stringify(jobFor(rank)));
      if (enlisted.length === procs - 1) done();
    },
  });
  const call = JSON.stringify({ run: hex, procs, host: hostname() });
  nc.publish(CALL_SUBJECT, call);
  const calling = setInterval(() => nc.publish(CALL_SUBJECT, call), CALL_EVERY_MS);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    if (procs > 1) {
      await Promise.race([
        all,
        abandon,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new RunError(`only ${enlisted.length} of the ${procs - 1} processes this run needs joined within ${deadlineMs / 1000} s (start them with: skein join URL --token T)`)),
            deadlineMs,
          );
        }),
      ]);
    }
    return enlisted;
  } finally {
    clearInterval(calling);
    clearTimeout(timer);
    // Late answers get "full" for a moment longer rather than silence.
    setTimeout(() => sub.unsubscribe(), 1_000);
  }
}

/** Wait for a call (of run `only`, when given) and enlist in it; null if `stop` resolves first. */
export async function answerCall(nc: NatsConnection, only: string | null, stop: Promise<void>): Promise<Job | null> {
  const sub = nc.subscribe(CALL_SUBJECT);
  const stopped = stop.then(() => null);
  try {
    const iterator = sub[Symbol.asyncIterator]();
    for (;;) {
      const next = await Promise.race([iterator.next(), stopped]);
      if (next === null || next.done) return null;
      let call: { run?: unknown };
      try {
        call = next.value.json();
      } catch {
        continue;
      }
      const run = String(call.run ?? "");
      if (only !== null && run !== only) continue;
      if (!/^[0-9a-f]{16}$/.test(run)) continue;
      try {
        const reply = await nc.request(`skein.run.${run}.enlist`, JSON.stringify({ host: hostname(), pid: process.pid }), { timeout: 2_000 });
        const job = reply.json<Job & { full?: boolean }>();
        if (!job.full) return job;
      } catch {
        // the coordinator went away or was full: wait for the next call
      }
    }
  } finally {
    sub.unsubscribe();
  }
}
