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

/**
 * The executable and arguments that run the module file `script` in a new process of this
 * runtime, as this one runs: Bun runs TypeScript itself; Deno runs it with every permission (a
 * child of a process that drives native libraries needs them all anyway); Node keeps this
 * process's own flags, which carry its TypeScript loader (tsx) when there is one, and adds
 * `--import tsx` for a .ts file when there is none. Debugger flags (the child would open this
 * process's inspector port) and `-e`/`-p` code are not passed on.
 */
export function scriptCommand(script: string): { command: string; args: string[] } {
  const g = globalThis as { process?: { execPath: string; execArgv: string[] } };
  const execPath = g.process!.execPath;
  if (runtimeName === "bun") return { command: execPath, args: [script] };
  if (runtimeName === "deno") return { command: execPath, args: ["run", "--allow-all", script] };
  const flags: string[] = [];
  const given = g.process!.execArgv;
  for (let i = 0; i < given.length; i++) {
    const flag = given[i]!;
    // -e CODE / -p CODE: this process's code, not the child's; debugger flags: see above.
    if (["-e", "--eval", "-p", "--print"].includes(flag)) i++;
    else if (!/^--(inspect|debug|input-type|eval=|print=)/.test(flag)) flags.push(flag);
  }
  const loader = flags.some((flag) => flag.includes("tsx"));
  return { command: execPath, args: [...flags, ...(script.endsWith(".ts") && !loader ? ["--import", "tsx"] : []), script] };
}
