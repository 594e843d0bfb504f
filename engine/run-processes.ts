/**
 * Runs that span processes and hosts over NATS: the coordinator's side (`skein train --procs P`) and
 * the followers' (`skein join URL`). The coordinator is rank 0 and trains as any run does (one progress
 * bar, one run folder, one summary); its executor links it to the followers (distributed/executor.ts).
 *
 * On one machine, without --nats, the coordinator starts a nats-server on 127.0.0.1 (random port,
 * random token) and P − 1 copies of skein that join this run only; it watches them, so a child that
 * dies ends the run at once, naming its rank. Across hosts, `skein join` processes wait on the server
 * for calls and each run takes as many as it needs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import { RunError, UserError } from "./errors.ts";
import { gossipOptionsOf, type TrainConfig } from "./algorithms/config.ts";
import { algorithmNamed } from "./algorithms/registry.ts";
import { WORD } from "./runtime/control.ts";
import { placementOf } from "./runtime/processes.ts";
import { checkAcrossProcesses, crossProcessPlan } from "./distributed/exchange.ts";
import { DistributedExecutor, START_TIMEOUT_MS, type ExecutorStart } from "./distributed/executor.ts";
import { answerCall, describeRank, enlist, type Job } from "./distributed/enlist.ts";
import { newRunId, parseRunId, runIdHex } from "./distributed/frame.ts";
import { startLocalServer, type LocalServer } from "./distributed/server.ts";
import { connectTo, Transport } from "./distributed/transport.ts";
import { TrainingSession } from "./session.ts";
import { train, type Summary, type TrainOptions } from "./train.ts";

export interface ProcessesOptions {
  procs: number;
  /** A running NATS server (another host's, say); without it one is started on 127.0.0.1. */
  url?: string;
  token?: string;
  /** The command that starts skein again (the local launcher's children run `<self> join …`). */
  self: string[];
  /** Progress for the user (the CLI: stderr), e.g. that the run waits for processes to join. */
  log?: (line: string) => void;
  /** Which listener of the local server the processes use (default tcp; the bench compares both). */
  listener?: "websocket" | "tcp";
}

/** The environment variable that carries the token to local children (not their command line, which any user can read). */
export const TOKEN_ENV = "SKEIN_NATS_TOKEN";

