/**
 * `skein train`'s flags for runs that span processes (--procs, --nats, --token) and `skein join`.
 */
import { UserError } from "../errors.ts";
import { algorithmNamed } from "../algorithms/registry.ts";
import { joinRuns, TOKEN_ENV, type ProcessesOptions } from "../run-processes.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";
import { warmUpByDefault } from "../runtime/warm-up.ts";
import { idleCompilerByDefault } from "../runtime/compiler-threads.ts";

/** The engine's switches read from the environment (SKEIN_WARM_UP, SKEIN_IDLE_COMPILER): a bad value is one UserError. */
function checkEnvironmentSwitches(): void {
  warmUpByDefault();
  idleCompilerByDefault();
}

export const PROCESS_FLAGS: FlagSpec[] = [
  { name: "procs", type: "int", min: 1, max: 64, help: "processes the run spans (sync, pmsgd, dsgd, dmsgd, decentlam, the pipelines; lap and lpp with --replicas P), each hosting its share of the workers or stages; without --nats a nats-server on 127.0.0.1 and the processes are started here (default 1: this process alone)" },
  { name: "nats", type: "string", valueName: "URL", help: "with --procs: a running NATS server whose `skein join` processes take part (nats://HOST:4222)" },
  { name: "token", type: "string", valueName: "T", help: `with --nats: the server's token (or $${TOKEN_ENV})` },
];

/** With --procs and no --workers: one worker per process (algorithms that derive their program count keep it). */
export function defaultWorkersAcross(given: Set<string>, v: Record<string, unknown>, algo: string): number | undefined {
  return given.has("procs") && !algorithmNamed(algo).programsFrom ? Number(v.procs) : undefined;
}

/** How the run spans processes, or null for a run in this process alone. */
export function processesOf(given: Set<string>, v: Record<string, unknown>): ProcessesOptions | null {
  if (given.has("nats") && !given.has("procs")) throw new UserError("--nats URL needs --procs P (the processes the run spans, this one included)");
  if (given.has("token") && !given.has("nats")) throw new UserError("--token goes with --nats URL (the local launcher makes its own)");
  const procs = given.has("procs") ? Number(v.procs) : 1;
  if (procs === 1 && !given.has("nats")) return null;
  // Before any process starts: the local launcher's children inherit them and would refuse them one by one.
  checkEnvironmentSwitches();
  const token = v.token !== undefined ? String(v.token) : process.env[TOKEN_ENV];
  return { procs, ...(v.nats !== undefined ? { url: natsUrl(String(v.nats), "--nats") } : {}), ...(token ? { token } : {}), self: selfCommand(), log: (line) => process.stderr.write(`${line}\n`) };
}

/** The schemes the NATS client speaks: plain, TLS, and the server's WebSocket listener. */
const NATS_SCHEMES = ["nats:", "tls:", "ws:", "wss:"];

/**
 * A server URL as --nats and skein join take it, or a UserError naming it: without this check a word
 * that is no URL at all was refused as "a server beyond this machine needs --token", and an http:// URL
 * was tried as if it were NATS.
 */
export function natsUrl(text: string, where: string): string {
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // not a URL: refused below
  }
  if (!url || !NATS_SCHEMES.includes(url.protocol) || url.hostname === "") {
    throw new UserError(`${where} ${text}: not a NATS server URL (want nats://HOST:PORT, or tls://, ws://, wss://)`);
  }
  return text;
}

/** How to start skein again: the single binary alone, or Bun with the entry script. */
function selfCommand(): string[] {
  const main = typeof Bun !== "undefined" ? Bun.main : process.argv[1]!;
  return main.startsWith("/$bunfs") || main.startsWith("B:/~BUN") ? [process.execPath] : [process.execPath, main];
}

const JOIN_FLAGS: FlagSpec[] = [
  { name: "token", type: "string", valueName: "T", help: `the server's token (or $${TOKEN_ENV})` },
  { name: "once", type: "bool", help: "take part in one run, then exit" },
  { name: "run", type: "string", valueName: "ID", help: "take part only in the run with this id (the local launcher's children)" },
  { name: "parent", type: "int", min: 1, max: 2 ** 31 - 1, valueName: "PID", help: "exit when this process is gone (the local launcher's children)" },
];

export const JOIN_HELP = formatHelp(
  "skein join nats://HOST:4222 [--token T] [--once]",
  "Wait on a NATS server for runs started with skein train --nats URL --procs P, and take part in them: each run takes as many joined processes as it needs; its configuration, data spec and seed travel with it and this process loads the data itself.",
  JOIN_FLAGS,
  "Example: skein join nats://10.0.0.1:4222 --token s3cret",
);

export async function joinCommand(argv: string[]): Promise<number> {
  const url = argv[0] !== undefined && !argv[0].startsWith("-") ? argv[0] : undefined;
  const flags = parseFlags("join", url ? argv.slice(1) : argv, JOIN_FLAGS);
  if (flags.help) {
    process.stdout.write(JOIN_HELP);
    return 0;
  }
  if (!url) throw new UserError("skein join needs the server's URL: skein join nats://HOST:4222 --token T");
  natsUrl(url, "skein join");
  // Checked before taking part in anything: a bad value would otherwise fail every run this process joins.
  checkEnvironmentSwitches();
  const v = flags.values;
  const token = v.token !== undefined ? String(v.token) : process.env[TOKEN_ENV];
  await joinRuns({
    url,
    ...(token ? { token } : {}),
    ...(v.run !== undefined ? { run: String(v.run) } : {}),
    ...(v.parent !== undefined ? { parent: Number(v.parent) } : {}),
    once: Boolean(v.once),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  return 0;
}
