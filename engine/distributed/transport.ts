/**
 * The link between the processes of one run: one NATS connection per process, one subject per rank
 * (`skein.run.<run id>.<rank>`), framed and checked messages (frame.ts), liveness by heartbeats.
 *
 * Messages between two ranks are a conversation whose order both sides know (the protocol is
 * deterministic), so a receiver always says what it expects next: `receive(from, kind, tag)`.
 * Anything else — a frame from another run, from an unknown rank, out of sequence, of the wrong kind,
 * tag or size — ends the run with an error naming what was wrong and where it came from; the bytes of
 * such a frame never reach the run's memory. Heartbeats, progress and aborts are handled on arrival.
 *
 * Any failure (a peer's abort, a peer silent past the heartbeat timeout, the server gone, a bad frame)
 * is recorded once; `failed` rejects with it, so every wait of the run races it and none can hang.
 */
import { connect, wsconnect, type NatsConnection } from "@nats-io/transport-node";
import { RunError, UserError } from "../errors.ts";
import { FramePublisher } from "./publish.ts";
import { nativeSocketOf, tcpSocketFactory } from "./tcp-socket.ts";
import { FrameIntake, copyIntoParts, type Message } from "./frame-intake.ts";
import { writeFrameFromParts, HEADER_BYTES, KIND, KIND_NAMES, runIdHex, type Kind } from "./frame.ts";

/** How often a process tells the others it is alive, and how long a silent peer is given. */
export const HEARTBEAT_MS = 200;
export const SILENCE_LIMIT_MS = 1_500;

export interface TransportOptions {
  url: string;
  token?: string;
  runId: bigint;
  rank: number;
  procs: number;
  /** Per rank, how messages name it ("rank 2 (pid 81 on host a)"); filled in as ranks enlist. */
  names?: string[];
  /** Called once, with the first failure. */
  onFailure?: (error: RunError) => void;
  /** nats:// URLs: Bun's native TCP socket (default) or node:net (the client's own TCP transport). */
  socket?: "native" | "node:net";
}

export const subjectOf = (runId: bigint, rank: number): string => `skein.run.${runIdHex(runId)}.${rank}`;

export class Transport {
  readonly failed: Promise<never>;
  failure: RunError | null = null;
  /** Bytes and frames this process published (headers included). */
  bytesSent = 0;
  framesSent = 0;
  /** Heartbeats sent (one per peer per tick of the heartbeat timer). */
  heartbeatsSent = 0;
  readonly names: string[];
  /** Relayed wakes (the executor sets it): handled on arrival, in order; `body` is valid during the call only. */
  onWake: ((from: number, body: Uint8Array) => void) | null = null;
  /** Progress frames from followers (the coordinator sets it once its session is open); `body` is valid during the call only. */
  onProgress: ((from: number, body: Uint8Array) => void) | null = null;
  private rejectFailed!: (e: RunError) => void;
  /**
   * Frames arriving on this rank's subject, as a stream of payloads (the native socket's reads, or
   * the client's messages): checked, put back together, and handed to `deliver` as whole messages.
   */
  readonly intake: FrameIntake;
  private readonly nextSequenceTo: number[];
  /** Per rank, its subject (built once: the run id's hex is a BigInt's toString). */
  private readonly subjects: string[];
  private readonly lastHeard: number[];
  private readonly queues: Message[][];
  private readonly waiters: ((() => void) | null)[];
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private readonly chunkBytes: number;
  private readonly publisher: FramePublisher;
  private closing = false;

