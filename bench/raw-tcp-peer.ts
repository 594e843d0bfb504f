/**
 * The raw loopback TCP stream nats.bench compares skein's NATS transport with: a child process that
 * receives over a plain TCP socket, counts the bytes and answers each round with the CPU seconds it
 * spent on it (copying nothing). Run as a script it is that child; `tcpPeer` starts it and drives it.
 */
import { spawn } from "node:child_process";
import { createServer, connect as tcpConnect, type Socket } from "node:net";

/** A child that receives over TCP: counts bytes, answers each round with the CPU seconds it spent on it. */
export async function tcpPeer(): Promise<{ round(vector: Uint8Array, n: number): Promise<number>; close(): void }> {
  const child = spawn(process.execPath, [import.meta.path], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => child.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))));
  const socket: Socket = await new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1", () => resolve(s));
  });
  socket.setNoDelay(true);
  let answer = Buffer.alloc(0);
  return {
    async round(vector, n) {
      const acked = new Promise<number>((resolve) => {
        const take = (d: Buffer) => {
          answer = Buffer.concat([answer, d]);
          if (answer.length < 8) return;
          socket.off("data", take);
          const cpu = answer.readDoubleLE(0);
          answer = answer.subarray(8);
          resolve(cpu);
        };
        socket.on("data", take);
      });
      socket.write(new Uint8Array(new Uint32Array([n * vector.length]).buffer));
      for (let m = 0; m < n; m++) if (!socket.write(vector)) await new Promise((r) => socket.once("drain", r));
      return await acked;
    },
    close() {
      socket.end();
      child.kill();
    },
  };
}

if (import.meta.main) {
  let cpuSeen = 0;
  const server = createServer((socket) => {
    let want = -1;
    let got = 0;
    let header = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      let chunk = d;
      if (want < 0) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 4) return;
        want = header.readUInt32LE(0);
        chunk = header.subarray(4);
        got = 0;
      }
      got += chunk.length;
      if (got >= want) {
        const u = process.cpuUsage();
        const cpu = (u.user + u.system) / 1e6;
        const answer = Buffer.alloc(8);
        answer.writeDoubleLE(cpu - cpuSeen);
        cpuSeen = cpu;
        socket.write(answer);
        want = -1;
        header = Buffer.alloc(0);
      }
    });
    socket.on("close", () => process.exit(0));
  });
  server.listen(0, "127.0.0.1", () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
}
