/**
 * Publishing a frame with one copy of its bytes. The NATS client's `publish` queues the command line,
 * the payload and its CRLF as three buffers and, when it flushes, concatenates them into a fresh buffer
 * before the socket copies them again: for a parameter vector that is two fresh megabyte buffers per
 * message (their first touch page-faults) and two copies beyond the frame's own. Profiled on the
 * transport bench, the sender spent more of its time there than in the WebSocket's send itself.
 *
 * Over skein's native TCP socket (tcp-socket.ts) or the client's WebSocket, this writes the whole
 * protocol message — `PUB subject n`, CRLF, the frame's header and body straight from the arena, CRLF —
 * into one buffer kept for reuse, flushes whatever the client had queued (so order is kept), and hands
 * it to the socket, which copies it on `send` (or takes it over when its kernel buffer is full). The server sees exactly what
 * `publish` would have sent. Where the connection is not of that shape (the client's own node:net
 * transport, another client version), it uses `publish`.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { NatsTcpSocket } from "./tcp-socket.ts";

/** The parts of the client's connection this relies on (nats-core 3.x: NatsConnectionImpl.protocol). */
interface ClientInternals {
  protocol?: {
    connected: boolean;
    infoReceived: boolean;
    outBytes: number;
    outMsgs: number;
    flushPending(): void;
    transport?: { isClosed: boolean; socket?: unknown };
  };
}

const CRLF = [13, 10];
const encoder = new TextEncoder();

export class FramePublisher {
  private scratch = new Uint8Array(1 << 16);
  /** The socket the client writes to, or null when `publish` must be used. */
  private readonly socket: { send(data: Uint8Array, handedOver?: boolean): void; bufferedAmount: number } | null;

  constructor(private readonly nc: NatsConnection) {
    const p = (nc as unknown as ClientInternals).protocol;
    const socket = p?.transport?.socket;
    const known = (typeof WebSocket !== "undefined" && socket instanceof WebSocket) || socket instanceof NatsTcpSocket;
    this.socket = known && typeof p?.flushPending === "function" ? (socket as NonNullable<FramePublisher["socket"]>) : null;
  }

  /** A buffer for a frame of `frameBytes`, laid out as the protocol message will carry it; `write` fills it. */
  publish(subject: string, frameBytes: number, write: (frame: Uint8Array) => void): void {
    const p = (this.nc as unknown as ClientInternals).protocol;
    if (!this.socket || !p || !p.connected || !p.infoReceived || p.transport?.isClosed) {
      const frame = new Uint8Array(frameBytes);
      write(frame);
      this.nc.publish(subject, frame);
      return;
    }
    const line = encoder.encode(`PUB ${subject} ${frameBytes}\r\n`);
    const total = line.length + frameBytes + 2;
    // A native socket whose kernel buffer is full keeps what it cannot write: then build the message
    // in a buffer of its own and hand it over, rather than have the socket copy the reused one.
    const handOver = this.socket instanceof NatsTcpSocket && this.socket.bufferedAmount > 0;
    if (!handOver && this.scratch.length < total) this.scratch = new Uint8Array(Math.max(total, this.scratch.length * 2));
    const wire = handOver ? (this.socket as NatsTcpSocket).bufferOf(total) : this.scratch.subarray(0, total);
    wire.set(line, 0);
    write(wire.subarray(line.length, line.length + frameBytes));
    wire.set(CRLF, total - 2);
    p.flushPending(); // anything the client queued goes first
    this.socket.send(wire, handOver);
    p.outBytes += frameBytes;
    p.outMsgs++;
  }

  /** Resolves once the socket has written everything published so far (at once where the client buffers itself). */
  drained(): Promise<void> {
    return this.socket instanceof NatsTcpSocket ? this.socket.drained() : Promise.resolve();
  }

}
