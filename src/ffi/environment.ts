// The C environment, which native libraries read with getenv (CUDA, NCCL and ggml read theirs
// once, at first use), kept in step with the runtime's process.env, which child processes inherit.
import { openLibrary } from "./library.ts";
import { defineSymbols } from "./types.ts";

const libcEnvironmentTable = {
  // int setenv(const char *name, const char *value, int overwrite);
  setenv: { parameters: ["cstring", "cstring", "i32"], result: "i32" },
} as const;
export const libcEnvironment: typeof libcEnvironmentTable = defineSymbols(libcEnvironmentTable);

function processEnv(): Record<string, string | undefined> | undefined {
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
}

/** The variable as the runtime's environment has it. */
export function environmentValue(name: string): string | undefined {
  return processEnv()?.[name];
}

/**
 * Sets `name` in the C environment and in process.env; without `overwrite`, a value already set
 * in the environment stays. Native libraries that read it before this call do not see it.
 */
export function setEnvironment(name: string, value: string, options: { overwrite?: boolean } = {}): void {
  const overwrite = options.overwrite ?? true;
  if (!overwrite && environmentValue(name) !== undefined) return;
  openLibrary("libc", "libc.so.6", libcEnvironment).symbols.setenv(name, value, overwrite ? 1 : 0);
  const env = processEnv();
  if (env) env[name] = value;
}
