/**
 * One barrier's transfers, streamed (gossip's messages): each region leaves as soon as the program
 * that writes it says it is ready (it bumps the region's `ready` word, which reaches the main thread
 * through the outbox), while the programs compute on; the other processes' regions are written into
 * this process's arena as they arrive. At the barrier only what was not ready yet is left to send,
 * and the barrier is released once every incoming region is in place.
 *
 * Every region is its own message, sent to each receiver in the plan's order (a region waits for the
 * ones before it), so the receiver knows which message comes next and each byte is copied once: from
 * the sender's arena into its frame, from the frame into the receiver's arena. The bytes are the ones
 * the barrier would have sent: a region is only declared ready once it holds them, and none is written
 * again before the barrier.
 */
import type { Transport } from "./transport.ts";
import { KIND } from "./frame.ts";
import type { CrossProcessPlan, Region } from "./exchange.ts";

interface Outgoing {
  to: number;
  regions: Region[];
  ready: boolean[];
  /** Regions sent so far (a prefix of `regions`). */
  sent: number;
}

export class StreamedBarrier {
  /** Every incoming region written into the arena (rejects with the run's failure). */
  readonly received: Promise<void>;
  /** Bytes sent for this barrier so far. */
  bytes = 0;
  private readonly out: Outgoing[] = [];
  /** Per ready word: the outgoing lists and positions it releases. */
  private readonly byWord = new Map<number, { o: Outgoing; index: number }[]>();

  constructor(
    private readonly t: Transport,
    private readonly memory: WebAssembly.Memory,
    cross: CrossProcessPlan,
    epoch: number,
    readonly k: number,
  ) {
    const incoming: Promise<void>[] = [];
    for (let r = 0; r < t.procs; r++) {
      if (r === t.rank) continue;
      const regions = cross.transfers(epoch, k, t.rank, r);
      if (regions.length > 0) {
        const o: Outgoing = { to: r, regions, ready: regions.map(() => false), sent: 0 };
        this.out.push(o);
        regions.forEach((region, index) => {
          if (region.ready === undefined) return;
          const list = this.byWord.get(region.ready) ?? [];
          list.push({ o, index });
          this.byWord.set(region.ready, list);
        });
      }
      const from = cross.transfers(epoch, k, r, t.rank);
      if (from.length > 0) incoming.push(this.receive(r, from));
    }
    this.received = Promise.all(incoming).then(() => {});
    this.received.catch(() => {}); // awaited at the barrier; a failure also fails the transport
  }

  /** A program bumped `word`: send whatever is now ready, in order. False: not a word of this barrier. */
  woken(word: number): boolean {
    const releases = this.byWord.get(word);
    if (!releases) return false;
    for (const { o, index } of releases) {
      o.ready[index] = true;
      this.sendReady(o);
    }
    return true;
  }

  /** The barrier: every local program has arrived, so every region holds its bytes; send the rest. */
  flush(): void {
    for (const o of this.out) {
      o.ready.fill(true);
      this.sendReady(o);
    }
  }

  private sendReady(o: Outgoing): void {
    while (o.sent < o.regions.length && o.ready[o.sent]) {
      const r = o.regions[o.sent++]!;
      this.t.send(o.to, KIND.exchange, this.k, [new Uint8Array(this.memory.buffer, r.ptr, r.bytes)]);
      this.bytes += r.bytes;
    }
  }

  /** Each region a message of its own, all posted at once: one that arrives right behind another still goes straight into the arena. */
  private receive(from: number, regions: readonly Region[]): Promise<void> {
    return this.t.receiveEachInto(from, KIND.exchange, this.k, regions.map((r) => [new Uint8Array(this.memory.buffer, r.ptr, r.bytes)]));
  }
}
