/**
 * The receiving side of one rank's subject, below the transport's receive API: frames arrive as a
 * stream of payloads (the native socket's reads, or the client's whole messages), each frame's header
 * is checked as soon as its 40 bytes are in, and only then does its body go anywhere — straight into
 * the run's memory for a message a receiver already waits on, else into a buffer of its own. Frames
 * are put back together into messages here; what a whole message means is the transport's business.
 *
 * Checking before writing is what keeps a foreign or malformed frame from corrupting weights: its
 * bytes never reach the arena, the run ends instead.
 */
import type { PayloadSink } from "./message-splitter.ts";
import { checkFrame, HEADER_BYTES, KIND, KIND_NAMES, type FrameHeader } from "./frame.ts";

/** A whole message from one rank. */
export interface Message {
  kind: number;
  tag: number;
  bytes: number;
  /**
   * The message's bytes, or null when they were written straight into the receiver's destination.
   * Kinds handled on arrival (ON_ARRIVAL) get a view of a buffer reused for the sender's next such
   * message: valid during `deliver` only.
   */
  body: Uint8Array | null;
}

/** Where a message from a rank goes, if it is the one due (a receiver posted it with `expect`). */
export interface Destination {
  kind: number;
  tag: number;
  bytes: number;
  parts: readonly Uint8Array[];
}

/** A message whose frames are coming in. */
interface Partial {
  header: FrameHeader;
  /** Assembled here, or (body null) written chunk by chunk into `into`. */
  body: Uint8Array | null;
  into: Destination | null;
  /** Bytes of the message in, counting whole frames. */
  filled: number;
}

/** Kinds handled on arrival (they never fill a posted destination). */
export const ON_ARRIVAL = new Set<number>([KIND.heartbeat, KIND.progress, KIND.abort, KIND.wake]);

/** What the intake checks against, and what it tells its transport. */
export interface IntakeOwner {
  readonly runId: bigint;
  readonly rank: number;
  readonly procs: number;
  /** Per rank, how messages name it. */
  readonly names: string[];
  /** Whether the run has already failed (then everything arriving is dropped). */
  failed(): boolean;
  /** A frame failed a check: end the run (its bytes were not written anywhere). */
  refuse(why: string): void;
  /** A frame from `sender` passed its checks (the sender is alive). */
  heard(sender: number): void;
  /** A message is complete. */
  deliver(from: number, message: Message): void;
}

export class FrameIntake implements PayloadSink {
  /** The largest message accepted (a bigger claimed size is refused before any buffer is allocated). */
  maxMessageBytes = 1 << 30;
  private readonly nextSequenceFrom: number[];
  /** Per sender: the message its frames are filling (from its first frame's header to its last byte). */
  private readonly partial: (Partial | null)[];
  /** Per sender: where its next messages go, in order, while a receiver waits on them. */
  private readonly destinations: Destination[][];
  /** The frame coming in: its header's bytes, its announced length, the bytes seen, and its message once the header passed. */
  private readonly frameHead = new Uint8Array(HEADER_BYTES);
  private frameBytes = 0;
  private frameSeen = 0;
  private frame: { header: FrameHeader; message: Partial } | null = null;
  /**
   * Per sender, the buffer its messages handled on arrival (a relayed wake's activations, say) are
   * assembled in, reused: a fresh one per message cost its pages' first touch (about 16 page faults
   * per 1F1B step on each main thread at D = 2, as many as the runtime's own read buffers).
   */
  private readonly arrivalBuffers: Uint8Array[];

  constructor(private readonly owner: IntakeOwner) {
    this.nextSequenceFrom = new Array(owner.procs).fill(0);
    this.partial = new Array(owner.procs).fill(null);
    this.destinations = Array.from({ length: owner.procs }, () => []);
    this.arrivalBuffers = Array.from({ length: owner.procs }, () => new Uint8Array(0));
  }

  /** Whether a message from `from` has started arriving and is not complete yet. */
  arriving(from: number): boolean {
    return this.partial[from] !== null;
  }

  /**
   * The next messages from `from` go into these destinations, in order, each once its first header
   * matches it (kind, tag, size); the first that does not match cancels the rest and is queued, so
   * that its receiver fails on it. Post only when nothing from `from` is queued or arriving.
   */
  expect(from: number, destinations: Destination[]): void {
    this.destinations[from] = destinations;
  }

  /** No more messages from `from` go into posted destinations. */
  cancel(from: number): void {
    this.destinations[from] = [];
  }

  begin(bytes: number): void {
    this.frameBytes = bytes;
    this.frameSeen = 0;
    this.frame = null;
  }

  write(bytes: Uint8Array): void {
    if (this.owner.failed()) return;
    let at = 0;
    if (this.frameSeen < HEADER_BYTES) {
      at = Math.min(bytes.length, HEADER_BYTES - this.frameSeen);
      this.frameHead.set(bytes.subarray(0, at), this.frameSeen);
      this.frameSeen += at;
      if (this.frameSeen === HEADER_BYTES) this.frame = this.startFrame(this.frameHead, this.frameBytes);
    }
    if (at < bytes.length && this.frame) {
      this.writeBody(this.frame.header, this.frame.message, this.frameSeen - HEADER_BYTES, bytes.subarray(at));
      this.frameSeen += bytes.length - at;
    }
  }

