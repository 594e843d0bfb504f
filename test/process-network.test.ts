/**
 * A simulated run told its placement on processes charges the network only for messages that cross a
 * process boundary; messages between programs of one process are shared memory (their reading kernels
 * already pay for them). Without a placement every declared message crosses, as before.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { trafficSeconds } from "../engine/runtime/costs.ts";
import { ProcessNetwork } from "../engine/runtime/process-network.ts";
import { defaultCostTable, resolveNetwork } from "../engine/runtime/costs.ts";
import { rankOfProgram } from "../engine/runtime/processes.ts";
import { tempFolders } from "./tempdir.ts";

const folder = tempFolders("skein-process-network-");

/** A run of 1–12 programs on some processes, one sender among them and the programs that read its messages. */
const placedSends = fc.integer({ min: 1, max: 12 }).chain((programs) =>
  fc.record({
    programs: fc.constant(programs),
    procs: fc.integer({ min: 1, max: programs }),
    me: fc.integer({ min: 0, max: programs - 1 }),
    to: fc.array(fc.integer({ min: 0, max: programs - 1 }), { minLength: 1, maxLength: 6 }),
    perMessage: fc.integer({ min: 1, max: 1 << 20 }),
  }),
);

describe("ProcessNetwork.sendSeconds", () => {
  const network = { latencySeconds: 1e-4, bytesPerSecond: 1e8 };

  test("charges one message per other process that reads, nothing for readers in the sender's process", () => {
    fc.assert(
      fc.property(
        placedSends,
        ({ programs, procs, me, to, perMessage }) => {
          const placed = new ProcessNetwork(programs, procs);
          const mine = rankOfProgram(programs, procs, me);
          const remote = new Set(to.map((p) => rankOfProgram(programs, procs, p)).filter((r) => r !== mine)).size;
          const charged = placed.sendSeconds(network, me, perMessage * to.length, to.length, to);
          expect(charged).toBeCloseTo(trafficSeconds(network, perMessage * remote, remote), 12);
          if (procs === 1) expect(charged).toBe(0);
        },
      ),
    );
  });

  test("a call site that does not say who reads is charged every message; a bad process count is refused", () => {
    const placed = new ProcessNetwork(4, 2);
    expect(placed.sendSeconds(network, 0, 3000, 3)).toBe(trafficSeconds(network, 3000, 3));
    expect(() => new ProcessNetwork(2, 3)).toThrow(/^--network-procs 3 \(simulation.procs\) with 2 programs/);
    expect(() => new ProcessNetwork(2, 0)).toThrow(/^--network-procs 0 \(simulation.procs\)/);
  });
});

describe("ProcessNetwork.charge: the transport's CPU per byte", () => {
  const cpu = { sendSecondsPerByte: 2e-10, receiveSecondsPerByte: 3e-10, relaySecondsPerByte: 6e-10 };
  const network = { latencySeconds: 1e-4, bytesPerSecond: 1e8, cpuSecondsPerByte: cpu };

  test("with no core to spare, the sender pays its share and half the relay's per receiving process, one reader there the rest; nobody else pays", () => {
    fc.assert(
      fc.property(
        placedSends,
        ({ programs, procs, me, to, perMessage }) => {
          const placed = new ProcessNetwork(programs, procs, programs); // as many cores as programs: none spare
          const clocks = new Float64Array(programs);
          placed.charge(clocks, network, me, perMessage * to.length, to.length, to);
          const mine = rankOfProgram(programs, procs, me);
          const payers = new Map<number, number>();
          for (const p of to) {
            const r = rankOfProgram(programs, procs, p);
            if (r !== mine && !payers.has(r)) payers.set(r, p);
          }
          const expected = new Float64Array(programs);
          expected[me] = placed.sendSeconds(network, me, perMessage * to.length, to.length, to) + payers.size * perMessage * (cpu.sendSecondsPerByte + cpu.relaySecondsPerByte / 2);
          for (const reader of payers.values()) expected[reader]! += perMessage * (cpu.receiveSecondsPerByte + cpu.relaySecondsPerByte / 2);
          for (let p = 0; p < programs; p++) expect(clocks[p]!).toBeCloseTo(expected[p]!, 15);
        },
      ),
    );
  });

  test("the CPU is charged only for the part spare cores cannot take: none with a core per process and one for the relay, all with none", () => {
    // 4 programs on 2 processes: the transport wants 3 threads (2 main threads, the relay).
    expect(new ProcessNetwork(4, 2, 4).contention(cpu)).toBe(1);
    expect(new ProcessNetwork(4, 2, 5).contention(cpu)).toBeCloseTo(2 / 3, 12);
    expect(new ProcessNetwork(4, 2, 7).contention(cpu)).toBe(0);
    expect(new ProcessNetwork(4, 2, 16).contention(cpu)).toBe(0);
    expect(new ProcessNetwork(4, 2).contention(cpu)).toBe(0); // an ideal machine
    // No relay on this machine (a server elsewhere): the main threads alone.
    expect(new ProcessNetwork(4, 2, 6).contention({ ...cpu, relaySecondsPerByte: 0 })).toBe(0);
    // Without CPU figures, only latency and bandwidth.
    const clocks = new Float64Array(4);
    new ProcessNetwork(4, 2, 4).charge(clocks, { latencySeconds: 1e-4, bytesPerSecond: 1e8 }, 0, 1000, 1, [3]);
    expect([...clocks]).toEqual([1e-4 + 1000 / 1e8, 0, 0, 0]);
  });

  test("a network file carries its CPU figures; a bad one is refused naming the field", () => {
    const dir = folder();
    const table = defaultCostTable();
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify(network));
    expect(resolveNetwork(table, good)).toEqual(network);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ ...network, cpuSecondsPerByte: { ...cpu, relaySecondsPerByte: -1 } }));
    expect(() => resolveNetwork(table, bad)).toThrow(/cpuSecondsPerByte.relaySecondsPerByte: must be a number ≥ 0/);
  });
});

