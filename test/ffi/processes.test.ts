// Processes of this runtime started by scriptCommand, as the data-parallel launcher starts its
// ranks: they run TypeScript as this process does, and many of them started at once all load a
// library with structs by value (on Bun each compiles a TinyCC shim, and Bun's cc() rewrites its
// own headers in a shared temporary folder on every call: compiles raced before they were retried).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";
import { runtimeName, scriptCommand } from "../../src/ffi/index.ts";

test("scriptCommand: processes of this runtime started at once each load struct-returning functions", async () => {
  const { command, args } = scriptCommand(fileURLToPath(new URL("./struct-child.ts", import.meta.url)));
  assert.ok(args.at(-1)!.endsWith("struct-child.ts"));
  if (runtimeName === "node") assert.ok(args.some((a) => a.includes("tsx")), "node runs TypeScript through tsx");
  // Bun's race needs company; on Node every process pays tsx's start-up on the test machine's cores.
  const outputs = await Promise.all(Array.from({ length: runtimeName === "bun" ? 12 : 3 }, () => new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out: out.trim() }));
  })));
  for (const { code, out } of outputs) assert.deepEqual({ code, out }, { code: 0, out: '{"quot":3,"rem":1}' });
}, { timeout: 90_000 });
