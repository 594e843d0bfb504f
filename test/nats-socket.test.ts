/**
 * The native TCP socket under the NATS client cuts the server's byte stream into protocol messages,
 * however the reads split it: the payloads of skein's own subjects go to the receiving transport as
 * they arrive (one copy, into their destination), and everything else reaches the client whole, each
 * control line alone, each MSG/HMSG with its payload (which may hold newlines or look like protocol
 * lines) and CRLF in one buffer of its own. The transport checks each frame's header before any of its
 * body is written anywhere.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { NatsConnection } from "@nats-io/transport-node";
import { MessageSplitter, type PayloadSink } from "../engine/distributed/message-splitter.ts";
import { NatsTcpSocket } from "../engine/distributed/tcp-socket.ts";
import { Transport, subjectOf } from "../engine/distributed/transport.ts";
import { encodeFrame, KIND, type FrameHeader } from "../engine/distributed/frame.ts";

const text = (s: string) => new TextEncoder().encode(s);
const ROUTED = "skein.run.0123456789abcdef.1";

/** A MSG (or HMSG) protocol message: its line, payload and CRLF. */
function msg(subject: string, payload: Uint8Array, { sid = 1, reply = null as string | null, headers = false } = {}): Uint8Array {
  const line = headers ? `HMSG ${subject} ${sid}${reply ? ` ${reply}` : ""} 0 ${payload.length}\r\n` : `MSG ${subject} ${sid}${reply ? ` ${reply}` : ""} ${payload.length}\r\n`;
  const out = new Uint8Array(line.length + payload.length + 2);
  out.set(text(line));
  out.set(payload, line.length);
  out.set([13, 10], line.length + payload.length);
  return out;
}

/** One server-to-client protocol message, as bytes. */
const message = fc.oneof(
  fc.constantFrom("PING\r\n", "PONG\r\n", "+OK\r\n", "-ERR 'Authorization Violation'\r\n", 'INFO {"max_payload":1048576}\r\n').map(text),
  fc
    .record({
      subject: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9.]{0,20}$/), fc.constant(ROUTED)),
      sid: fc.nat(999),
      reply: fc.option(fc.stringMatching(/^_INBOX\.[a-z0-9]{1,8}$/)),
      headers: fc.boolean(),
      payload: fc.uint8Array({ maxLength: 300 }).chain((p) => fc.oneof(fc.constant(p), fc.constant(text(`MSG ${ROUTED} 1 3\r\nxyz\n`)))),
    })
    .map(({ subject, sid, reply, headers, payload }) => msg(subject, payload, { sid, reply, headers })),
);

/** `stream` fed to `push` in reads of the sizes in `cuts`, cycling, each a Buffer as the runtime's socket reads are. */
function feed(stream: Uint8Array, cuts: readonly number[], push: (chunk: Uint8Array) => void): void {
  for (let from = 0, c = 0; from < stream.length; c++) {
    const to = Math.min(stream.length, from + cuts[c % cuts.length]!);
    push(Buffer.from(stream.slice(from, to)));
    from = to;
  }
}

const joined = (parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((a, m) => a + m.length, 0));
  let at = 0;
  for (const m of parts) out.set(m, (at += m.length) - m.length);
  return out;
};

/** What a test sink saw: per MSG, its announced size and the bytes written, and whether it ended. */
function recordingSink() {
  const got: { size: number; bytes: number[]; ended: boolean }[] = [];
  const sink: PayloadSink = {
    begin: (size) => void got.push({ size, bytes: [], ended: false }),
    write: (bytes) => void got.at(-1)!.bytes.push(...bytes),
    end: () => void (got.at(-1)!.ended = true),
  };
  return { got, sink };
}

/** The payload of a MSG (not HMSG) on `subject`, or null. */
function routedPayload(m: Uint8Array, subject: string): Uint8Array | null {
  const line = new TextDecoder().decode(m.subarray(0, m.indexOf(10) + 1));
  const parts = line.trim().split(" ");
  if (parts[0] !== "MSG" || parts[1] !== subject) return null;
  return m.subarray(line.length, m.length - 2);
}