const isLoopback = (url: string) => /^(nats:\/\/|wss?:\/\/)?(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\/?$/.test(url);

export async function trainAcrossProcesses(config: TrainConfig, options: TrainOptions, launch: ProcessesOptions): Promise<Summary> {
  const { procs } = launch;
  checkAcrossProcesses(config, procs, options.resume !== undefined);
  if (launch.url && !isLoopback(launch.url) && !launch.token) throw new UserError(`--nats ${launch.url}: a server beyond this machine needs --token`);
  const server: LocalServer | null = launch.url ? null : await startLocalServer();
  const url = launch.url ?? (launch.listener === "websocket" ? server!.wsUrl : server!.url);
  const token = launch.token ?? server?.token;
  const runId = newRunId();
  const names = [describeRank(0, hostname(), process.pid)];
  const children: { child: ChildProcess; exited: Promise<void> }[] = [];
  let transport: Transport | null = null;
  let executor: DistributedExecutor | null = null;
  try {
    transport = await Transport.connect({ url, token, runId, rank: 0, procs, names });
    const t = transport;
    const byPid = new Map<number, string>();
    if (server) {
      for (let c = 1; c < procs; c++) {
        const child = spawn(launch.self[0]!, [...launch.self.slice(1), "join", url, "--run", runIdHex(runId), "--parent", String(process.pid)], {
          // Quiet, and in a process group of their own: the terminal's Ctrl-C reaches the coordinator,
          // which stops them; a child's failure reaches the user through the coordinator, naming its rank.
          stdio: ["ignore", "ignore", "ignore"],
          detached: true,
          env: { ...process.env, [TOKEN_ENV]: token },
        });
        const exited = new Promise<void>((resolve) =>
          child.once("exit", (code, signal) => {
            resolve();
            if (code !== 0 || signal) t.abort(`${byPid.get(child.pid!) ?? `a process of this run (pid ${child.pid} on ${hostname()})`} exited ${signal ? `on ${signal}` : `with code ${code}`}`);
          }),
        );
        children.push({ child, exited });
      }
    }
    const epochsDone = options.resume?.state.epochsDone ?? 0;
    const trace = options.trace ?? Boolean(options.out);
    const job = (rank: number): Job => ({ runId: runIdHex(runId), rank, procs, config, epochsDone, trace });
    // Joined processes come when someone starts them: say what the run waits for instead of a silent minute.
    if (!server) launch.log?.(`skein train: waiting for ${procs - 1} process${procs === 2 ? "" : "es"} to join on ${url} (start them with: skein join ${url} --token T; up to ${START_TIMEOUT_MS / 1000} s)`);
    for (const e of await enlist(t.connection, runId, procs, job, START_TIMEOUT_MS, t.failed)) {
      names[e.rank] = describeRank(e.rank, e.host, e.pid);
      byPid.set(e.pid, names[e.rank]!);
    }
    const programs = algorithmNamed(config.algo).programs(config);
    const summary = await train(config, {
      ...options,
      distributed: {
        placement: placementOf(programs, procs, 0),
        start: async (s: ExecutorStart) => (executor = await DistributedExecutor.open(s, t, crossProcessPlan(config, s.setup, s.plan, s.net, procs), config.algo)),
        summary: (steps) => (executor as DistributedExecutor | null)!.summary(steps, nodesOf(config)),
      },
    });
    if (t.failure) throw t.failure;
    (executor as DistributedExecutor | null)?.command({ do: "finish" });
    return summary;
  } catch (e) {
    transport?.abort(`${names[0]}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
    throw transport?.failure && !(e instanceof UserError) && !isStop(e) ? preferRemote(e, transport.failure) : e;
  } finally {
    await transport?.close();
    await Promise.all(children.map(({ child, exited }) => Promise.race([exited, sleep(3_000).then(() => child.exitCode === null && child.kill("SIGKILL"))])));
    await server?.stop();
  }
}

/** What "node" means in bytes per node per step: a gossip node, else a program (worker or stage). */
const nodesOf = (config: TrainConfig) => (algorithmNamed(config.algo).family === "gossip" ? gossipOptionsOf(config).nodes : algorithmNamed(config.algo).programs(config));

const isStop = (e: unknown) => (e as Error)?.name === "StoppedError";

/** A local error that only says "stopped because a peer failed" hides the remote cause: report that. */
function preferRemote(local: unknown, remote: RunError): unknown {
  const message = local instanceof Error ? local.message : String(local);
  return /stopped because a peer failed|StopRequested/.test(message) ? remote : local;
}

export interface JoinOptions {
  url: string;
  token?: string;
  /** Take only this run (the local launcher's children). */
  run?: string;
  /** Serve one run, then return. */
  once: boolean;
  /** Exit when this process is gone (the local launcher's pid). */
  parent?: number;
  log: (line: string) => void;
}

/** `skein join`: wait for runs on the server and take part in them, one at a time. */
export async function joinRuns(o: JoinOptions): Promise<void> {
  if (o.run !== undefined) parseRunIdOrThrow(o.run);
  const nc = await connectTo(o.url, o.token);
  let stopWaiting!: () => void;
  const stop = new Promise<void>((r) => (stopWaiting = r));
  const parentWatch = o.parent ? setInterval(() => !alive(o.parent!) && stopWaiting(), 500) : null;
  try {
    for (;;) {
      const job = await answerCall(nc, o.run ?? null, stop);
      if (!job) return;
      o.log(`skein join: rank ${job.rank} of ${job.procs} in run ${job.runId} (${job.config.algo}, ${job.config.model} on ${job.config.data})`);
      try {
        await followJob(o, job);
        o.log(`skein join: run ${job.runId} finished`);
      } catch (e) {
        if (o.once) throw e;
        o.log(`skein join: run ${job.runId} ended: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
      }
      if (o.once || o.run !== undefined) return;
    }
  } finally {
    if (parentWatch) clearInterval(parentWatch);
    await nc.close().catch(() => {});
  }
}

async function followJob(o: JoinOptions, job: Job): Promise<void> {
  const me = describeRank(job.rank, hostname(), process.pid);
  const transport = await Transport.connect({ url: o.url, token: o.token, runId: parseRunId(job.runId), rank: job.rank, procs: job.procs });
  transport.names[job.rank] = me;
  let session: TrainingSession | null = null;
  let executor: DistributedExecutor | null = null;
  const programs = algorithmNamed(job.config.algo).programs(job.config);
  const parentWatch = o.parent ? setInterval(() => !alive(o.parent!) && transport.fail(`the launcher (pid ${o.parent}) is gone`), 500) : null;
  try {
    session = await TrainingSession.open(job.config, {
      trace: job.trace === true,
      distributed: {
        placement: placementOf(programs, job.procs, job.rank),
        start: async (s) => (executor = await DistributedExecutor.open(s, transport, crossProcessPlan(job.config, s.setup, s.plan, s.net, job.procs), job.config.algo)),
      },
    });
    for (;;) {
      const command = await executor!.nextCommand();
      if (command.do === "finish") return;
      session.control.resetProgress();
      session.control.reset(WORD.claimNext);
      await session.executor.run(job.config.algo, () => ({ epoch: command.epoch }));
    }
  } catch (e) {
    if (!transport.failure) transport.abort(`${me}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
    throw transport.failure ?? e;
  } finally {
    if (parentWatch) clearInterval(parentWatch);
    session?.close();
    await transport.close();
  }
}

function parseRunIdOrThrow(hex: string): bigint {
  try {
    return parseRunId(hex);
  } catch (e) {
    throw new UserError(`--run ${hex}: ${(e as Error).message}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
