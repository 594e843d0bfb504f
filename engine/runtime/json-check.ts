/** Checks the cost tables' readers share on values parsed from JSON. */

/** A finite number (JSON has no NaN or Infinity, but a table built in code might). */
export const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