  /** Over an open connection; `Transport.connect` opens one and feeds `intake` from this rank's subject. */
  constructor(
    private readonly nc: NatsConnection,
    private readonly options: TransportOptions,
  ) {
    const { procs, rank } = options;
    this.names = options.names ?? Array.from({ length: procs }, (_, r) => `rank ${r}`);
    this.nextSequenceTo = new Array(procs).fill(0);
    this.subjects = Array.from({ length: procs }, (_, r) => subjectOf(options.runId, r));
    this.lastHeard = new Array(procs).fill(Date.now());
    this.queues = Array.from({ length: procs }, () => []);
    this.waiters = new Array(procs).fill(null);
    this.publisher = new FramePublisher(nc);
    this.chunkBytes = Math.max(1024, (nc.info?.max_payload ?? 1 << 20) - HEADER_BYTES - 256);
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => {}); // observed through races
    this.intake = new FrameIntake({
      runId: options.runId,
      rank,
      procs,
      names: this.names,
      failed: () => this.failure !== null,
      refuse: (why) => this.abort(`rejected a message on ${subjectOf(options.runId, rank)}: ${why}`),
      heard: (sender) => (this.lastHeard[sender] = Date.now()),
      deliver: (from, m) => {
        try {
          this.deliver(from, m);
        } catch (e) {
          this.abort(`${this.names[this.rank]}: handling a message failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      },
    });
  }

  /** The largest message accepted (a bigger claimed size is refused before any buffer is allocated); the executor lowers it to the arena's size. */
  get maxMessageBytes(): number {
    return this.intake.maxMessageBytes;
  }

  set maxMessageBytes(bytes: number) {
    this.intake.maxMessageBytes = bytes;
  }

  /**
   * Connect, subscribe to this rank's subject, and make sure the server has the subscription. Over
   * skein's native socket, the subject's payloads come straight from the socket's reads into `intake`
   * (one copy, into their destination); otherwise the client hands each frame to the subscription.
   */
  static async connect(options: TransportOptions): Promise<Transport> {
    const nc = await connectTo(options.url, options.token, options.socket);
    const t = new Transport(nc, options);
    const subject = subjectOf(options.runId, options.rank);
    nativeSocketOf(nc)?.route(subject, t.intake);
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return t.fail(`subscription failed: ${err.message}`);
        t.intake.begin(msg.data.length);
        t.intake.write(msg.data);
        t.intake.end();
      },
    });
    nc.closed().then((e) => {
      if (!t.closing) t.fail(`lost the connection to the NATS server at ${options.url}${e ? ` (${e.message})` : ""}`);
    });
    await nc.flush();
    return t;
  }

  /** The NATS connection itself (enlisting uses it before the run's messages start). */
  get connection(): NatsConnection {
    return this.nc;
  }

  get rank(): number {
    return this.options.rank;
  }

  get procs(): number {
    return this.options.procs;
  }

  /**
   * Publish one message to rank `to`: `body`, or `parts` sent back to back as one message (regions of
   * the arena: each byte is copied once, into its frame). Cut into chunks below the server's max_payload.
   */
  send(to: number, kind: Kind, tag: number, body: Uint8Array | readonly Uint8Array[]): void {
    if (this.failure || this.closing) return;
    const parts = body instanceof Uint8Array ? [body] : body;
    const messageBytes = parts.reduce((a, p) => a + p.length, 0);
    const subject = this.subjects[to] ?? subjectOf(this.options.runId, to);
    let offset = 0;
    do {
      const chunkBytes = Math.min(messageBytes - offset, this.chunkBytes);
      const header = { kind, sender: this.options.rank, runId: this.options.runId, receiver: to, sequence: this.nextSequenceTo[to]!++, tag, messageBytes, chunkOffset: offset, chunkBytes };
      this.publisher.publish(subject, HEADER_BYTES + chunkBytes, (frame) => writeFrameFromParts(frame, header, parts));
      this.bytesSent += HEADER_BYTES + chunkBytes;
      this.framesSent++;
      offset += chunkBytes;
    } while (offset < messageBytes);
  }

  /** Resolves once everything sent so far has left this process (the kernel has it), so a sender can pace itself. */
  drained(): Promise<void> {
    return this.publisher.drained();
  }

  sendJson(to: number, kind: Kind, tag: number, value: unknown): void {
    this.send(to, kind, tag, new TextEncoder().encode(JSON.stringify(value)));
  }

  /** The next message from `from`, which must be of this kind and tag (and `bytes` long, when given). */
  async receive(from: number, kind: Kind, tag: number, bytes?: number): Promise<Uint8Array> {
    const m = await this.next(from, kind, tag, bytes);
    return m.body!;
  }

  /**
   * The next message from `from`, which must be of this kind and tag and exactly fill `parts` (views
   * onto the arena), written into them. Frames that arrive while this waits go straight into the parts,
   * each once its header has passed every check: the bytes are copied once, not assembled first.
   */
  async receiveInto(from: number, kind: Kind, tag: number, parts: readonly Uint8Array[]): Promise<void> {
    await this.receiveEachInto(from, kind, tag, [parts]);
  }

  /**
   * The next `messages.length` messages from `from`, each of this kind and tag, each written into its
   * parts. All of them wait for their frames at once, so a message that arrives right behind another
   * (in the same read) still goes straight into its place.
   */
  async receiveEachInto(from: number, kind: Kind, tag: number, messages: readonly (readonly Uint8Array[])[]): Promise<void> {
    const sizes = messages.map((parts) => parts.reduce((a, p) => a + p.length, 0));
    let posted = false;
    try {
      for (let i = 0; i < messages.length; i++) {
        // Only once nothing from `from` is queued or coming in: the next message to arrive is then message i.
        if (!posted && this.queues[from]!.length === 0 && !this.intake.arriving(from)) {
          this.intake.expect(from, messages.slice(i).map((parts, j) => ({ kind, tag, bytes: sizes[i + j]!, parts })));
          posted = true;
        }
        const m = await this.next(from, kind, tag, sizes[i]);
        if (m.body) copyIntoParts(messages[i]!, 0, m.body);
      }
    } finally {
      if (posted) this.intake.cancel(from);
    }
  }

  private async next(from: number, kind: Kind, tag: number, bytes?: number): Promise<Message> {
    const queue = this.queues[from]!;
    while (queue.length === 0) {
      if (this.failure) throw this.failure;
      await Promise.race([new Promise<void>((resolve) => (this.waiters[from] = resolve)), this.failed]);
    }
    const m = queue.shift()!;
    const what = `${this.names[from]} sent a ${KIND_NAMES[m.kind] ?? `kind-${m.kind}`} message (tag ${m.tag}, ${m.bytes} bytes)`;
    if (m.kind !== kind || m.tag !== tag) this.failAndThrow(`${what} where a ${KIND_NAMES[kind]} message with tag ${tag} was due`);
    if (bytes !== undefined && m.bytes !== bytes) this.failAndThrow(`${what} where ${bytes} bytes were due`);
    return m;
  }

  async receiveJson<T>(from: number, kind: Kind, tag: number): Promise<T> {
    const body = await this.receive(from, kind, tag);
    try {
      return JSON.parse(new TextDecoder().decode(body)) as T;
    } catch {
      return this.failAndThrow(`${this.names[from]} sent a ${KIND_NAMES[kind]} message that is not JSON`);
    }
  }

  /** Heartbeats to every other rank from now on, and a watch on theirs. */
  startHeartbeats(): void {
    if (this.heartbeat) return;
    const now = Date.now();
    this.lastHeard.fill(now);
    const empty = new Uint8Array(0);
    let lastTick = now;
    this.heartbeat = setInterval(() => {
      const t = Date.now();
      // This process's own event loop was held up (a long synchronous step, the machine descheduling
      // it): frames from the others may be waiting unread, so their silence proves nothing this time.
      const late = t - lastTick > SILENCE_LIMIT_MS / 2;
      lastTick = t;
      for (let r = 0; r < this.procs; r++) {
        if (r === this.rank) continue;
        this.send(r, KIND.heartbeat, 0, empty);
        this.heartbeatsSent++;
        if (late) this.lastHeard[r] = Math.max(this.lastHeard[r]!, t - HEARTBEAT_MS);
        else if (t - this.lastHeard[r]! > SILENCE_LIMIT_MS) {
          this.fail(`${this.names[r]} sent nothing for ${((t - this.lastHeard[r]!) / 1000).toFixed(1)} s: the process died, its network is gone, or it got no CPU that long (far more processes than cores)`);
        }
      }
    }, HEARTBEAT_MS);
  }

  /**
   * End the run for everyone: tell every other rank why (best effort), then fail here. The first
   * failure wins; later ones are consequences.
   */
  abort(reason: string): void {
    if (this.failure) return;
    const body = new TextEncoder().encode(reason);
    for (let r = 0; r < this.procs; r++) if (r !== this.rank) this.send(r, KIND.abort, 0, body);
    this.fail(reason);
  }

  /** Record the run's failure (once) and wake every waiter. */
  fail(reason: string): void {
    if (this.failure) return;
    this.failure = new RunError(reason);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.rejectFailed(this.failure);
    this.options.onFailure?.(this.failure);
  }

  /** Flush what was published, then close. */
  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.closing) return;
    this.closing = true;
    try {
      await Promise.race([this.nc.drain(), new Promise((r) => setTimeout(r, 2_000))]);
    } catch {
      // already closed
    }
    await this.nc.close().catch(() => {});
  }

  private failAndThrow(reason: string): never {
    this.fail(reason);
    throw this.failure!;
  }

  private deliver(from: number, m: Message): void {
    switch (m.kind) {
      case KIND.heartbeat:
        return;
      case KIND.progress:
        this.onProgress?.(from, m.body!);
        return;
      case KIND.abort:
        this.fail(new TextDecoder().decode(m.body!));
        return;
      case KIND.wake:
        if (!this.onWake) return this.abort(`${this.names[from]} relayed a wake before this process could take one`);
        this.onWake(from, m.body!);
        return;
      default:
        this.queues[from]!.push(m);
        this.waiters[from]?.();
        this.waiters[from] = null;
    }
  }
}

/** The URL with any user:password@ replaced, for messages that may end up in a shared log. */
export const withoutCredentials = (url: string): string => url.replace(/^([a-z]+:\/\/)[^@/]*@/i, "$1…@");

/** A server's WebSocket listener (ws:// or wss://) rather than its plain NATS port. */
export const isWebSocketUrl = (url: string): boolean => /^wss?:\/\//i.test(url);

/**
 * A NATS connection, over the runtime's WebSocket for ws:// and wss:// URLs, else over TCP; a refused
 * token or an unreachable server is the user's error, said in one line.
 */
export async function connectTo(url: string, token: string | undefined, socket: "native" | "node:net" = "native"): Promise<NatsConnection> {
  try {
    const options = { servers: url, ...(token ? { token } : {}), name: `skein ${process.pid}`, maxReconnectAttempts: 0, timeout: 5_000 };
    // nats:// under Bun: the client's WebSocket transport over a native TCP socket (tcp-socket.ts);
    // "node:net" is the client's own TCP transport (the bench compares them).
    const native = socket === "native" && typeof Bun !== "undefined" && /^(nats:\/\/|[^:/]+:\d)/i.test(url); // tls:// keeps node:net's TLS
    return await (isWebSocketUrl(url) ? wsconnect(options) : native ? wsconnect({ ...options, wsFactory: tcpSocketFactory }) : connect(options));
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new UserError(`cannot connect to the NATS server at ${withoutCredentials(url)}: ${why.replaceAll(url, withoutCredentials(url))}${/authorization/i.test(why) ? " (check --token)" : ""}`);
  }
}

/** `p`, or a RunError naming what did not happen within `ms` (or the run's failure, whichever comes first). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string, t: Transport): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RunError(`waited ${ms / 1000} s for ${what}`)), ms)));
  try {
    return await Promise.race([p, late, t.failed]);
  } catch (e) {
    if (!t.failure) t.abort(e instanceof Error ? e.message : String(e));
    throw t.failure ?? e;
  } finally {
    clearTimeout(timer);
  }
}