describe("a simulated gossip run placed on processes", () => {
  // A network so slow that it dwarfs the computation: 0.1 MB of mlp:784-32-10 takes 10 ms.
  const slow = { latencySeconds: 1e-3, bytesPerSecond: 1e7 };
  const config = (workers: number, network: string, procs?: number): TrainConfig => ({
    algo: "dmsgd",
    model: "mlp:784-32-10",
    data: "digits",
    epochs: 1,
    batch: 16,
    workers,
    executor: "simulated",
    seed: 3,
    optimizer: defaultOptimizer("momentum"),
    gossip: { topology: "ring", nodes: 8 },
    // One independent core per program: contention does not blur the network's share.
    simulation: { machine: "ideal", network, ...(procs !== undefined ? { procs } : {}) },
  });
  const messageBytes = (784 * 32 + 32 + 32 * 10 + 10) * 4;
  const perMessage = slow.latencySeconds + messageBytes / slow.bytesPerSecond;

  // 8 nodes on a ring. 2 workers on 2 processes: each worker's end nodes are read by the other process
  // (2 crossing messages per worker per round; every edge would be 8). 4 workers on 2 processes: one
  // crossing message per worker per round (every edge: 4).
  for (const [workers, crossingPerRound, edgesPerRound] of [
    [2, 2, 8],
    [4, 1, 4],
  ] as const) {
    test(`${workers} workers on 2 processes: the round pays for ${crossingPerRound} crossing message(s) per worker, not ${edgesPerRound}`, async () => {
      const file = join(folder(), "network.json");
      writeFileSync(file, JSON.stringify(slow));
      const shm = await train(config(workers, "shm"));
      const oneProcess = await train(config(workers, file, 1));
      const twoProcesses = await train(config(workers, file, 2));
      const everyEdge = await train(config(workers, file));
      const rounds = Math.round(shm.updatesPerSec * shm.trainSeconds);
      expect(rounds).toBeGreaterThan(10);
      // One process: every exchange is shared memory, so the virtual time is the shm run's exactly.
      expect(oneProcess.trainSeconds).toBe(shm.trainSeconds);
      // The weights do not depend on the clock.
      expect(twoProcesses.testAccuracy).toBe(shm.testAccuracy);
      const crossing = rounds * crossingPerRound * perMessage;
      const extra = twoProcesses.trainSeconds - shm.trainSeconds;
      expect(Math.abs(extra - crossing)).toBeLessThan(0.05 * crossing);
      // Without a placement every edge is charged: the test above tells the two apart.
      expect(everyEdge.trainSeconds - shm.trainSeconds).toBeGreaterThan(((crossingPerRound + edgesPerRound) / 2) * rounds * perMessage);
    });
  }

  test("on a machine with no core to spare the transport's CPU lengthens each round by what both sides' copies take; on an ideal machine it does not", async () => {
    const dir = folder();
    const cpu = { sendSecondsPerByte: 2e-8, receiveSecondsPerByte: 3e-8, relaySecondsPerByte: 5e-8 }; // 10 ms per message in all
    const wire = join(dir, "wire.json");
    const withCpu = join(dir, "cpu.json");
    writeFileSync(wire, JSON.stringify(slow));
    writeFileSync(withCpu, JSON.stringify({ ...slow, cpuSecondsPerByte: cpu }));
    // 2 workers on 2 processes, 2 cores (the default table's machine): each worker sends 2 crossing messages a round and reads 2.
    const on = (network: string, machine: "measured" | "ideal") => train({ ...config(2, network, 2), simulation: { machine, network, procs: 2 } });
    const [measuredWire, measuredCpu, idealWire, idealCpu] = [await on(wire, "measured"), await on(withCpu, "measured"), await on(wire, "ideal"), await on(withCpu, "ideal")];
    expect(idealCpu.trainSeconds).toBe(idealWire.trainSeconds);
    const rounds = Math.round(measuredWire.updatesPerSec * measuredWire.trainSeconds);
    const perRound = 2 * messageBytes * (cpu.sendSecondsPerByte + cpu.receiveSecondsPerByte + cpu.relaySecondsPerByte);
    const extra = measuredCpu.trainSeconds - measuredWire.trainSeconds;
    expect(extra / (rounds * perRound)).toBeGreaterThan(0.8);
    expect(extra / (rounds * perRound)).toBeLessThan(1.2);
    expect(measuredCpu.testAccuracy).toBe(measuredWire.testAccuracy);
  });
});
