/**
 * The NATS client's WebSocket transport over a plain TCP connection to the server's NATS port, on the
 * runtime's native sockets (Bun.connect). The client speaks the same protocol either way; only the
 * framing differs: over WebSocket the server frames its output and the client masks every byte it
 * sends (RFC 6455), which the server must unmask. Measured on the transport bench, nats-server spent
 * about 1.0 CPU-s per GB relaying over its WebSocket listener and about 0.7 over TCP, and the client
 * over node:net (the client's own TCP transport) copied each large message several times while its
 * parser grew a buffer piece by piece.
 *
 * So this socket hands the client the shape it expects of a WebSocket (binaryType, onopen, onmessage
 * with an ArrayBuffer, onclose, onerror, send, close, bufferedAmount), and cuts the server's byte
 * stream into protocol messages itself (message-splitter.ts). The payloads of skein's own subjects
 * (`route`) go from the socket's reads straight to the receiving transport, which writes them into
 * their destination in the run's memory: one copy in user space instead of three (into a message
 * buffer, the client's view of it, then into the arena). Every other message reaches the client whole,
 * in a buffer of exactly its size, so the client's parser finds it complete and copies nothing.
 */
import type { Socket } from "bun";
import { readSync } from "node:fs";
import { MessageSplitter, type PayloadSink } from "./message-splitter.ts";

type Handler<E> = ((event: E) => void) | null;

/** The most bytes of written-out buffers kept for reuse: a gossip barrier's messages, a few parameter vectors. */
const SPARE_BYTES = 32 << 20;
/** The most bytes one `readDirect` takes before it returns to the event loop. */
const READ_TURN = 16 << 20;

export class NatsTcpSocket {
  binaryType = "arraybuffer";
  onopen: Handler<unknown> = null;
  onmessage: Handler<{ data: ArrayBuffer }> = null;
  onclose: Handler<{ wasClean: boolean; reason: string }> = null;
  onerror: Handler<{ message: string }> = null;
  /** Bytes given to `send` the kernel has not taken yet. */
  bufferedAmount = 0;
  /** Payload bytes read straight into their destination (readDirect). */
  bytesReadDirect = 0;
  /** Writes handed to the kernel, reads the runtime delivered, reads of our own (readDirect): the main thread's counts. */
  writes = 0;
  reads = 0;
  directReads = 0;
  /**
   * Buffers written out, for the next bytes that must wait (`bufferOf`, and what the kernel does not
   * take of a `send`): a fresh megabyte buffer costs its page faults on first touch, about as much as
   * the copy into it; a reused one does not. At most SPARE_BYTES are kept.
   */
  private readonly spare: Uint8Array[] = [];
  private spareBytes = 0;
  private socket: Socket<undefined> | null = null;
  /** Whether large routed payloads are read from the descriptor straight into their destination (readDirect). */
  private readsDirect = true;
  /** Where reads between payloads land: a MSG line and a frame header fit. */
  private readonly small = new Uint8Array(256);
  /** What the kernel has not taken yet, in order; `whole`: a handed-over buffer to give back once written. */
  private readonly unsent: { bytes: Uint8Array; whole: Uint8Array | null }[] = [];
  private drainWaiters: (() => void)[] = [];
  private closed = false;
  private readonly splitter = new MessageSplitter((message) => this.onmessage?.({ data: message.buffer as ArrayBuffer }));

  /**
   * From now on, the payload of every MSG on `subject` goes to `sink` as it arrives, and the client
   * does not see those messages (its other subscriptions, replies and control lines are unchanged).
   */
  route(subject: string, sink: PayloadSink): void {
    this.splitter.routes.set(subject, sink);
  }

  constructor(hostname: string, port: number) {
    const self = this;
    Bun.connect({
      hostname,
      port,
      socket: {
        open(s) {
          self.socket = s;
          s.setNoDelay?.(true);
          self.onopen?.({});
        },
        data(s, chunk) {
          self.reads++;
          self.splitter.push(chunk);
          if (self.readsDirect && self.splitter.directWanted()) self.readDirect(s);
        },
        drain() {
          self.flush();
        },
        // The server closed its side: close ours as well (a half-closed socket left open kept the
        // runtime's event loop polling it: a core spun at 100% after the run).
        end(s) {
          s.terminate();
          self.end(true, "");
        },
        close() {
          self.end(true, "");
        },
        error(_s, e) {
          self.onerror?.({ message: e.message });
          self.end(false, e.message);
        },
        connectError(_s, e) {
          self.onerror?.({ message: e.message });
          self.end(false, e.message);
        },
      },
    }).catch((e: Error) => {
      this.onerror?.({ message: e.message });
      this.end(false, e.message);
    });
  }

