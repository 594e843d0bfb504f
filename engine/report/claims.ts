/**
 * A claim is one sentence of a paper turned into data: method A's metric against method B's, in a
 * direction, optionally with a tolerance ("A ≥ B" meaning "A is not worse than B by more than the
 * tolerance"). Runs are paired by seed (same data order and initialization for both methods), and the
 * verdict comes from the per-seed differences:
 *
 * - paired t-interval (95%, Student's t with n − 1 degrees of freedom) on the finite differences;
 * - exact two-sided sign test on all differences, including the infinite ones of runs that diverged
 *   or never reached the target (a t-interval cannot use those, a sign test only needs their sign).
 *
 * The t-interval decides when every pair is finite, and also when some pair is infinite but every
 * infinite pair lies on the side the interval of the finite pairs already chose; otherwise the sign
 * test decides. "holds" when the decisive test puts the difference on the claimed side, "does not
 * hold" when it puts it on the other side, "inconclusive at n = …" otherwise (including n = 1, where
 * neither test can say anything).
 */
import { METRICS, metricOf, type Metric, type RunRecord } from "./aggregate.ts";
import { pairedTInterval, signTest, spread, type SignTest, type Spread, type TInterval } from "./stats.ts";

export interface Claim {
  /** The claim in words, e.g. "layerwise reaches the target before hogwild". */
  text: string;
  /** Where it comes from (paper, section). */
  source?: string;
  metric: Metric;
  /** The two methods, by their run label in the suite. */
  a: string;
  b: string;
  /** How A's metric relates to B's when the claim holds. */
  relation: "<" | ">" | "<=" | ">=";
  /** For ≤ and ≥: how far A may be on the wrong side of B and still count (metric units; accuracy 0.005 = 0.5 pt). */
  tolerance?: number;
}

export type Verdict = "holds" | "does not hold" | "inconclusive";

export interface ClaimResult {
  claim: Claim;
  /** Seeds where both methods have a value (diverged and never-reached count, as ±∞). */
  pairs: number;
  /** A's and B's values over those seeds (finite ones). */
  a?: Spread;
  b?: Spread;
  /** Differences A − B per seed, in seed order. */
  differences: number[];
  /** Mean and spread of the finite differences. */
  difference?: Spread;
  tInterval?: TInterval;
  sign: SignTest;
  decidedBy: "paired t-interval" | "sign test" | "none";
  verdict: Verdict;
  /** One line saying why. */
  reason: string;
}

/** Significance level of both tests (the t-interval is its complement, 95%). */
export const ALPHA = 0.05;

/** Pairs A and B by seed over `records` (method names as in the records) and decides. */
export function evaluateClaim(claim: Claim, records: readonly RunRecord[], target?: number, methodOf: (label: string) => string = (l) => l): ClaimResult {
  const bySeed = (method: string) => {
    const m = new Map<number, RunRecord>();
    for (const r of records) if (r.method === method && !m.has(r.seed ?? 0)) m.set(r.seed ?? 0, r);
    return m;
  };
  const runsA = bySeed(methodOf(claim.a));
  const runsB = bySeed(methodOf(claim.b));
  const values: [number, number][] = [];
  for (const seed of [...runsA.keys()].sort((x, y) => x - y)) {
    const rb = runsB.get(seed);
    if (!rb) continue;
    const va = metricOf(runsA.get(seed)!, claim.metric, target);
    const vb = metricOf(rb, claim.metric, target);
    if (va !== undefined && vb !== undefined) values.push([va, vb]);
  }
  // Both never reached / both diverged: a tie, not NaN.
  const differences = values.map(([a, b]) => (a === b ? 0 : a - b));
  return decide(claim, differences, values);
}

