/**
 * `skein topology`: build a gossip topology and report what matters for training on it — degree
 * (messages per node per step), whether W is doubly stochastic and symmetric, and ρ = ‖W − J‖₂
 * (consensus error shrinks by at least ρ per step; the spectral gap is 1 − ρ).
 */
import { UserError } from "../errors.ts";
import {
  buildTopology,
  DEFAULT_ERDOS_RENYI_P,
  DEFAULT_ERDOS_RENYI_SEED,
  MAX_NODES,
  TOPOLOGIES,
  TOPOLOGY_NAMES,
  type MixingMatrix,
} from "../algorithms/gossip/topology.ts";
import { summarizeTopology, type TopologySummary } from "../algorithms/gossip/analysis.ts";
import { formatHelp, formatSection, parseFlags, type FlagSpec } from "./flags.ts";

export const TOPOLOGY_FLAGS: FlagSpec[] = [
  { name: "name", type: "string", choices: TOPOLOGY_NAMES, valueName: "NAME", help: "the topology (required; see the list below)" },
  { name: "nodes", type: "int", default: 16, min: 1, max: MAX_NODES, help: "number of gossip nodes n" },
  { name: "p", type: "number", above: 0, max: 1, help: `erdos-renyi: edge probability (default ${DEFAULT_ERDOS_RENYI_P})` },
  { name: "seed", type: "int", min: 0, max: 2 ** 31 - 1, help: `erdos-renyi: seed of the edge draws (default ${DEFAULT_ERDOS_RENYI_SEED})` },
  { name: "matrix", type: "bool", help: "also print the receive matrix W (row i: the weights node i gives to what it receives)" },
  { name: "json", type: "bool", help: "print one JSON summary object on stdout" },
];

/** Flags that mean something only for some topologies. */
const ONLY_FOR: Record<string, string> = { p: "erdos-renyi", seed: "erdos-renyi" };

export const TOPOLOGY_HELP = formatHelp(
  "skein topology --name NAME [--nodes N] [flags]",
  "Build a gossip topology and print its degree, stochasticity, symmetry, ρ = ‖W − J‖₂ and spectral gap 1 − ρ.",
  TOPOLOGY_FLAGS,
  `${formatSection("Topologies", TOPOLOGY_NAMES.map((name) => [name, TOPOLOGIES[name].about] as const))}\n\nExample: skein topology --name one-peer-exponential --nodes 16 --json`,
);

export async function topologyCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("topology", argv, TOPOLOGY_FLAGS);
  if (flags.help) {
    process.stdout.write(TOPOLOGY_HELP);
    return 0;
  }
  const v = flags.values;
  if (v.name === undefined) throw new UserError(`missing --name (one of ${TOPOLOGY_NAMES.join(", ")}; see skein topology --help)`);
  const name = String(v.name);
  for (const [flag, only] of Object.entries(ONLY_FOR)) {
    if (flags.given.has(flag) && name !== only) throw new UserError(`--${flag} applies to --name ${only}, not ${name}`);
  }
  const options = {
    p: v.p === undefined ? undefined : Number(v.p),
    seed: v.seed === undefined ? undefined : Number(v.seed),
  };
  const topology = buildTopology(name, Number(v.nodes), options);
  const summary = summarizeTopology(topology);
  const withOptions: Record<string, number> = name === "erdos-renyi" ? { p: options.p ?? DEFAULT_ERDOS_RENYI_P, seed: options.seed ?? DEFAULT_ERDOS_RENYI_SEED } : {};
  if (v.json) {
    const matrix = v.matrix ? { matrix: topology.rounds.map(rowsOf) } : {};
    process.stdout.write(JSON.stringify({ ...summary, ...withOptions, ...matrix }) + "\n");
    return 0;
  }
  process.stdout.write(formatSummary(summary, withOptions));
  if (v.matrix) {
    topology.rounds.forEach((W, r) => {
      process.stdout.write(`\n${topology.dynamic ? `W (round ${r})` : "W"}:\n${formatMatrix(W)}`);
    });
  }
  return 0;
}

function formatSummary(s: TopologySummary, extra: Record<string, number>): string {
  const rows: [string, string][] = [
    ["name", s.name],
    ["nodes", String(s.nodes)],
    ...Object.entries(extra).map(([k, x]): [string, string] => [k, String(x)]),
    ["degree", String(s.degree)],
    ["symmetric", String(s.symmetric)],
    ["rowStochastic", String(s.rowStochastic)],
    ["columnStochastic", String(s.columnStochastic)],
  ];
  if (s.period !== undefined) {
    rows.push(["period", String(s.period)]);
    rows.push(["rho", `${formatNumber(s.rho)}  (largest per-round ρ; what every single step guarantees)`]);
    rows.push(["rhoPerRound", s.rhoPerRound!.map(formatNumber).join(" ")]);
    rows.push(["rhoOfProduct", formatNumber(s.rhoOfProduct!)]);
    rows.push(["rhoOfPeriod", `${formatNumber(s.rhoOfPeriod!)}  (‖Π W_r − J‖₂^(1/period): per-step rate over a period)`]);
  } else {
    rows.push(["rho", formatNumber(s.rho)]);
  }
  rows.push(["spectralGap", formatNumber(s.spectralGap)]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, x]) => `${k.padEnd(width)}${x}\n`).join("");
}

/** Ten significant digits; values within rounding of zero print as 0. */
function formatNumber(x: number): string {
  return Math.abs(x) < 1e-13 ? "0" : String(Number(x.toPrecision(10)));
}

function rowsOf(W: MixingMatrix): number[][] {
  return Array.from({ length: W.n }, (_, i) => Array.from(W.dense.subarray(i * W.n, (i + 1) * W.n)));
}

function formatMatrix(W: MixingMatrix): string {
  return rowsOf(W)
    .map((row) => row.map((w) => (w === 0 ? "0".padStart(6) : w.toFixed(4))).join(" ") + "\n")
    .join("");
}
