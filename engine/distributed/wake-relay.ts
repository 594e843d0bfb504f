/**
 * Wakes that cross processes: a pipeline stage's hand-offs and slot releases. A program's
 * `sync.wake(word)` is queued in the outbox; the main thread takes every queued word in one sweep and
 * sends, per receiving rank, one message holding all of that rank's words, in wake order, each with
 * the regions its waiter reads. A message's body is its records back to back, each a u32 word (a byte
 * offset in the arena, little-endian) followed by those regions' bytes; both sides know a record's size
 * from the plan (`CrossProcessPlan.relay`), so the body carries no sizes of its own.
 *
 * The receiver checks the whole message before it writes anything: every word must be one it waits
 * on from that sender, every record must fit, and the records must end exactly where the body does.
 * A message that fails a check ends the run; none of its bytes reach the arena.
 */
import { regionViews, totalBytes, type Relay } from "./exchange.ts";

/** A woken word on its way to the process that waits on it. */
export interface Wake {
  word: number;
  relay: Relay;
}

/** A record of a received message: its word, how it is relayed, and where its regions' bytes start. */
export interface ReceivedWake extends Wake {
  at: number;
}

/**
 * Group the words the outbox gave in one sweep by the rank that waits on them, keeping wake order
 * within each group. Words nobody elsewhere waits on, and words carried inside another word's record
 * (`Relay.carried`), are left out.
 */
export function wakesByRank(words: readonly number[], rank: number, relayOf: (word: number) => Relay | null): Map<number, Wake[]> {
  const out = new Map<number, Wake[]>();
  for (const word of words) {
    const relay = relayOf(word);
    if (!relay || relay.to === rank || relay.carried) continue;
    const group = out.get(relay.to);
    if (group) group.push({ word, relay });
    else out.set(relay.to, [{ word, relay }]);
  }
  return out;
}

/** The parts of one message carrying `wakes`: per record its word, then views of its regions (no copy). */
export function wakeMessage(memory: WebAssembly.Memory, wakes: readonly Wake[]): Uint8Array[] {
  const heads = new Uint8Array(4 * wakes.length);
  const view = new DataView(heads.buffer);
  return wakes.flatMap(({ word, relay }, i) => {
    view.setUint32(4 * i, word, true);
    return [heads.subarray(4 * i, 4 * i + 4), ...regionViews(memory, relay.regions)];
  });
}

/** The bytes of a message carrying `wakes`. */
export const wakeMessageBytes = (wakes: readonly Wake[]): number => wakes.reduce((n, w) => n + 4 + totalBytes(w.relay.regions), 0);

/**
 * The records of a wake message that rank `from` sent rank `to`, or a sentence saying what is wrong
 * with it (nothing has been written then).
 */
export function readWakeMessage(body: Uint8Array, from: number, to: number, relayOf: (word: number) => Relay | null): ReceivedWake[] | string {
  if (body.length === 0) return "an empty wake message";
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const wakes: ReceivedWake[] = [];
  for (let at = 0; at < body.length; ) {
    const i = wakes.length;
    if (body.length - at < 4) return `record ${i} at byte ${at} is cut short: ${body.length - at} bytes left, its word takes 4`;
    const word = view.getUint32(at, true);
    const relay = word !== 0 && word % 4 === 0 ? relayOf(word) : null;
    if (!relay || relay.from !== from || relay.to !== to || relay.carried) return `record ${i} names word ${word}, which is not one rank ${to} waits on from rank ${from}`;
    const due = totalBytes(relay.regions);
    if (body.length - at - 4 < due) return `record ${i} (word ${word}) has ${body.length - at - 4} bytes left where ${due} are due`;
    wakes.push({ word, relay, at: at + 4 });
    at += 4 + due;
  }
  return wakes;
}

/**
 * A wake message that rank `from` sent rank `to`: checked whole, then applied record by record; or a
 * sentence saying what is wrong with it, and then nothing of it has been written or bumped.
 */
export function acceptWakes(memory: WebAssembly.Memory, body: Uint8Array, from: number, to: number, relayOf: (word: number) => Relay | null): string | null {
  const wakes = readWakeMessage(body, from, to, relayOf);
  if (typeof wakes === "string") return wakes;
  applyWakes(memory, body, wakes);
  return null;
}

/**
 * Apply checked records in order: write each record's regions, bump the words it carries (bumped
 * before it in the sender), then bump its word, waking whoever waits on each.
 */
function applyWakes(memory: WebAssembly.Memory, body: Uint8Array, wakes: readonly ReceivedWake[]): void {
  const words = new Int32Array(memory.buffer);
  const bump = (word: number) => {
    Atomics.add(words, word >> 2, 1);
    Atomics.notify(words, word >> 2);
  };
  for (const { word, relay, at } of wakes) {
    let from = at;
    for (const r of relay.regions) {
      new Uint8Array(memory.buffer, r.ptr, r.bytes).set(body.subarray(from, from + r.bytes));
      from += r.bytes;
    }
    for (const carried of relay.carries ?? []) bump(carried);
    bump(word);
  }
}
