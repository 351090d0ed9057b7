// The report of scripts/gpu-run.sh's train-multi stage: data-parallel training on 1 … N GPUs.
//   bun bench/train-multi.ts RECORDS.jsonl OUT.md [--rtol 1e-4]
// RECORDS: bench/train.bench.ts --gpus N (or --ranks N) records. Those tagged "scaling" (per-GPU
// batch fixed, global batch N times it) give the throughput table and its speed-up over one
// process; those tagged "equality" (one global batch for every N) are compared step by step with
// the one-process record: every loss within --rtol relative of it, or the exit code is 1.
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";

interface Record {
  readonly device: string;
  readonly processes: number;
  readonly tag: string;
  readonly batch: number;
  readonly ctx: number;
  readonly steps: number;
  readonly tokens_per_s: number;
  readonly step_ms_median: number;
  readonly all_reduce_ms_median: number;
  readonly rank_tokens_per_s_median: readonly number[];
  readonly losses: readonly number[];
  readonly memory_gib: number;
}

const args = process.argv.slice(2);
const [input, output] = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
if (input === undefined || output === undefined) throw new Error("usage: train-multi.ts RECORDS.jsonl OUT.md [--rtol 1e-4]");
const rtol = args.includes("--rtol") ? Number(args[args.indexOf("--rtol") + 1]) : 1e-4;
const records = readFileSync(input, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record).filter((r) => r.processes !== undefined);
const byTag = (tag: string) => records.filter((r) => r.tag === tag).sort((a, b) => a.processes - b.processes);

const lines: string[] = [];
const scaling = byTag("scaling");
const one = scaling.find((r) => r.processes === 1);
if (scaling.length > 0) {
  const r0 = scaling[0]!;
  lines.push(`## Throughput (per-process batch ${r0.batch / r0.processes} × ctx ${r0.ctx}, ${r0.steps} timed steps)`, "");
  lines.push("| processes | global batch | tokens/s | × 1 process | step ms (median) | all-reduce ms (median, slowest rank) | tokens/s per rank (median) | rank 0 GiB |", "|---|---|---|---|---|---|---|---|");
  for (const r of scaling) {
    const speedup = one === undefined ? "—" : (r.tokens_per_s / one.tokens_per_s).toFixed(2);
    lines.push(`| ${r.processes} | ${r.batch} | ${r.tokens_per_s.toFixed(0)} | ${speedup} | ${r.step_ms_median.toFixed(1)} | ${r.all_reduce_ms_median.toFixed(2)} | ${r.rank_tokens_per_s_median.map((t) => t.toFixed(0)).join(" / ")} | ${r.memory_gib.toFixed(2)} |`);
  }
  lines.push("", "Issue 15's goals: ≥ 1.9× on 2 GPUs, ≥ 3.6× on 4.", "");
}

let failed = false;
const equality = byTag("equality");
const reference = equality.find((r) => r.processes === 1);
if (equality.length > 0) {
  lines.push(`## Per-step losses against one process (global batch ${equality[0]!.batch}, ${equality[0]!.losses.length} steps, bound ${rtol} relative)`, "");
  lines.push("| processes | worst relative difference | at step | verdict |", "|---|---|---|---|");
  for (const r of equality) {
    if (r === reference) continue;
    if (reference === undefined || reference.losses.length !== r.losses.length || reference.batch !== r.batch) {
      lines.push(`| ${r.processes} | no one-process record of the same batch and length to compare with | | FAIL |`);
      failed = true;
      continue;
    }
    let worst = 0;
    let at = 0;
    r.losses.forEach((loss, i) => {
      const difference = Math.abs(loss - reference.losses[i]!) / Math.abs(reference.losses[i]!);
      if (difference > worst) [worst, at] = [difference, i + 1];
    });
    const pass = worst <= rtol;
    failed ||= !pass;
    lines.push(`| ${r.processes} | ${worst.toExponential(2)} | ${at} | ${pass ? "pass" : "FAIL"} |`);
  }
  lines.push("");
}
writeFileSync(output, `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
process.exitCode = failed ? 1 : 0;
