// Which JS runtime is executing. Only src/ffi/ may branch on this.

export type RuntimeName = "bun" | "deno" | "node";

function detect(): RuntimeName {
  const g = globalThis as { Bun?: unknown; Deno?: { version?: { deno?: string } } };
  if (g.Bun !== undefined) return "bun";
  if (g.Deno?.version?.deno !== undefined) return "deno";
  return "node";
}

export const runtimeName: RuntimeName = detect();

/** A short description of the runtime for reports, e.g. `bun 1.4.5`. */
export function runtimeVersion(): string {
  const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } }; process?: { version: string } };
  if (runtimeName === "bun") return `bun ${g.Bun!.version}`;
  if (runtimeName === "deno") return `deno ${g.Deno!.version.deno}`;
  return `node ${g.process!.version.slice(1)}`;
}