  /**
   * A large routed payload is coming in: read the socket ourselves (it is non-blocking), each read of
   * the payload's bytes straight into its destination, until the kernel has nothing more. The runtime
   * would read into a buffer of its own and hand over a fresh copy (up to 512 KiB per read): one copy
   * and one fresh buffer per read fewer (receiver 0.28 -> 0.17 CPU-s/GB on a local stream of 1 MiB
   * messages). Between payloads it reads little at a time (a MSG line and a frame header), through the
   * splitter as usual. Where the runtime gives no descriptor, or a read fails otherwise than "nothing
   * more", the runtime's reads do it all from then on.
   */
  private readDirect(s: Socket<undefined>): void {
    const fd = (s as unknown as { fd?: unknown }).fd;
    if (typeof fd !== "number" || fd < 0) {
      this.readsDirect = false;
      return;
    }
    // At most READ_TURN bytes per turn: a long burst must not hold timers (heartbeats) back; the rest
    // is still readable, so the runtime calls again.
    for (let taken = 0; taken < READ_TURN; ) {
      const into = this.splitter.directView();
      let n: number;
      this.directReads++;
      try {
        n = readSync(fd, into ?? this.small, 0, (into ?? this.small).length, null);
      } catch (e) {
        if ((e as { code?: string }).code !== "EAGAIN" && (e as { code?: string }).code !== "EWOULDBLOCK") this.readsDirect = false;
        return;
      }
      if (n <= 0) return; // end of stream: the runtime's next read sees it too
      taken += n;
      if (into) {
        this.bytesReadDirect += n;
        this.splitter.advanceDirect(n);
      }
      else this.splitter.push(this.small.subarray(0, n));
    }
  }

  /**
   * Write `data`. The caller may reuse it once this returns (what the kernel does not take is copied),
   * unless it hands it over (`handedOver`: kept as it is until written).
   */
  send(data: ArrayBuffer | ArrayBufferView, handedOver = false): void {
    if (this.closed || !this.socket) return;
    const bytes = data instanceof Uint8Array ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    if (this.unsent.length > 0) return this.keep(bytes, handedOver ? bytes : null);
    this.writes++;
    const written = this.socket.write(bytes);
    if (written < bytes.length) this.keep(bytes.subarray(Math.max(0, written)), handedOver ? bytes : null);
    else if (handedOver) this.recycle(bytes);
  }

  /** Resolves once the kernel has taken everything sent so far (or the socket closed). */
  drained(): Promise<void> {
    if (this.unsent.length === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    if (this.unsent.length > 0) this.socket?.end();
    else this.socket?.terminate();
    this.end(true, "");
  }

  /** A buffer of `bytes` to build a message in and hand over (`send(…, true)`): a spare one if one is large enough. */
  bufferOf(bytes: number): Uint8Array {
    const i = this.spare.findIndex((b) => b.length >= bytes);
    if (i < 0) return new Uint8Array(bytes);
    const b = this.spare.splice(i, 1)[0]!;
    this.spareBytes -= b.length;
    return b.subarray(0, bytes);
  }

  private keep(bytes: Uint8Array, whole: Uint8Array | null): void {
    if (!whole) {
      whole = this.bufferOf(bytes.length);
      whole.set(bytes);
      bytes = whole;
    }
    this.unsent.push({ bytes, whole });
    this.bufferedAmount += bytes.length;
  }

  /** A buffer the kernel has taken all of: kept for `bufferOf` (the whole of its memory). */
  private recycle(buffer: Uint8Array): void {
    if (buffer.byteOffset !== 0 || this.spareBytes + buffer.buffer.byteLength > SPARE_BYTES) return;
    this.spare.push(new Uint8Array(buffer.buffer));
    this.spareBytes += buffer.buffer.byteLength;
  }

  private flush(): void {
    while (this.unsent.length > 0 && this.socket) {
      const head = this.unsent[0]!;
      this.writes++;
      const written = this.socket.write(head.bytes);
      if (written <= 0) return;
      this.bufferedAmount -= written;
      if (written < head.bytes.length) {
        head.bytes = head.bytes.subarray(written);
        return;
      }
      this.unsent.shift();
      if (head.whole) this.recycle(head.whole);
    }
    if (this.unsent.length === 0) this.wakeDrainWaiters();
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private end(wasClean: boolean, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.wakeDrainWaiters();
    this.onclose?.({ wasClean, reason });
  }
}

/** The native socket under a connection made with `tcpSocketFactory` (nats-core 3.x: NatsConnectionImpl.protocol.transport.socket), else null. */
export function nativeSocketOf(nc: unknown): NatsTcpSocket | null {
  const socket = (nc as { protocol?: { transport?: { socket?: unknown } } }).protocol?.transport?.socket;
  return socket instanceof NatsTcpSocket ? socket : null;
}

/** The client's wsFactory: its "WebSocket" to a nats:// URL's host and port. */
export async function tcpSocketFactory(url: string): Promise<{ socket: WebSocket; encrypted: boolean }> {
  const m = /^(?:[a-z]+:\/\/)?(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+):(\d+)/i.exec(url);
  if (!m) throw new Error(`cannot read a host and port in ${url}`);
  const hostname = m[1]!.replace(/^\[|\]$/g, "");
  return { socket: new NatsTcpSocket(hostname, Number(m[2])) as unknown as WebSocket, encrypted: false };
}
