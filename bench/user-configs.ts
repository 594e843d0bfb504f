/**
 * What the user-facing benches (user-scaling.ts, user-wall.ts) run and how they read their shared
 * flags: the `skein train` configurations they compare, --only, and --env.
 */

export interface UserConfig {
  name: string;
  /** `skein train` arguments beyond the model, data, epochs and workers every run gives. */
  args: string[];
}

export const USER_CONFIGS: UserConfig[] = [
  { name: "sync128", args: ["--algo", "sync", "--batch", "128"] },
  { name: "sync256", args: ["--algo", "sync", "--batch", "256"] },
  { name: "hogwild", args: ["--algo", "hogwild", "--batch", "64"] },
];

/** The configurations --only names (all without it); an unknown name ends the script with exit code 2. */
export function selectConfigs(script: string, only: string | undefined): UserConfig[] {
  if (only === undefined) return USER_CONFIGS;
  const names = only.split(",");
  const configs = USER_CONFIGS.filter((c) => names.includes(c.name));
  if (configs.length !== names.length) {
    console.error(`${script}: --only ${only}: known configurations are ${USER_CONFIGS.map((c) => c.name).join(", ")}`);
    process.exit(2);
  }
  return configs;
}

/** --env NAME=VALUE[,NAME=VALUE…] as variables; anything else ends the script with exit code 2. */
export function envFlag(script: string, value: string): Record<string, string> {
  const pairs = value.split(",").map((p) => p.trim().match(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/));
  if (pairs.some((p) => p === null)) {
    console.error(`${script}: --env ${value}: want NAME=VALUE[,NAME=VALUE…]`);
    process.exit(2);
  }
  return Object.fromEntries(pairs.map((p) => [p![1]!, p![2]!]));
}
