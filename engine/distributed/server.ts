/**
 * A NATS server for one machine's run: Debian's nats-server, bound to 127.0.0.1 on a port the kernel
 * picks, requiring a fresh random token, with a max_payload that fits parameter vectors in few chunks.
 * It never listens beyond the loopback interface; runs across hosts use a server the user starts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../errors.ts";

/** Where Debian's package puts the server; $SKEIN_NATS_SERVER overrides it. */
export function natsServerPath(): string | null {
  const candidates = [process.env.SKEIN_NATS_SERVER, "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
  return candidates.find((p): p is string => Boolean(p) && existsSync(p!)) ?? null;
}

/** 8 MiB: a 2M-parameter f32 vector in one message; bigger ones are cut into chunks. */
export const LOCAL_MAX_PAYLOAD = 8 << 20;
const START_TIMEOUT_MS = 10_000;

export interface LocalServer {
  url: string;
  token: string;
  pid: number;
  stop(): Promise<void>;
}

export const newToken = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("hex");

export async function startLocalServer(token = newToken()): Promise<LocalServer> {
  const binary = natsServerPath();
  if (!binary) throw new UserError("--procs needs nats-server (Debian: apt-get install nats-server), or --nats URL of a running one");
  const dir = mkdtempSync(join(tmpdir(), "skein-nats-"));
  const config = join(dir, "nats.conf");
  writeFileSync(config, `listen: "127.0.0.1:-1"\nauthorization { token: "${token}" }\nmax_payload: ${LOCAL_MAX_PAYLOAD}\n`, { mode: 0o600 });
  // Through a small shell that stops the server when this process is gone, even by kill -9 (nothing
  // else would: the server does not watch its parent).
  const watch = `"$1" -c "$2" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM INT; while kill -0 "$3" 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; kill $s 2>/dev/null; wait $s`;
  const child: ChildProcess = spawn("/bin/sh", ["-c", watch, "skein-nats", binary, config, String(process.pid)], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start within ${START_TIMEOUT_MS / 1000} s: ${log.trim().split("\n").pop() ?? ""}`)), START_TIMEOUT_MS);
    child.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /Listening for client connections on ([\d.]+:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(`nats://${m[1]}`);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}) before listening: ${log.trim().split("\n").pop() ?? ""}`));
    });
  }).catch((e) => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  child.stderr!.removeAllListeners("data");
  child.stderr!.resume(); // keep draining its log so it never blocks on a full pipe
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    url,
    token,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