  place(max: number): Uint8Array | null {
    const f = this.frame;
    if (this.owner.failed() || !f || this.frameSeen < HEADER_BYTES) return null;
    const n = Math.min(max, this.frameBytes - this.frameSeen);
    return placeIn(f.header.chunkOffset + this.frameSeen - HEADER_BYTES, n, f.message);
  }

  placed(n: number): void {
    this.frameSeen += n;
  }

  end(): void {
    if (this.owner.failed()) return;
    if (this.frameSeen < HEADER_BYTES) this.startFrame(this.frameHead.subarray(0, this.frameSeen), this.frameBytes); // refused: too short
    else if (this.frame) this.endFrame(this.frame.header, this.frame.message);
    this.frame = null;
  }

  /** A frame's header is in: check it, and find where its body goes (null: refused, the run ends). */
  private startFrame(head: Uint8Array, frameBytes: number): { header: FrameHeader; message: Partial } | null {
    const { procs, rank, runId, names } = this.owner;
    const h = checkFrame(head, { runId, receiver: rank, procs, nextSequence: this.nextSequenceFrom, maxMessageBytes: this.maxMessageBytes, names }, frameBytes);
    const bad = (why: string) => {
      this.owner.refuse(why);
      return null;
    };
    if (typeof h === "string") return bad(h);
    const from = names[h.sender]!;
    this.nextSequenceFrom[h.sender]!++;
    this.owner.heard(h.sender);

    let p = this.partial[h.sender];
    if (p) {
      if (h.kind !== p.header.kind || h.tag !== p.header.tag || h.messageBytes !== p.header.messageBytes || h.chunkOffset !== p.filled) {
        return bad(`${from} interleaved a ${KIND_NAMES[h.kind]} frame into its unfinished ${KIND_NAMES[p.header.kind]} message`);
      }
    } else {
      if (h.chunkOffset !== 0) return bad(`${from}'s message starts at offset ${h.chunkOffset}`);
      // The message a receiver waits on, nothing queued before it: straight into its destination.
      const waiting = this.destinations[h.sender]!;
      let into: Destination | null = null;
      if (!ON_ARRIVAL.has(h.kind) && waiting.length > 0) {
        const d = waiting[0]!;
        if (d.kind === h.kind && d.tag === h.tag && d.bytes === h.messageBytes) into = waiting.shift()!;
        else this.destinations[h.sender] = []; // not the one due: queued, and its receiver fails on it
      }
      p = { header: h, body: into ? null : ON_ARRIVAL.has(h.kind) ? this.arrivalBody(h.sender, h.messageBytes) : new Uint8Array(h.messageBytes), into, filled: 0 };
      this.partial[h.sender] = p;
    }
    return { header: h, message: p };
  }

  /** `bytes` of the sender's reused buffer for messages handled on arrival (grown when too small). */
  private arrivalBody(sender: number, bytes: number): Uint8Array {
    if (this.arrivalBuffers[sender]!.length < bytes) this.arrivalBuffers[sender] = new Uint8Array(Math.max(bytes, 2 * this.arrivalBuffers[sender]!.length));
    return this.arrivalBuffers[sender]!.subarray(0, bytes);
  }

  /** Bytes at `offset` of a frame's body, written where its message goes. */
  private writeBody(h: FrameHeader, p: Partial, offset: number, bytes: Uint8Array): void {
    if (p.into) copyIntoParts(p.into.parts, h.chunkOffset + offset, bytes);
    else p.body!.set(bytes, h.chunkOffset + offset);
  }

  /** A frame is complete: its message too, if it was the last. */
  private endFrame(h: FrameHeader, p: Partial): void {
    p.filled += h.chunkBytes;
    if (p.filled < h.messageBytes) return;
    this.partial[h.sender] = null;
    this.owner.deliver(h.sender, { kind: h.kind, tag: h.tag, bytes: h.messageBytes, body: p.body });
  }
}

/** A view of up to `n` bytes at `offset` of a message's destination (within one of its parts). */
function placeIn(offset: number, n: number, p: Partial): Uint8Array {
  if (!p.into) return p.body!.subarray(offset, offset + n);
  let at = 0; // where the current part starts in the message
  for (const part of p.into.parts) {
    if (offset < at + part.length) return part.subarray(offset - at, Math.min(part.length, offset - at + n));
    at += part.length;
  }
  return new Uint8Array(0);
}

/** Write `bytes` at `offset` of the message made of `parts` back to back. */
export function copyIntoParts(parts: readonly Uint8Array[], offset: number, bytes: Uint8Array): void {
  const end = offset + bytes.length;
  let at = 0; // where the current part starts in the message
  for (const part of parts) {
    const lo = Math.max(offset, at);
    const hi = Math.min(end, at + part.length);
    if (hi > lo) part.set(bytes.subarray(lo - offset, hi - offset), lo - at);
    at += part.length;
    if (at >= end) break;
  }
}
