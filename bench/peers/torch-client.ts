/**
 * The client side of bench/peers/torch_peer.py: starts it on one thread and asks it for timed steps.
 * PyTorch is a dev-only peer: where it cannot be started or imported, `openTorchPeer` returns the
 * reason as a string and the caller skips with a message.
 */
import { join } from "node:path";
import { existsSync } from "node:fs";

export interface TorchPeer {
  version: string;
  /** The BLAS library the peer's process loaded. */
  blas: string;
  /**
   * Debian's torch calls whichever libblas.so.3 the system's alternatives select. The reference BLAS
   * (package libblas3, under blas/) is plain loops, several times slower than OpenBLAS: measured on a
   * Xeon with AVX-512, the mlp ran 7.7× faster in skein against it and 0.5–0.6× against OpenBLAS.
   */
  referenceBlas: boolean;
  /** PyTorch's samples/s over `steps` SGD steps of `model` ("mlp" or "lenet") at `batch`; the first request per model builds and warms it. */
  rate(model: string, batch: number, steps: number): Promise<number>;
  close(): void;
}

export async function openTorchPeer(): Promise<TorchPeer | string> {
  const python = process.env.SKEIN_PYTHON || (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
  let peer: ReturnType<typeof Bun.spawn<"pipe", "pipe", "pipe">>;
  try {
    peer = Bun.spawn([python, join(import.meta.dir, "torch_peer.py")], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      // One thread for every library PyTorch may call into (OpenMP, OpenBLAS where installed).
      env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" },
    });
  } catch (e) {
    return `cannot start ${python} (${(e as Error).message})`;
  }
  const line = lineReader(peer.stdout, async () => `the PyTorch peer exited: ${(await new Response(peer.stderr).text()).trim().split("\n").at(-1)}`);
  const hello = await line().catch((e: Error) => `absent ${e.message}`);
  if (!hello.startsWith("ready")) {
    peer.kill();
    return `PyTorch is not installed for ${python} (${hello.replace(/^absent /, "")}); apt-get install python3-torch libopenblas0, or set SKEIN_PYTHON`;
  }
  const [, version = "?", blas = "unknown"] = hello.split(" ");
  return {
    version,
    blas,
    referenceBlas: /\/blas\/libblas/.test(blas),
    async rate(model, batch, steps) {
      peer.stdin.write(`${model} ${batch} ${steps}\n`);
      peer.stdin.flush();
      return (batch * steps) / Number(await line());
    },
    close: () => peer.kill(),
  };
}

/** Reads `stream` line by line; past its end, rejects with `ended()`'s message. */
export function lineReader(stream: ReadableStream<Uint8Array>, ended: () => Promise<string> | string): () => Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  return async () => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const out = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return out;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(await ended());
      buffered += decoder.decode(value, { stream: true });
    }
  };
}
