/**
 * A NATS server for one machine's run: Debian's nats-server, bound to 127.0.0.1 on ports the kernel
 * picks, requiring a fresh random token, with a max_payload that fits parameter vectors in few chunks.
 * It never listens beyond the loopback interface; runs across hosts use a server the user starts.
 *
 * It listens twice: for NATS clients over TCP and over WebSocket (no TLS: loopback only). skein's own
 * processes take the TCP one, through the client's WebSocket transport on a native TCP socket
 * (tcp-socket.ts): the server relays a byte over TCP for about two thirds of the CPU it spends over
 * WebSocket, and the client receives whole messages without reassembling them; the bench measures the
 * listeners side by side.
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
  /** The URL skein's processes connect to: the plain NATS listener (nats://127.0.0.1:PORT), for any NATS client. */
  url: string;
  /** The same server's WebSocket listener (ws://127.0.0.1:PORT). */
  wsUrl: string;
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
  writeFileSync(config, `listen: "127.0.0.1:-1"\nauthorization { token: "${token}" }\nmax_payload: ${LOCAL_MAX_PAYLOAD}\nwebsocket { listen: "127.0.0.1:-1", no_tls: true }\n`, { mode: 0o600 });
  // Through a small shell that stops the server when this process is gone, even by kill -9 (nothing
  // else would: the server does not watch its parent).
  const watch = `"$1" -c "$2" & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM INT; while kill -0 "$3" 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 0.5; done; kill $s 2>/dev/null; wait $s`;
  // One Go scheduler thread: the server relays each message from its reading goroutine to its writing
  // one, and with a thread per core the idle ones spin for that work, burning a core the run's own
  // processes need (on 2 cores this halved the server's CPU per byte and doubled the transport's
  // bandwidth); one core relays more than 500 MB/s.
  // The server allocates a buffer per large message it relays: no collection by heap growth (GOGC)
  // but by a soft memory limit instead (Go ≥ 1.19), so the heap stays where it is and its pages are
  // reused rather than handed back to the kernel and faulted in again. Measured on the transport bench
  // (alternating, 3 runs each): 0.69 CPU-s per GB relayed with GOGC=400 (0.66 at 2000, 0.74 at 100),
  // 0.56 with this; 2 scheduler threads: 0.85–1.17. Go collects harder near the limit, so a heap of
  // pending messages above it costs CPU, not memory; 256 MiB holds hundreds of parameter vectors.
  const env = { ...process.env, GOMAXPROCS: "1", GOGC: "off", GOMEMLIMIT: "256MiB" };
  const child: ChildProcess = spawn("/bin/sh", ["-c", watch, "skein-nats", binary, config, String(process.pid)], { stdio: ["ignore", "ignore", "pipe"], env });
  let log = "";
  const urls = await new Promise<{ url: string; wsUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start within ${START_TIMEOUT_MS / 1000} s: ${log.trim().split("\n").pop() ?? ""}`)), START_TIMEOUT_MS);
    child.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const tcp = /Listening for client connections on ([\d.]+:\d+)/.exec(log);
      const ws = /Listening for websocket clients on (ws:\/\/[\d.]+:\d+)/.exec(log);
      if (tcp && ws) {
        clearTimeout(timer);
        resolve({ url: `nats://${tcp[1]}`, wsUrl: ws[1]! });
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
    ...urls,
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