/** The verdict from paired differences A − B (exported for tests that start from known differences). */
export function decide(claim: Claim, differences: number[], values: [number, number][] = []): ClaimResult {
  // e > 0 is on the claimed side: A above B for > and ≥, below for < and ≤.
  const sign = claim.relation === ">" || claim.relation === ">=" ? 1 : -1;
  const tolerance = claim.relation.endsWith("=") ? (claim.tolerance ?? 0) : 0;
  const finite = differences.filter(Number.isFinite);
  const n = differences.length;
  // The sign test counts seeds on the claimed side (beyond the tolerance) against the others.
  const sideSign = signTest(differences.map((d) => sign * d + tolerance));
  const base = {
    claim,
    pairs: n,
    ...optional("a", spread(values.map(([a]) => a))),
    ...optional("b", spread(values.map(([, b]) => b))),
    differences,
    ...optional("difference", spread(finite)),
    ...optional("tInterval", pairedTInterval(finite, 1 - ALPHA)),
    sign: sideSign,
  };
  if (n === 0) return { ...base, decidedBy: "none", verdict: "inconclusive", reason: "no seed with both runs" };
  const tolText = tolerance > 0 ? " (with the tolerance)" : "";
  const t = base.tInterval;
  // The t-interval's verdict on the finite pairs, when there are at least two.
  let onFinite: { verdict: Verdict; reason: string } | undefined;
  if (t) {
    // The interval of sign · (A − B).
    const [lo, hi] = sign > 0 ? [t.lo, t.hi] : [-t.hi, -t.lo];
    const level = `${Math.round(t.level * 100)}% paired t-interval`;
    // Equality decides only when A and B are identical on every seed (an interval of exactly [0, 0]):
    // then "A > B" does not hold and "A ≥ B" does.
    const strict = !claim.relation.endsWith("=");
    if (strict ? lo > 0 : lo >= -tolerance) onFinite = { verdict: "holds", reason: `${level} on the claimed side${tolText}` };
    else if (strict ? hi <= 0 : hi < -tolerance) onFinite = { verdict: "does not hold", reason: `${level} on the other side${tolText}` };
    else onFinite = { verdict: "inconclusive", reason: `${level} covers both sides` };
  }
  if (finite.length === n) {
    if (!onFinite) return { ...base, decidedBy: "none", verdict: "inconclusive", reason: "one seed: no spread to test against" };
    return { ...base, decidedBy: "paired t-interval", ...onFinite };
  }
  // Some pairs are infinite (diverged, never reached): only their signs are known. Where they all
  // fall on the side the t-interval of the finite pairs already decided for, they can only
  // strengthen it, and that verdict stands; otherwise the sign test over every pair decides.
  const infiniteSide = differences.filter((d) => !Number.isFinite(d)).map((d) => Math.sign(sign * d));
  const agrees = (side: number) => infiniteSide.every((x) => x === side);
  if (onFinite && ((onFinite.verdict === "holds" && agrees(1)) || (onFinite.verdict === "does not hold" && agrees(-1)))) {
    const which = `${n - finite.length} infinite pair${n - finite.length === 1 ? "" : "s"} on the same side`;
    return { ...base, decidedBy: "paired t-interval", verdict: onFinite.verdict, reason: `${onFinite.reason} over ${finite.length} finite pairs, ${which}` };
  }
  const decided = { ...base, decidedBy: "sign test" as const };
  const counts = `${sideSign.plus} of ${n} seeds on the claimed side, ${sideSign.minus} against, sign test p = ${sideSign.p.toPrecision(2)}`;
  if (sideSign.p < ALPHA && sideSign.plus > sideSign.minus) return { ...decided, verdict: "holds", reason: counts };
  if (sideSign.p < ALPHA && sideSign.minus > sideSign.plus) return { ...decided, verdict: "does not hold", reason: counts };
  return { ...decided, verdict: "inconclusive", reason: counts };
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

/** "holds", "does not hold", or "inconclusive at n = 3". */
export function verdictText(r: ClaimResult): string {
  return r.verdict === "inconclusive" ? `inconclusive at n = ${r.pairs}` : r.verdict;
}

/** The claim as a formula, e.g. "layerwise 1F:1B q2 < hogwild 2w in time to target accuracy". */
export function claimFormula(c: Claim): string {
  const rel = { "<": "<", ">": ">", "<=": "≤", ">=": "≥" }[c.relation];
  const tol = c.tolerance ? ` (tolerance ${METRICS[c.metric].kind === "fraction" ? `${(c.tolerance * 100).toFixed(2)} pt` : c.tolerance})` : "";
  return `${c.a} ${rel} ${c.b} in ${METRICS[c.metric].label}${tol}`;
}