describe("MessageSplitter", () => {
  test("delivers exactly the messages sent, each in its own buffer, whatever the read boundaries", () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const got: Uint8Array[] = [];
        const splitter = new MessageSplitter((m) => got.push(m));
        feed(joined(messages), cuts, (c) => splitter.push(c));
        expect(got.map((m) => [...m])).toEqual(messages.map((m) => [...m]));
        // Each delivered buffer is the message alone (the client's parser finds it complete).
        for (const m of got) expect(m.byteOffset === 0 && m.byteLength === m.buffer.byteLength).toBe(true);
      }),
    );
  });

  test("a routed subject's MSG payloads go to its sink, in order and whole; the client gets every other message whole", () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const client: Uint8Array[] = [];
        const { got, sink } = recordingSink();
        const splitter = new MessageSplitter((m) => client.push(m), new Map([[ROUTED, sink]]));
        feed(joined(messages), cuts, (c) => splitter.push(c));
        const routed = messages.map((m) => routedPayload(m, ROUTED));
        expect(got).toEqual(routed.filter((p) => p !== null).map((p) => ({ size: p!.length, bytes: [...p!], ended: true })));
        // HMSG on the routed subject (a message with NATS headers) and other subjects still reach the client.
        expect(client.map((m) => [...m])).toEqual(messages.filter((_, i) => routed[i] === null).map((m) => [...m]));
      }),
    );
  });
});

describe("a transport's intake: frames straight into their destinations", () => {
  const runId = 0x0123456789abcdefn;
  /** A receiving transport (rank 1 of 3) over a connection that only records what it publishes. */
  function receiver(chunkLimit = 1 << 20) {
    const published: { subject: string; data: Uint8Array }[] = [];
    const nc = { info: { max_payload: chunkLimit }, publish: (subject: string, data: Uint8Array) => void published.push({ subject, data }) } as unknown as NatsConnection;
    const t = new Transport(nc, { url: "nats://127.0.0.1:4222", runId, rank: 1, procs: 3 });
    const splitter = new MessageSplitter(() => {}, new Map([[subjectOf(runId, 1), t.intake]]));
    return { t, published, splitter };
  }
  /** A message from `sender` as MSGs of frames of at most `chunk` body bytes, with sequence numbers from `seq`. */
  function framesOf(sender: number, seq: number, kind: number, tag: number, body: Uint8Array, chunk: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let offset = 0;
    do {
      const n = Math.min(chunk, body.length - offset);
      const h: FrameHeader = { kind, sender, runId, receiver: 1, sequence: seq++, tag, messageBytes: body.length, chunkOffset: offset, chunkBytes: n };
      out.push(msg(subjectOf(runId, 1), encodeFrame(h, body.subarray(offset, offset + n))));
      offset += n;
    } while (offset < body.length);
    return out;
  }

  test("messages cut in chunks, interleaved with heartbeats and another sender's, land in the arena (posted) or the queue (not yet), whatever the reads", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 64 }),
        fc.nat(5),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        async (bodies, chunk, posted, cuts, heartbeats) => {
          const { t, splitter } = receiver();
          const arena = new Uint8Array(bodies.reduce((a, b) => a + b.length, 0));
          const regions: Uint8Array[] = [];
          for (let at = 0, i = 0; i < bodies.length; at += bodies[i++]!.length) regions.push(arena.subarray(at, at + bodies[i]!.length));
          // The first `posted` messages are awaited before they arrive (written straight into their
          // regions); the rest arrive first (queued in buffers of their own, copied when received).
          const first = Math.min(posted, bodies.length);
          const waiting = t.receiveEachInto(2, KIND.exchange, 7, regions.slice(0, first).map((r) => [r]));
          const stream: Uint8Array[] = [];
          let seq2 = 0;
          let seq0 = 0;
          for (const body of bodies) {
            for (const f of framesOf(2, seq2, KIND.exchange, 7, body, chunk)) {
              stream.push(f);
              seq2++;
              if (heartbeats) stream.push(...framesOf(0, seq0++, KIND.heartbeat, 0, new Uint8Array(0), chunk));
            }
          }
          feed(joined(stream), cuts, (c) => splitter.push(c));
          await waiting;
          await t.receiveEachInto(2, KIND.exchange, 7, regions.slice(first).map((r) => [r]));
          expect(t.failure).toBeNull();
          expect([...arena]).toEqual([...joined(bodies)]);
        },
      ),
    );
  });

  test("a frame that fails a check ends the run naming the field, and none of its bytes reach the destination, wherever the reads cut it", async () => {
    const body = new Uint8Array(100).fill(9);
    const good: FrameHeader = { kind: KIND.exchange, sender: 2, runId, receiver: 1, sequence: 0, tag: 7, messageBytes: 100, chunkOffset: 0, chunkBytes: 100 };
    const cases: [string, Uint8Array, RegExp][] = [
      ["another run's", msg(subjectOf(runId, 1), encodeFrame({ ...good, runId: runId ^ 1n }, body)), /belongs to run/],
      ["a replayed sequence", msg(subjectOf(runId, 1), encodeFrame({ ...good, sequence: 3 }, body)), /sequence 3 from rank 2, expected 0/],
      ["a stranger's", msg(subjectOf(runId, 1), encodeFrame({ ...good, sender: 5 }, body)), /sender rank 5 is not a peer/],
      ["a lying size", msg(subjectOf(runId, 1), encodeFrame({ ...good, chunkBytes: 100 }, body).subarray(0, 120)), /says 100 body bytes, the frame holds 80/],
      ["garbage", msg(subjectOf(runId, 1), text("hello, skein")), /12 bytes, shorter than the 40-byte header/],
      ["an unknown kind", msg(subjectOf(runId, 1), encodeFrame({ ...good, kind: 99 }, body)), /unknown kind 99/],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...cases), fc.array(fc.integer({ min: 1, max: 61 }), { minLength: 1, maxLength: 8 }), async ([, bad, reason], cuts) => {
        const { t, splitter, published } = receiver();
        const region = new Uint8Array(100);
        const waiting = t.receiveInto(2, KIND.exchange, 7, [region]).then(
          () => null,
          (e: Error) => e,
        );
        feed(bad, cuts, (c) => splitter.push(c));
        const error = await waiting;
        expect(error?.message ?? "accepted").toMatch(reason);
        expect(region.every((b) => b === 0)).toBe(true);
        // The others are told why (an abort frame to each other rank).
        expect(published.map((p) => p.subject)).toEqual([subjectOf(runId, 0), subjectOf(runId, 2)]);
      }),
    );
  });

  test("a message other than the one awaited is queued, not written into the awaited place, and the receive names both", async () => {
    const { t, splitter } = receiver();
    const region = new Uint8Array(16);
    const waiting = t.receiveInto(2, KIND.exchange, 7, [region]).then(
      () => null,
      (e: Error) => e,
    );
    for (const f of framesOf(2, 0, KIND.exchange, 8, new Uint8Array(16).fill(5), 64)) splitter.push(f);
    expect((await waiting)?.message).toMatch(/rank 2 sent a exchange message \(tag 8, 16 bytes\) where a exchange message with tag 7 was due/);
    expect(region.every((b) => b === 0)).toBe(true);
  });
});

