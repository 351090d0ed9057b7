// Per-call cost of a trivial C function (int32 + int32) through gpuffi, next to the runtime's
// raw FFI. scripts/bench.mjs runs this on each runtime and puts the C loop beside it.
//   <runtime> bench/ffi.bench.ts path/to/libgpuffi_bench.so gpuffi|raw
// The hand-timed loop measures only the variant named: a loop that has seen another function
// is deoptimized for the next one, so each variant gets a process of its own.
import { bench, do_not_optimize, run } from "mitata";
import process from "node:process";
import { defineSymbols, openLibrary, runtimeVersion } from "../src/ffi/index.ts";
import { rawAdd } from "./raw-ffi.ts";

const [path, variant] = process.argv.slice(2);
if (!path || (variant !== "gpuffi" && variant !== "raw")) throw new Error("usage: bench/ffi.bench.ts path/to/libgpuffi_bench.so gpuffi|raw");

const benchSymbols = defineSymbols({
  // int32_t gb_add(int32_t a, int32_t b);
  gb_add: { parameters: ["i32", "i32"], result: "i32" },
});
const gpuffiAdd = openLibrary("libgpuffi_bench", path, benchSymbols).symbols.gb_add;
const raw = await rawAdd(path);

// Each twice, interleaved, best median kept: the first benchmark of a run often pays for warm-up.
for (const round of [1, 2]) {
  bench(`gpuffi gb_add ${round}`, () => do_not_optimize(gpuffiAdd(1, 2)));
  bench(`raw FFI gb_add ${round}`, () => do_not_optimize(raw(1, 2)));
}

const { benchmarks } = await run({ format: "quiet" });
const median = (name: string) => Math.min(...benchmarks.filter((b) => b.alias.startsWith(name)).map((b) => b.runs[0]!.stats!.p50));

/** The C anchor's own loop shape, timed by hand: the like-for-like comparison with C. */
function loopNs(add: (a: number, b: number) => number, calls = 50_000_000): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    let sum = 0;
    const start = performance.now();
    for (let i = 0; i < calls; i++) sum += add(i & 0xffff, 2);
    best = Math.min(best, ((performance.now() - start) * 1e6) / calls);
    if (sum === 42) console.log("");
  }
  return best;
}

const figures = {
  runtime: runtimeVersion(),
  variant,
  mitataNs: median(variant === "gpuffi" ? "gpuffi gb_add" : "raw FFI gb_add"),
  loopNs: loopNs(variant === "gpuffi" ? gpuffiAdd : raw),
};
console.log(`#bench ${JSON.stringify(figures)}`);
