// The ABI check (scripts/check-abi.ts) on copies of real tables with one parameter type, one
// struct field and one enum value changed: it must name each (library, symbol, parameter or
// field, expected, found), and find nothing in the unchanged tables.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";
import { type AbiMismatch, checkLibrary, findCompiler, parseAuxInfo } from "../../scripts/abi/checker.ts";
import { llamaHeaderCache } from "../../scripts/abi/headers.ts";
import { type AbiLibrary, constantsOf } from "../../scripts/abi/model.ts";
import { libllama } from "../../scripts/abi/tables.ts";
import { defineStruct, defineSymbols } from "../../src/ffi/types.ts";
import { PoolingType, llamaContextParams, llamaSymbols } from "../../src/llama/bindings.ts";
import { color, complex, params, point, tagged, testlibSymbols, weighted } from "../ffi/fixture-library.ts";

const fixtures = fileURLToPath(new URL("../fixtures", import.meta.url));
const compiler = findCompiler();
const noCompiler = "skip" in compiler ? compiler.skip : undefined;

const fixtureLibrary: AbiLibrary = {
  name: "testlib",
  headers: ["testlib.c"],
  includeDirs: () => ({ dirs: [fixtures], label: fixtures }),
  tables: [{ name: "testlibSymbols", symbols: testlibSymbols }],
  structs: [point, complex, tagged, weighted, params].map((type) => ({ type, c: type.name })),
  constants: constantsOf("color", color, { red: "GT_RED", blue: "GT_BLUE" }),
};

function differences(library: AbiLibrary, dirs: readonly string[]): AbiMismatch[] {
  const report = checkLibrary(library, dirs);
  assert.equal(report.skipped, undefined);
  return [...report.mismatches];
}

function assertNamed(found: AbiMismatch[], expected: Omit<AbiMismatch, "library">[], library: string): void {
  for (const e of expected) {
    assert.ok(
      found.some((f) => f.library === library && f.symbol === e.symbol && f.what === e.what && f.expected === e.expected && f.found === e.found),
      `expected ${JSON.stringify(e)} among:\n${found.map((f) => JSON.stringify(f)).join("\n")}`,
    );
  }
}

test("the fixture's table, structs and enum match testlib.c", () => {
  assert.deepEqual(differences(fixtureLibrary, [fixtures]), []);
}, { skip: noCompiler });

test("a changed parameter, struct field and enum value in the fixture's table are each named", () => {
  const drifted: AbiLibrary = {
    ...fixtureLibrary,
    tables: [{ name: "drifted", symbols: defineSymbols({ ...testlibSymbols, gt_add_i32: { parameters: ["i32", "i64"], result: "i32" } }) }],
    structs: [...fixtureLibrary.structs!, { type: defineStruct("gt_params", { ...params.fields, flag: "u16" }), c: "gt_params" }],
    constants: constantsOf("color", { ...color, blue: 5 }, { red: "GT_RED", blue: "GT_BLUE" }),
  };
  const found = differences(drifted, [fixtures]);
  assertNamed(found, [
    { symbol: "gt_add_i32", what: "parameter 2", expected: "i64", found: "int32_t (i32)" },
    { symbol: "gt_params", what: "field flag size", expected: "2", found: "1" },
    { symbol: "gt_params", what: "field flag type", expected: "u16", found: "u8" },
    { symbol: "color.blue", what: "= GT_BLUE", expected: "5", found: "4" },
  ], "testlib");
  assert.equal(found.length, 4, found.map((f) => JSON.stringify(f)).join("\n"));
}, { skip: noCompiler });

const llamaSource = process.env.GPUFFI_LLAMA_SRC ?? llamaHeaderCache();
const llamaDirs = [join(llamaSource, "include"), join(llamaSource, "ggml", "include")];
const noLlamaHeaders = noCompiler ?? (existsSync(join(llamaDirs[0]!, "llama.h")) ? undefined : `no llama.cpp headers at ${llamaSource} (npm run check:abi fetches them)`);

test("llama.h: an upstream field insertion, a signedness change and a renumbered enum are each named", () => {
  // What a llama.cpp bump looks like to a stale table: llama_context_params without a field that
  // upstream inserted (n_rs_seq: every later field moves by 4 bytes, sizeof does not, padding
  // absorbs it), a seed bound as i32, and an enum value that moved.
  const { n_rs_seq: _dropped, ...olderFields } = llamaContextParams.fields;
  const olderParams = defineStruct("llama_context_params", olderFields);
  const drifted: AbiLibrary = {
    ...libllama,
    tables: [{ name: "drifted", symbols: defineSymbols({ ...llamaSymbols, llama_sampler_init_dist: { parameters: ["i32"], result: "ptr" } }) }],
    structs: [...libllama.structs!, { type: olderParams, c: "struct llama_context_params" }],
    constants: constantsOf("PoolingType", { ...PoolingType, rank: 5 }, {
      unspecified: "LLAMA_POOLING_TYPE_UNSPECIFIED", none: "LLAMA_POOLING_TYPE_NONE", mean: "LLAMA_POOLING_TYPE_MEAN",
      cls: "LLAMA_POOLING_TYPE_CLS", last: "LLAMA_POOLING_TYPE_LAST", rank: "LLAMA_POOLING_TYPE_RANK",
    }),
  };
  const found = differences(drifted, llamaDirs);
  assertNamed(found, [
    { symbol: "llama_sampler_init_dist", what: "parameter 1", expected: "i32", found: "uint32_t (u32)" },
    { symbol: "llama_context_params", what: "field n_outputs_max offset", expected: "16", found: "20" },
    { symbol: "PoolingType.rank", what: "= LLAMA_POOLING_TYPE_RANK", expected: "5", found: "4" },
  ], "libllama");
}, { skip: noLlamaHeaders });

test("gcc -aux-info lines: f(void) and an unprototyped f() (nccl.h's ncclGroupStart) take no parameters", () => {
  // What gcc 12 prints for `ncclResult_t ncclGroupStart();` and `cudaError_t cudaDeviceSynchronize(void);`.
  const parsed = parseAuxInfo([
    "/* /usr/include/nccl.h:546:OC */ extern ncclResult_t ncclGroupStart (/* ??? */);",
    "/* /usr/include/cuda_runtime_api.h:12:NC */ extern cudaError_t cudaDeviceSynchronize (void);",
    "/* x.h:3:NC */ extern int f (const char *, ...);",
  ].join("\n"));
  assert.deepEqual(parsed.get("ncclGroupStart")?.parameters, []);
  assert.deepEqual(parsed.get("cudaDeviceSynchronize")?.parameters, []);
  assert.deepEqual(parsed.get("f"), { result: "int", parameters: ["const char *"], variadic: true, where: "x.h:3" });
});