describe("the native socket's writes", () => {
  test("what the kernel does not take at once is written later, in order and intact: copied when lent, kept when handed over, its buffers reused only once written", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 600_000 }), handOver: fc.boolean() }), { minLength: 1, maxLength: 12 }), async (messages) => {
        // First more than loopback's kernel buffers hold (up to 4 MiB sending, 32 MiB receiving here), so what follows waits in the socket.
        const filler = new Uint8Array(40 << 20).fill(1);
        const total = filler.length + messages.reduce((a, m) => a + m.bytes, 0);
        const got: Uint8Array[] = [];
        let gotBytes = 0;
        let done!: () => void;
        const all = new Promise<void>((r) => (done = r));
        let peer = null as { resume(): void } | null;
        const server = Bun.listen({
          hostname: "127.0.0.1",
          port: 0,
          socket: {
            open(s) {
              s.pause(); // the kernel's buffers fill: most of what follows waits in the socket
              peer = s;
            },
            data(_s, chunk) {
              got.push(chunk.slice());
              if ((gotBytes += chunk.length) === total) done();
            },
          },
        });
        const socket = new NatsTcpSocket("127.0.0.1", server.port);
        await new Promise<void>((r) => (socket.onopen = () => r()));
        const pattern = (i: number, n: number) => Uint8Array.from({ length: n }, (_, j) => (i * 131 + j * 7) & 255);
        socket.send(filler);
        for (const [i, m] of messages.entries()) {
          if (m.handOver) {
            const b = socket.bufferOf(m.bytes);
            b.set(pattern(i, m.bytes));
            socket.send(b, true);
          } else {
            const lent = pattern(i, m.bytes);
            socket.send(lent);
            lent.fill(0); // the caller may reuse it at once
          }
        }
        while (!peer) await Bun.sleep(1);
        peer?.resume();
        await socket.drained();
        await all;
        socket.close();
        server.stop(true);
        expect(Buffer.concat(got).equals(Buffer.concat([filler, ...messages.map((m, i) => pattern(i, m.bytes))]))).toBe(true);
      }),
      { numRuns: 10 },
    );
  });
});

