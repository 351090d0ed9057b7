// Runs the suite in whichever runtime executes this file; scripts/test.mjs starts it once per
// runtime and reads the closing `#summary` line. Arguments are substrings that select files.
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { setCurrentFile, takeRegistered } from "./harness.ts";
import { runtimeName } from "../src/ffi/runtime.ts";

const testDir = fileURLToPath(new URL(".", import.meta.url));
const filters = (globalThis as { process?: { argv: string[] } }).process?.argv.slice(2).filter((a) => !a.startsWith("-")) ?? [];

function findTestFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === "fixtures" ? [] : findTestFiles(path);
    return entry.endsWith(".test.ts") ? [path] : [];
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const files = findTestFiles(testDir)
  .map((path) => relative(testDir, path))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of files) {
  setCurrentFile(file);
  try {
    await import(pathToFileURL(join(testDir, file)).href);
  } catch (error) {
    failed++;
    console.log(`  ✗ ${file} failed to load\n${indent(error)}`);
    continue;
  }
  for (const t of takeRegistered()) {
    const label = `${t.file} › ${t.name}`;
    if (t.options.skip) {
      skipped++;
      console.log(`  - ${label} (skipped: ${t.options.skip})`);
      continue;
    }
    const start = performance.now();
    try {
      await withTimeout(Promise.resolve().then(t.fn), t.options.timeout ?? 30_000, label);
      passed++;
      console.log(`  ✓ ${label} (${(performance.now() - start).toFixed(0)} ms)`);
    } catch (error) {
      failed++;
      console.log(`  ✗ ${label}\n${indent(error)}`);
    }
  }
}

function indent(error: unknown): string {
  const text = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  return text.split("\n").map((line) => `      ${line}`).join("\n");
}

console.log(`#summary ${JSON.stringify({ runtime: runtimeName, passed, failed, skipped })}`);
