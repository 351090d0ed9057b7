// `npm run check:abi`: compiles every symbol table, struct layout and hard-coded constant of
// scripts/abi/tables.ts against the library's real headers with GCC, and names each difference
// as (library, symbol, parameter/field, expected, found). A library whose headers or compiler
// are missing is skipped with its reason on one line. Exit status 1 when anything differs.
//   npm run check:abi [-- libllama libcuda ...]     (GPUFFI_LLAMA_SRC=DIR: another llama.cpp tree)
import process from "node:process";
import { type AbiReport, checkLibrary } from "./abi/checker.ts";
import { abiLibraries } from "./abi/tables.ts";

const only = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const selected = abiLibraries.filter((l) => only.length === 0 || only.includes(l.name));
if (selected.length === 0) {
  console.error(`check-abi: no library named ${only.join(", ")}; known: ${abiLibraries.map((l) => l.name).join(", ")}`);
  process.exit(2);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function summary(report: AbiReport, label: string): string {
  const counts = [plural(report.functions, "function"), `${plural(report.structs, "struct")} (${plural(report.fields, "field")})`, plural(report.constants, "constant")];
  const notApplicable = report.inapplicable.length ? `; not for these headers: ${report.inapplicable.join(", ")}` : "";
  const version = report.source ? `, ${report.source}` : "";
  return `${report.library} (${label}${version}): ${counts.join(", ")}${notApplicable}`;
}

const started = performance.now();
let failed = 0;
let checked = 0;
let skipped = 0;
for (const library of selected) {
  const dirs = library.includeDirs();
  const report: AbiReport = "skip" in dirs
    ? { library: library.name, skipped: dirs.skip, functions: 0, structs: 0, fields: 0, constants: 0, inapplicable: [], mismatches: [] }
    : checkLibrary(library, dirs.dirs);
  if (report.skipped) {
    skipped++;
    console.log(`- ${library.name}: skipped: ${report.skipped}`);
    continue;
  }
  checked++;
  const label = "skip" in dirs ? "" : dirs.label;
  if (report.mismatches.length === 0) {
    console.log(`✓ ${summary(report, label)}`);
    continue;
  }
  failed++;
  console.log(`✗ ${summary(report, label)}: ${plural(report.mismatches.length, "difference")}`);
  for (const m of report.mismatches) console.log(`    ${m.library} ${m.symbol} ${m.what}: expected ${m.expected}, found ${m.found}`);
}
console.log(`${checked} libraries checked, ${failed} with differences, ${skipped} skipped (${((performance.now() - started) / 1000).toFixed(1)} s)`);
process.exitCode = failed > 0 ? 1 : 0;
