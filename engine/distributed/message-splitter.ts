/**
 * The server's byte stream cut into NATS protocol messages, for skein's native socket (tcp-socket.ts
 * reads the socket; this decides where each byte goes). Over a WebSocket the server frames every
 * protocol message; over plain TCP nothing does, so the socket must find the message boundaries itself
 * before it can hand the client whole messages. The same cut lets the payloads of skein's own subjects
 * bypass the client: they go to a sink as they arrive, and large ones are read straight into place.
 */

const NL = 10;
const EMPTY = new Uint8Array(0);

/**
 * Where the payloads of MSGs on one subject go instead of the client: the receiving transport, which
 * checks each frame's header as soon as it is in and writes the body straight into its destination.
 */
export interface PayloadSink {
  /** A MSG on the subject begins; `bytes` payload bytes follow. */
  begin(bytes: number): void;
  /** The payload's next bytes, in order (a view valid during the call only). */
  write(bytes: Uint8Array): void;
  /** The payload is complete. */
  end(): void;
  /**
   * Where the payload's next bytes (at most `max`) go, so that the socket can read them straight in:
   * a view into their destination, or null (then they come through `write`). `placed(n)` follows once
   * `n` bytes were read into it.
   */
  place?(max: number): Uint8Array | null;
  placed?(n: number): void;
}

/** Routed payloads at least this large are read straight into their destination (smaller ones are latency, not bytes). */
const DIRECT_BYTES = 64 << 10;

const enum State {
  /** Reading a protocol line (INFO, PING, MSG …). */
  line,
  /** Assembling a message for the client: its line, payload and CRLF. */
  whole,
  /** Passing a routed MSG's payload to its sink. */
  routed,
  /** Skipping the CRLF after a routed payload. */
  trailer,
}

/**
 * The server's byte stream cut into protocol messages. A MSG on a routed subject has its payload
 * passed, as it arrives, to that subject's sink: each byte is copied once, from the socket's read into
 * wherever the sink puts it; the client never sees it. Everything else reaches the client whole, in a
 * fresh buffer of its own: a control line alone, a MSG or HMSG line with its payload and CRLF.
 */
export class MessageSplitter {
  /** A protocol line not finished by the last read. */
  private line: Uint8Array = EMPTY;
  private state = State.line;
  /** A message being assembled for the client, and how much of it is in. */
  private message: Uint8Array = EMPTY;
  private filled = 0;
  /** Bytes of the routed payload (state routed) or of its trailer (state trailer) still to come. */
  private left = 0;
  private sink: PayloadSink | null = null;

  constructor(
    private readonly deliver: (message: Uint8Array) => void,
    /** Sinks by subject (the subscriptions whose messages skip the client). */
    readonly routes = new Map<string, PayloadSink>(),
  ) {}

  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.state) {
        case State.whole: {
          const n = Math.min(chunk.length - at, this.message.length - this.filled);
          this.message.set(chunk.subarray(at, at + n), this.filled);
          this.filled += n;
          at += n;
          if (this.filled === this.message.length) {
            const done = this.message;
            this.message = EMPTY;
            this.state = State.line;
            this.deliver(done);
          }
          continue;
        }
        case State.routed: {
          const n = Math.min(chunk.length - at, this.left);
          if (n > 0) this.sink!.write(chunk.subarray(at, at + n));
          at += n;
          this.left -= n;
          if (this.left === 0) this.finishRouted();
          continue;
        }
        case State.trailer: {
          const n = Math.min(chunk.length - at, this.left);
          at += n;
          this.left -= n;
          if (this.left === 0) this.state = State.line;
          continue;
        }
        case State.line: {
          const nl = chunk.indexOf(NL, at);
          if (nl < 0) {
            this.line = concat(this.line, chunk.subarray(at));
            return;
          }
          const line = this.line.length > 0 ? concat(this.line, chunk.subarray(at, nl + 1)) : chunk.subarray(at, nl + 1);
          this.line = EMPTY;
          at = nl + 1;
          const payload = payloadBytes(line);
          if (payload < 0) {
            this.deliver(new Uint8Array(line)); // a copy of its own (the runtime reads into Buffers, whose slice() is a view)
            continue;
          }
          const sink = this.routes.size > 0 ? this.routeOf(line) : null;
          if (sink) {
            this.sink = sink;
            this.left = payload;
            this.state = State.routed;
            sink.begin(payload);
            if (payload === 0) this.finishRouted();
            continue;
          }
          this.message = new Uint8Array(line.length + payload + 2);
          this.message.set(line);
          this.filled = line.length;
          this.state = State.whole;
        }
      }
    }
  }

  /** A large routed payload is coming in whose sink can take bytes in place: worth reading the socket directly. */
  directWanted(): boolean {
    return this.state === State.routed && this.left >= DIRECT_BYTES && this.sink!.place !== undefined;
  }

  /** Where the routed payload's next bytes may be read straight into, or null (between payloads, or the sink has no place for them). */
  directView(): Uint8Array | null {
    return this.state === State.routed && this.left > 0 ? (this.sink!.place?.(this.left) ?? null) : null;
  }

  /** `n` bytes were read into the last `directView`. */
  advanceDirect(n: number): void {
    this.sink!.placed!(n);
    this.left -= n;
    if (this.left === 0) this.finishRouted();
  }

  private finishRouted(): void {
    const sink = this.sink!;
    this.sink = null;
    this.left = 2; // the payload's CRLF
    this.state = State.trailer;
    sink.end();
  }

  /** The sink of a MSG line (not HMSG: a message with NATS headers goes to the client) on a routed subject. */
  private routeOf(line: Uint8Array): PayloadSink | null {
    if (line[0] !== 77) return null; // "MSG "
    const end = line.indexOf(32, 4);
    return end < 0 ? null : (this.routes.get(decoder.decode(line.subarray(4, end))) ?? null);
  }
}

const decoder = new TextDecoder();

/** A fresh buffer holding a then b (a is small: a control line's start). */
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** MSG and HMSG lines end with the payload's total size; -1 for every other line. */
function payloadBytes(line: Uint8Array): number {
  const msg = line[0] === 77 && line[1] === 83 && line[2] === 71 && line[3] === 32; // "MSG "
  const hmsg = line[0] === 72 && line[1] === 77 && line[2] === 83 && line[3] === 71 && line[4] === 32; // "HMSG "
  if (!msg && !hmsg) return -1;
  let end = line.length;
  while (end > 0 && (line[end - 1] === 10 || line[end - 1] === 13 || line[end - 1] === 32)) end--;
  let start = end;
  while (start > 0 && line[start - 1]! >= 48 && line[start - 1]! <= 57) start--;
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + (line[i]! - 48);
  return start < end ? n : -1;
}
