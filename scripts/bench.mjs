#!/usr/bin/env node
// `npm run bench`: the FFI per-call benchmark on Bun, Deno and Node next to a C loop measured in
// the same run; prints a table and writes bench/results/ffi-<machine>.{md,json}.
//   npm run bench -- [--out bench/results] [--label cpu] [--runtimes bun,deno,node]
// GPUFFI_BUN / GPUFFI_DENO / GPUFFI_NODE point at other runtime binaries.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const outDir = resolve(root, option("--out", "bench/results"));
const label = option("--label", "cpu");
const build = join(root, ".cache", "bench");
mkdirSync(build, { recursive: true });

const source = join(root, "bench", "c", "ffi_anchor.c");
const library = join(build, "libgpuffi_bench.so");
const anchor = join(build, "ffi_anchor");
const cc = process.env.CC ?? "cc";
execFileSync(cc, ["-O2", "-shared", "-fPIC", "-DGB_LIBRARY", "-o", library, source]);
execFileSync(cc, ["-O2", "-o", anchor, source, "-ldl"]);
const c = JSON.parse(execFileSync(anchor, [library], { encoding: "utf8" }));

const bin = (name) => join(root, "node_modules", ".bin", name);
const allRuntimes = {
  bun: [process.env.GPUFFI_BUN ?? bin("bun"), ["bench/ffi.bench.ts", library]],
  deno: [process.env.GPUFFI_DENO ?? bin("deno"), ["run", "--allow-all", "bench/ffi.bench.ts", library]],
  node: [process.env.GPUFFI_NODE ?? process.execPath, ["--import", "tsx", "bench/ffi.bench.ts", library]],
};
const runtimes = Object.fromEntries(option("--runtimes", "bun,deno,node").split(",").map((name) => [name, allRuntimes[name]]));
function measure(name, variant) {
  const [command, commandArgs] = runtimes[name];
  const result = spawnSync(command, [...commandArgs, variant], { cwd: root, encoding: "utf8" });
  const line = result.stdout.split("\n").find((l) => l.startsWith("#bench "));
  if (!line) throw new Error(`${name} ${variant} benchmark failed:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(line.slice(7));
}
const rows = Object.keys(runtimes).map((name) => {
  const [gpuffi, raw] = [measure(name, "gpuffi"), measure(name, "raw")];
  return { runtime: gpuffi.runtime, gpuffiLoopNs: gpuffi.loopNs, rawLoopNs: raw.loopNs, gpuffiNs: gpuffi.mitataNs, rawNs: raw.mitataNs };
});

const machine = `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores), host ${hostname()}`;
const date = new Date().toISOString();
const command = `${process.env.npm_lifecycle_event === "bench" ? "npm run bench --" : "scripts/bench.mjs"} ${args.join(" ")}`.trim();
const f = (x) => x.toFixed(2);
const table = [
  "| runtime | gpuffi loop ns/call | raw FFI loop | C loop | **gpuffi / C** | gpuffi / raw FFI | gpuffi mitata p50 | raw FFI mitata p50 |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.runtime} | ${f(r.gpuffiLoopNs)} | ${f(r.rawLoopNs)} | ${f(c.nsPerCall)} | **${f(r.gpuffiLoopNs / c.nsPerCall)}** | ${f(r.gpuffiLoopNs / r.rawLoopNs)} | ${f(r.gpuffiNs)} | ${f(r.rawNs)} |`),
].join("\n");
const report = `# FFI per-call cost: \`int32_t gb_add(int32_t, int32_t)\`

- machine: ${machine}
- date: ${date}
- command: \`${command}\`
- C anchor: the same function called through a dlsym pointer in a loop (best of 5 × ${c.calls} calls), same run
- loop columns: the C anchor's loop shape in JS (\`sum += add(i & 0xffff, 2)\`), best of 5 × 50M calls, one process per runtime and variant: the like-for-like ratio
- mitata columns: median per iteration as mitata reports it (it batches iterations and discounts its own loop, so it reads lower than a plain loop)

${table}
`;
console.log(report);
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `ffi-${label}.md`), report);
writeFileSync(join(outDir, `ffi-${label}.json`), JSON.stringify({ machine, date, command, c, runtimes: rows }, null, 2) + "\n");
