// A deliberately small test harness: the same file runs unchanged on Bun, Deno and Node, so
// the suite cannot drift between runtimes the way three native runners would.
// Assertions come from node:assert/strict, which all three runtimes ship (JSR's @std/assert is
// not reachable from our machines).

export interface TestOptions {
  /** A one-line reason to skip; `false`/`undefined` runs the test. */
  skip?: string | false | undefined;
  /** Milliseconds before the test counts as failed (default 30 s). */
  timeout?: number;
}

export interface RegisteredTest {
  file: string;
  name: string;
  fn: () => unknown | Promise<unknown>;
  options: TestOptions;
}

const registry: RegisteredTest[] = [];
let currentFile = "";

/** Registers a test in the file being loaded. */
export function test(name: string, fn: () => unknown | Promise<unknown>, options: TestOptions = {}): void {
  registry.push({ file: currentFile, name, fn, options });
}

/** Used by the runner: tests registered from now on belong to `file`. */
export function setCurrentFile(file: string): void {
  currentFile = file;
}

/** Used by the runner: takes every test registered so far. */
export function takeRegistered(): RegisteredTest[] {
  return registry.splice(0);
}
