/**
 * The wire format between the processes of one run. Every NATS message is one frame: a fixed
 * 40-byte header, then up to `chunkBytes` of body. A message longer than the server's max_payload is
 * cut into chunks sent back to back (NATS keeps one publisher's messages to one subject in order).
 *
 *   offset  field
 *    0  u32  magic "SKN1"
 *    4  u8   version (1)        5 u8 kind       6 u16 sender rank
 *    8  u32  run id, low        12 u32 run id, high
 *   16  u16  receiver rank      18 u16 reserved (0)
 *   20  u32  sequence: frames from this sender to this receiver, from 0, no gaps
 *   24  u32  tag (barrier index, epoch, …: what the receiver expects next)
 *   28  u32  message bytes (all chunks)
 *   32  u32  this chunk's offset in the message
 *   36  u32  this chunk's bytes (= frame length − 40)
 *
 * All little-endian. The receiver checks every field (framing.ts); a frame that fails a check ends the
 * run with an error naming the field, and its bytes are never copied into the run's memory.
 */

export const MAGIC = 0x314e4b53; // "SKN1" read as a little-endian u32
export const VERSION = 1;
export const HEADER_BYTES = 40;

/** What a message is. */
export const KIND = {
  /** follower → coordinator: the session is open and subscribed. */
  ready: 1,
  /** coordinator → follower: what to do next (JSON: run an epoch, or finish). */
  command: 2,
  /** vectors at a barrier (tag: the barrier's index in the epoch). */
  exchange: 3,
  /** whole vectors: the resumed state at start (coordinator → follower), owned state after an epoch (follower → coordinator). */
  state: 4,
  /** follower → coordinator: its programs' epoch results (JSON). */
  results: 5,
  /** follower → coordinator: per program, Σ loss and samples so far this epoch. */
  progress: 6,
  /** anyone → anyone: still alive. */
  heartbeat: 7,
  /** anyone → anyone: the run ends, with this reason (UTF-8). */
  abort: 8,
  /** a woken word another process waits on (u32 byte offset), then the regions its waiter reads. */
  wake: 9,
} as const;

export type Kind = (typeof KIND)[keyof typeof KIND];
export const KIND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(KIND).map(([name, k]) => [k, name]));

export interface FrameHeader {
  kind: number;
  sender: number;
  runId: bigint;
  receiver: number;
  sequence: number;
  tag: number;
  messageBytes: number;
  chunkOffset: number;
  chunkBytes: number;
}

/** A run id: 64 random bits, written as 16 hex digits in subjects. */
export function newRunId(): bigint {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (BigInt(words[1]!) << 32n) | BigInt(words[0]!);
}

export const runIdHex = (id: bigint): string => id.toString(16).padStart(16, "0");

export function parseRunId(hex: string): bigint {
  if (!/^[0-9a-f]{16}$/.test(hex)) throw new Error(`run id '${hex}' is not 16 hex digits`);
  return BigInt(`0x${hex}`);
}

/** One frame: header and `body` (a chunk of the message), in a fresh buffer. */
export function encodeFrame(h: FrameHeader, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_BYTES + body.length);
  writeHeader(frame, { ...h, chunkBytes: body.length });
  frame.set(body, HEADER_BYTES);
  return frame;
}

/**
 * One frame holding bytes [offset, offset + chunkBytes) of a message given as `parts` back to back
 * (views onto the arena, say): the bytes are copied once, straight from the parts into the frame.
 */
export function encodeFrameFromParts(h: FrameHeader, parts: readonly Uint8Array[]): Uint8Array {
  const frame = new Uint8Array(HEADER_BYTES + h.chunkBytes);
  writeFrameFromParts(frame, h, parts);
  return frame;
}

/** As encodeFrameFromParts, into `frame` (exactly HEADER_BYTES + h.chunkBytes long). */
export function writeFrameFromParts(frame: Uint8Array, h: FrameHeader, parts: readonly Uint8Array[]): void {
  writeHeader(frame, h);
  const end = h.chunkOffset + h.chunkBytes;
  let at = 0; // where the current part starts in the message
  for (const part of parts) {
    const lo = Math.max(h.chunkOffset, at);
    const hi = Math.min(end, at + part.length);
    if (hi > lo) frame.set(part.subarray(lo - at, hi - at), HEADER_BYTES + lo - h.chunkOffset);
    at += part.length;
    if (at >= end) break;
  }
}

