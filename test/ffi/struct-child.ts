// A process of its own for processes.test.ts: opens libc ten times with a struct-returning
// function, each time under another struct name (on Bun each is a TinyCC compile of its own), and
// prints div(7, 2) from each.
import { defineStruct, defineSymbols, openLibrary } from "../../src/ffi/index.ts";

const results = [];
for (let i = 0; i < 10; i++) {
  const div_t = defineStruct(`div_t_${i}`, { quot: "i32", rem: "i32" });
  // div_t div(int numerator, int denominator);
  const symbols = defineSymbols({ div: { parameters: ["i32", "i32"], result: div_t } });
  using libc = openLibrary("libc", "libc.so.6", symbols);
  results.push(libc.symbols.div(7, 2));
}
console.log(JSON.stringify(results.every((r) => r.quot === 3 && r.rem === 1) ? results[0] : results));
