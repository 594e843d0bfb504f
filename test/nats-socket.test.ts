/**
 * The native TCP socket under the NATS client cuts the server's byte stream into whole protocol
 * messages, however the reads split it: each control line alone, each MSG/HMSG with its payload (which
 * may hold newlines or look like protocol lines) and CRLF in one buffer of its own.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MessageSplitter } from "../engine/distributed/tcp-socket.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** One server-to-client protocol message, as bytes. */
const message = fc.oneof(
  fc.constantFrom("PING\r\n", "PONG\r\n", "+OK\r\n", "-ERR 'Authorization Violation'\r\n", 'INFO {"max_payload":1048576}\r\n').map(text),
  fc.record({ subject: fc.stringMatching(/^[a-z][a-z0-9.]{0,20}$/), sid: fc.nat(999), reply: fc.option(fc.stringMatching(/^_INBOX\.[a-z0-9]{1,8}$/)), headers: fc.boolean(), payload: fc.uint8Array({ maxLength: 300 }).chain((p) => fc.oneof(fc.constant(p), fc.constant(text("MSG a 1 3\r\nxyz\n"))) ) }).map(({ subject, sid, reply, headers, payload }) => {
    const line = headers ? `HMSG ${subject} ${sid}${reply ? ` ${reply}` : ""} 0 ${payload.length}\r\n` : `MSG ${subject} ${sid}${reply ? ` ${reply}` : ""} ${payload.length}\r\n`;
    const out = new Uint8Array(line.length + payload.length + 2);
    out.set(text(line));
    out.set(payload, line.length);
    out.set([13, 10], line.length + payload.length);
    return out;
  }),
);

describe("MessageSplitter", () => {
  test("delivers exactly the messages sent, each in its own buffer, whatever the read boundaries", () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (messages, cuts) => {
        const stream = new Uint8Array(messages.reduce((a, m) => a + m.length, 0));
        let at = 0;
        for (const m of messages) stream.set(m, (at += m.length) - m.length);
        const got: Uint8Array[] = [];
        const splitter = new MessageSplitter((m) => got.push(m));
        for (let from = 0, c = 0; from < stream.length; c++) {
          const to = Math.min(stream.length, from + cuts[c % cuts.length]!);
          splitter.push(stream.slice(from, to));
          from = to;
        }
        expect(got.map((m) => [...m])).toEqual(messages.map((m) => [...m]));
        // Each delivered buffer is the message alone (the transport keeps it as the message's body).
        for (const m of got) expect(m.byteOffset === 0 && m.byteLength === m.buffer.byteLength).toBe(true);
      }),
    );
  });
});