function writeHeader(frame: Uint8Array, h: FrameHeader): void {
  const v = new DataView(frame.buffer, frame.byteOffset, HEADER_BYTES);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, VERSION);
  v.setUint8(5, h.kind);
  v.setUint16(6, h.sender, true);
  v.setUint32(8, Number(h.runId & 0xffffffffn), true);
  v.setUint32(12, Number(h.runId >> 32n), true);
  v.setUint16(16, h.receiver, true);
  v.setUint16(18, 0, true);
  v.setUint32(20, h.sequence >>> 0, true);
  v.setUint32(24, h.tag >>> 0, true);
  v.setUint32(28, h.messageBytes, true);
  v.setUint32(32, h.chunkOffset, true);
  v.setUint32(36, h.chunkBytes, true);
}

/**
 * The header of a frame, or a sentence saying why these bytes are not one. `frameBytes`: the whole
 * frame's length, where `frame` holds only its start (a receiver that streams the body in reads the
 * header first).
 */
export function decodeHeader(frame: Uint8Array, frameBytes = frame.length): FrameHeader | string {
  if (frameBytes < HEADER_BYTES) return `${frameBytes} bytes, shorter than the ${HEADER_BYTES}-byte header`;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const magic = v.getUint32(0, true);
  if (magic !== MAGIC) return `bad magic 0x${magic.toString(16).padStart(8, "0")} (want 0x${MAGIC.toString(16)})`;
  const version = v.getUint8(4);
  if (version !== VERSION) return `wire version ${version} (want ${VERSION})`;
  const reserved = v.getUint16(18, true);
  if (reserved !== 0) return `reserved header bytes hold ${reserved} (want 0)`;
  const chunkBytes = v.getUint32(36, true);
  if (chunkBytes !== frameBytes - HEADER_BYTES) return `header says ${chunkBytes} body bytes, the frame holds ${frameBytes - HEADER_BYTES}`;
  return {
    kind: v.getUint8(5),
    sender: v.getUint16(6, true),
    runId: (BigInt(v.getUint32(12, true)) << 32n) | BigInt(v.getUint32(8, true)),
    receiver: v.getUint16(16, true),
    sequence: v.getUint32(20, true),
    tag: v.getUint32(24, true),
    messageBytes: v.getUint32(28, true),
    chunkOffset: v.getUint32(32, true),
    chunkBytes,
  };
}

/** What a receiver knows when a frame arrives: its run, its rank, the peers, and where each sender's sequence is. */
export interface FrameExpectations {
  runId: bigint;
  receiver: number;
  procs: number;
  /** Per sender: the sequence number its next frame must carry. */
  nextSequence: readonly number[];
  maxMessageBytes: number;
  /** How messages name each rank. */
  names: readonly string[];
}

/**
 * The header of a frame that may be accepted, or a sentence saying which field is wrong. Kind and tag
 * are checked again by whoever consumes the message (it knows which one is due).
 */
export function checkFrame(frame: Uint8Array, e: FrameExpectations, frameBytes = frame.length): FrameHeader | string {
  const h = decodeHeader(frame, frameBytes);
  if (typeof h === "string") return h;
  if (h.runId !== e.runId) return `it belongs to run ${runIdHex(h.runId)}, not ${runIdHex(e.runId)}`;
  if (h.receiver !== e.receiver) return `it is addressed to rank ${h.receiver}, not ${e.receiver}`;
  if (h.sender >= e.procs || h.sender === e.receiver) return `sender rank ${h.sender} is not a peer (ranks 0–${e.procs - 1}, this is ${e.receiver})`;
  const from = e.names[h.sender] ?? `rank ${h.sender}`;
  if (!(h.kind in KIND_NAMES)) return `unknown kind ${h.kind} from ${from}`;
  if (h.sequence !== e.nextSequence[h.sender]) return `sequence ${h.sequence} from ${from}, expected ${e.nextSequence[h.sender]} (a message was lost, repeated or forged)`;
  if (h.messageBytes > e.maxMessageBytes) return `${from} announces a ${h.messageBytes}-byte message, more than the ${e.maxMessageBytes} this run can hold`;
  if (h.chunkOffset + h.chunkBytes > h.messageBytes) return `a chunk at ${h.chunkOffset} of ${h.chunkBytes} bytes overruns the ${h.messageBytes}-byte message from ${from}`;
  return h;
}
