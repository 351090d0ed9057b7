#!/usr/bin/env node
// `npm test`: runs test/run.ts once on each runtime (Bun, Deno, Node via tsx), prints every
// runtime's results, and closes with the plain line `N passed, N failed, N skipped`.
//   npm test -- [--runtime bun,deno,node] [file-filter ...]
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { buildTestFixtures } from "./build-test-fixtures.mjs";
import { checkLayers } from "./check-layers.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => join(root, "node_modules", ".bin", name);

// GPUFFI_BUN / GPUFFI_DENO / GPUFFI_NODE point at other binaries (the GPU machine carries its own).
const runtimes = {
  bun: [process.env.GPUFFI_BUN ?? bin("bun"), ["test/run.ts"]],
  deno: [process.env.GPUFFI_DENO ?? bin("deno"), ["run", "--allow-all", "--v8-flags=--expose-gc", "test/run.ts"]],
  node: [process.env.GPUFFI_NODE ?? process.execPath, ["--import", "tsx", "--expose-gc", "test/run.ts"]],
};

const args = process.argv.slice(2);
const runtimeFlag = args.indexOf("--runtime");
const selected = runtimeFlag >= 0 ? args[runtimeFlag + 1].split(",") : Object.keys(runtimes);
const filters = args.filter((a, i) => !a.startsWith("--") && (runtimeFlag < 0 || i !== runtimeFlag + 1));

const fixtures = buildTestFixtures(root);
if (fixtures.reason) console.log(`test fixtures: ${fixtures.reason}`);

function runOn(name) {
  const [command, commandArgs] = runtimes[name];
  return new Promise((resolve) => {
    const child = spawn(command, [...commandArgs, ...filters], {
      cwd: root,
      env: { ...process.env, ...fixtures.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let summary;
    let pending = "";
    const onData = (chunk) => {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) {
        if (line.startsWith("#summary ")) summary = JSON.parse(line.slice(9));
        else console.log(`[${name}] ${line}`);
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", onData);
    child.on("error", (error) => resolve({ name, crashed: `could not start: ${error.message}` }));
    child.on("close", (code, signal) => {
      if (pending) onData("\n");
      if (!summary) resolve({ name, crashed: `exited with ${signal ?? code} before reporting` });
      else resolve({ name, ...summary, crashed: code === 0 || summary.failed > 0 ? undefined : `exit code ${code}` });
    });
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const results = [];

// The whole suite also typechecks: the three runtimes strip types without checking them…
if (runtimeFlag < 0 && filters.length === 0) {
  const tsc = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "-p", root], { encoding: "utf8" });
  const ok = tsc.status === 0;
  console.log(ok ? "[tsc] ✓ typecheck" : `[tsc] ✗ typecheck\n${tsc.stdout}${tsc.stderr}`);
  results.push({ name: "tsc", passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0 });
  totals.passed += ok ? 1 : 0;
  totals.failed += ok ? 0 : 1;
  // …and checks that imports between src/'s folders point down only (scripts/check-layers.mjs).
  const violations = checkLayers(root);
  const layered = violations.length === 0;
  console.log(layered ? "[layers] ✓ imports point down" : `[layers] ✗ imports point up or sideways\n${violations.map((v) => `  ${v.file}:${v.line}: "${v.specifier}": ${v.message}`).join("\n")}`);
  results.push({ name: "layers", passed: layered ? 1 : 0, failed: layered ? 0 : 1, skipped: 0 });
  totals.passed += layered ? 1 : 0;
  totals.failed += layered ? 0 : 1;

  // Every symbol table, struct and constant against its C headers (scripts/check-abi.ts): one
  // counted line, skipped when no library could be checked (no GCC, no headers).
  const abi = spawnSync(process.execPath, ["--import", "tsx", join(root, "scripts", "check-abi.ts")], { cwd: root, encoding: "utf8" });
  for (const line of `${abi.stdout}${abi.stderr}`.trimEnd().split("\n")) console.log(`[abi] ${line}`);
  const checked = Number(/^(\d+) libraries checked/m.exec(abi.stdout)?.[1] ?? 0);
  const abiResult = abi.status !== 0 ? "failed" : checked > 0 ? "passed" : "skipped";
  console.log(`[abi] ${abiResult === "passed" ? "✓" : abiResult === "failed" ? "✗" : "-"} ABI check ${abiResult}`);
  results.push({ name: "abi", passed: abiResult === "passed" ? 1 : 0, failed: abiResult === "failed" ? 1 : 0, skipped: abiResult === "skipped" ? 1 : 0 });
  totals[abiResult] += 1;
}
for (const name of selected) {
  if (!runtimes[name]) throw new Error(`unknown runtime ${name}; choose from ${Object.keys(runtimes).join(", ")}`);
  const result = await runOn(name);
  results.push(result);
  totals.passed += result.passed ?? 0;
  totals.failed += (result.failed ?? 0) + (result.crashed ? 1 : 0);
  totals.skipped += result.skipped ?? 0;
}

console.log("");
for (const r of results) {
  const counts = r.passed === undefined ? "" : `${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`;
  console.log(`${r.name.padEnd(6)} ${counts}${r.crashed ? ` — CRASHED: ${r.crashed}` : ""}`);
}
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exitCode = totals.failed === 0 ? 0 : 1;
