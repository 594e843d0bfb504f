/**
 * The ring of woken words a run across processes relays (engine/runtime/outbox.ts): the main thread
 * takes exactly the words programs queued, in claim order; with a filter, exactly those inside its
 * ranges; a filter that needs more ranges than the header holds is refused and every word is queued.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Outbox, OUTBOX_RANGES } from "../engine/runtime/outbox.ts";

const fresh = () => new Outbox(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }), 64);
const takeAll = (o: Outbox) => {
  const out: number[] = [];
  for (let w = o.take(); w !== 0; w = o.take()) out.push(w);
  return out;
};
const never = () => {
  throw new Error("the ring is full");
};
/** Word offsets (multiples of 4, never 0) in a small span, so ranges merge and split. */
const word = fc.integer({ min: 1, max: 64 }).map((i) => 4 * i);

describe("the outbox", () => {
  test("without a filter every word is taken, in the order pushed", () => {
    fc.assert(
      fc.property(fc.array(word, { maxLength: 100 }), (words) => {
        const o = fresh();
        for (const w of words) o.push(w, never);
        expect(takeAll(o)).toEqual(words);
      }),
    );
  });

  test("with a filter exactly the words it names are taken, in the order pushed", () => {
    fc.assert(
      fc.property(fc.uniqueArray(word, { maxLength: 40 }), fc.array(word, { maxLength: 100 }), (relayed, pushed) => {
        const o = fresh();
        const set = new Set(relayed);
        const fits = o.relayOnly(relayed);
        for (const w of pushed) o.push(w, never);
        expect(takeAll(o)).toEqual(fits ? pushed.filter((w) => set.has(w)) : pushed);
        // Runs of consecutive words make the ranges; more runs than the header holds: no filter.
        const runs = [...set].sort((a, b) => a - b).filter((w, i, s) => i === 0 || s[i - 1] !== w - 4).length;
        expect(fits).toBe(runs <= OUTBOX_RANGES);
      }),
    );
  });

  test("an empty filter queues nothing; a long run of consecutive words is one range", () => {
    const o = fresh();
    expect(o.relayOnly([])).toBe(true);
    o.push(4, never);
    expect(takeAll(o)).toEqual([]);
    const long = Array.from({ length: 1000 }, (_, i) => 4096 + 4 * i);
    expect(o.relayOnly(long)).toBe(true);
    for (const w of [4092, 4096, 8092, 8096]) o.push(w, never);
    expect(takeAll(o)).toEqual([4096, 8092]);
  });
});