describe("the native socket's reads", () => {
  test("large routed payloads read straight from the socket into their destinations arrive intact among small ones and control lines, however the peer's writes cut the stream", async () => {
    const runId = 0x0123456789abcdefn;
    const subject = subjectOf(runId, 1);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ bytes: fc.oneof(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 70_000, max: 400_000 })), fill: fc.integer({ min: 1, max: 255 }), control: fc.boolean() }), { minLength: 1, maxLength: 8 }),
        fc.nat(8),
        fc.array(fc.integer({ min: 1, max: 300_000 }), { minLength: 1, maxLength: 6 }),
        async (messages, posted, cuts) => {
          const nc = { info: { max_payload: 1 << 20 }, publish: () => {} } as unknown as NatsConnection;
          const t = new Transport(nc, { url: "nats://127.0.0.1:4222", runId, rank: 1, procs: 3 });
          const bodies = messages.map((m, i) => Uint8Array.from({ length: m.bytes }, (_, j) => (m.fill + i + j * 13) & 255));
          const stream: Uint8Array[] = [];
          for (const [i, body] of bodies.entries()) {
            if (messages[i]!.control) stream.push(text("PING\r\n"));
            stream.push(msg(subject, encodeFrame({ kind: KIND.exchange, sender: 2, runId, receiver: 1, sequence: i, tag: 7, messageBytes: body.length, chunkOffset: 0, chunkBytes: body.length }, body)));
          }
          const wire = joined(stream);
          const server = Bun.listen({
            hostname: "127.0.0.1",
            port: 0,
            socket: {
              async open(s) {
                for (let from = 0, c = 0; from < wire.length; c++) {
                  const to = Math.min(wire.length, from + cuts[c % cuts.length]!);
                  let at = from;
                  while (at < to) {
                    const n = s.write(wire.subarray(at, to));
                    at += Math.max(0, n);
                    if (at < to) await Bun.sleep(1);
                  }
                  from = to;
                  await Bun.sleep(0);
                }
              },
              data() {},
            },
          });
          const socket = new NatsTcpSocket("127.0.0.1", server.port);
          const control: string[] = [];
          socket.onmessage = (e) => void control.push(new TextDecoder().decode(e.data));
          socket.route(subject, t.intake);
          const arena = new Uint8Array(bodies.reduce((a, b) => a + b.length, 0));
          const regions: Uint8Array[] = [];
          for (let at = 0, i = 0; i < bodies.length; at += bodies[i++]!.length) regions.push(arena.subarray(at, at + bodies[i]!.length));
          const first = Math.min(posted, bodies.length);
          await t.receiveEachInto(2, KIND.exchange, 7, regions.slice(0, first).map((r) => [r]));
          await t.receiveEachInto(2, KIND.exchange, 7, regions.slice(first).map((r) => [r]));
          socket.close();
          server.stop(true);
          expect(t.failure).toBeNull();
          expect(Buffer.from(arena).equals(Buffer.from(joined(bodies)))).toBe(true);
          expect(control).toEqual(messages.filter((m) => m.control).map(() => "PING\r\n"));
          if (bodies.some((b) => b.length >= 70_000)) directSeen ||= socket.bytesReadDirect > 0;
        },
      ),
      { numRuns: 20 },
    );
    // The direct reads happened (in some run at least: the runtime may read a whole payload first).
    expect(directSeen).toBe(true);
  });
  let directSeen = false;
});
