/**
 * A relayed wake (KIND.wake): the woken word, a u32 byte offset into the arena (little-endian), then
 * the bytes of the regions its waiter reads, whose sizes both sides know from the plan
 * (`CrossProcessPlan.relay`). The receiver checks the word and the size before it writes anything.
 */
import { regionViews, scatterRegions, totalBytes, type CrossProcessPlan, type Region } from "./exchange.ts";

type RelayOf = (word: number) => { from: number; to: number; regions: Region[] } | null;

/**
 * The word and the regions of a wake that rank `from` sent rank `to`, or a sentence (naming the ranks
 * by `names`) saying why this rank does not accept it.
 */
export function checkWake(body: Uint8Array, from: number, to: number, relayOf: RelayOf, names: readonly string[]): { word: number; regions: Region[] } | string {
  const word = body.length >= 4 ? new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, true) : 0;
  const relay = word !== 0 && word % 4 === 0 ? relayOf(word) : null;
  if (!relay || relay.to !== to || relay.from !== from) return `${names[from]} relayed a wake of word ${word} that ${names[to]} does not wait on from it`;
  if (body.length !== 4 + totalBytes(relay.regions)) return `${names[from]} relayed word ${word} with ${body.length - 4} bytes where ${totalBytes(relay.regions)} were due`;
  return { word, regions: relay.regions };
}

/**
 * The words a program of rank `rank` may wake that its main thread acts on: one that a streamed
 * barrier's region names as ready (every word of `wakeWords` where the plan streams), or one that
 * `relay` sends to another rank. Null where the plan does not say where its wake words lie (then every
 * woken word must be queued).
 */
export function wordsToRelay(cross: CrossProcessPlan, rank: number): number[] | null {
  if (!cross.wakeWords) return null;
  const words: number[] = [];
  for (const { ptr, bytes } of cross.wakeWords) {
    for (let w = ptr; w < ptr + bytes; w += 4) {
      const relay = cross.relay?.(w);
      if (cross.streams || (relay && relay.to !== rank)) words.push(w);
    }
  }
  return words;
}

/** A woken word's relay (CrossProcessPlan.relay) with its message: the word, then the regions' views. */
export type Relay = { from: number; to: number; regions: Region[]; parts: Uint8Array[]; bytes: number };

/**
 * The plan's relays, each computed once per word with the parts of its message (the word, then views
 * of its regions in the arena), for sending a wake and for checking and applying one that arrives.
 */
export class RelayTable {
  private readonly relays = new Map<number, Relay | null>();
  private readonly arenaWords: Int32Array;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly plan: CrossProcessPlan,
  ) {
    this.arenaWords = new Int32Array(memory.buffer);
  }

  of(word: number): Relay | null {
    let relay = this.relays.get(word);
    if (relay === undefined) {
      const plan = this.plan.relay?.(word) ?? null;
      const head = new Uint8Array(4);
      new DataView(head.buffer).setUint32(0, word, true);
      relay = plan && { ...plan, parts: [head, ...regionViews(this.memory, plan.regions)], bytes: 4 + totalBytes(plan.regions) };
      this.relays.set(word, relay);
    }
    return relay;
  }

  /**
   * A relayed wake from rank `from` to this rank `to`: checked as checkWake does; if accepted, what it
   * carries is written into its regions and then its word is bumped (null). Else the reason (nothing
   * written).
   */
  accept(body: Uint8Array, from: number, to: number, names: readonly string[]): string | null {
    const wake = checkWake(body, from, to, (w) => this.of(w), names);
    if (typeof wake === "string") return wake;
    scatterRegions(this.memory, wake.regions, body.subarray(4));
    Atomics.add(this.arenaWords, wake.word >> 2, 1);
    Atomics.notify(this.arenaWords, wake.word >> 2);
    return null;
  }
}
