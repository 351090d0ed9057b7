#!/usr/bin/env node
// The CPU-side hot paths of issue 18 on Bun, Deno and Node (bench/hot-paths.bench.ts, one process
// per runtime, the C anchor built here and run in the same job); prints a table and writes
// bench/results/hot-paths-<label>.{md,json}.
//   node scripts/hot-paths.mjs [--out bench/results] [--label cpu] [--runtimes bun,deno,node] [section ...]
// GPUFFI_BUN / GPUFFI_DENO / GPUFFI_NODE point at other runtime binaries.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const sections = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
const outDir = resolve(root, option("--out", "bench/results"));
const label = option("--label", "cpu");
const build = join(root, ".cache", "bench");
mkdirSync(build, { recursive: true });
const anchor = join(build, "ffi_anchor");
execFileSync(process.env.CC ?? "cc", ["-O2", "-o", anchor, join(root, "bench", "c", "ffi_anchor.c"), "-ldl"]);

const bin = (name) => join(root, "node_modules", ".bin", name);
const script = ["bench/hot-paths.bench.ts", ...sections, "--anchor", anchor];
const allRuntimes = {
  bun: [process.env.GPUFFI_BUN ?? bin("bun"), script],
  deno: [process.env.GPUFFI_DENO ?? bin("deno"), ["run", "--allow-all", ...script]],
  node: [process.env.GPUFFI_NODE ?? process.execPath, ["--import", "tsx", ...script]],
};
const results = option("--runtimes", "bun,deno,node").split(",").map((name) => {
  const [command, commandArgs] = allRuntimes[name];
  const run = spawnSync(command, commandArgs, { cwd: root, encoding: "utf8", maxBuffer: 16 << 20 });
  const lines = run.stdout.split("\n").filter((l) => l.startsWith("#bench ")).map((l) => JSON.parse(l.slice(7)));
  if (lines.length === 0) throw new Error(`${name}: the benchmark failed:\n${run.stdout}\n${run.stderr}`);
  return { name, sections: Object.fromEntries(lines.map((l) => [l.section, l])) };
});

const f = (x, digits = 2) => (x === undefined ? "–" : x.toFixed(digits));
const rows = (section, make) => results.filter((r) => r.sections[section]).map((r) => make(r.sections[section]));
const machine = `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} cores), host ${hostname()}`;
const date = new Date().toISOString();
const command = `node scripts/hot-paths.mjs ${args.join(" ")}`.trim();
const table = (header, lines) => (lines.length === 0 ? "" : [header, header.replace(/[^|]+/g, "---"), ...lines].join("\n"));
const report = `# Hot paths on the CPU (issue 18)

- machine: ${machine}
- date: ${date}
- command: \`${command}\`

${table("| runtime | out-param call: gpuffi ns | raw FFI, typed array | raw FFI, address | C | gpuffi / C |", rows("out-param", (s) =>
  `| ${s.runtime} | ${f(s.gpuffiNs)} | ${f(s.rawBufferNs)} | ${f(s.rawAddressNs)} | ${f(s.cNs)} | ${s.cNs ? f(s.gpuffiNs / s.cNs) : "–"} |`))}

${table("| runtime | pool hit, alloc + dispose µs (fake libcudart) |", rows("pool-hit", (s) => `| ${s.runtime} | ${f(s.hitUs, 3)} |`))}

${table("| runtime | µs/token (CPU time): decode | decode + sample | generate() | generate(), sampled in the graph | generate() over decode + sample | CPU sampling |", rows("generate", (s) =>
  `| ${s.runtime} | ${f(s.cpuUsPerToken.decode, 1)} | ${f(s.cpuUsPerToken.decodeSample, 1)} | ${f(s.cpuUsPerToken.generate, 1)} | ${f(s.cpuUsPerToken.generateSampledOnDevice, 1)} | ${f(s.generateOverDecodeSampleUs.cpu, 1)} | ${f(s.cpuSamplingUs.cpu, 1)} |`))}

${table("| runtime | file → native memory GB/s: one read at a time | 32 in flight, one handle | 32 in flight, openFileReads | staged upload, fake device |", rows("upload", (s) =>
  `| ${s.runtime} | ${f(s.sequentialReadGBps)} | ${f(s.oneHandleReadsGBps)} | ${f(s.openFileReadsGBps)} | ${f(s.stagedFakeDeviceGBps)} |`))}
`;
console.log(report);
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `hot-paths-${label}.md`), report);
writeFileSync(join(outDir, `hot-paths-${label}.json`), JSON.stringify({ machine, date, command, results }, null, 2) + "\n");
