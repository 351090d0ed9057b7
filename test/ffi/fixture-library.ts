// The symbol table of test/fixtures/testlib.c, shared by the FFI tests that need it.
import process from "node:process";
import { defineCallback, defineStruct, defineSymbols, openLibrary } from "../../src/ffi/index.ts";

export const point = defineStruct("gt_point", { x: "i32", y: "i32" });
export const complex = defineStruct("gt_complex", { re: "f64", im: "f64" });
export const tagged = defineStruct("gt_tagged", { id: "i64", weight: "f32" });
export const weighted = defineStruct("gt_weighted", { w: "f64", n: "i32" });
export const params = defineStruct("gt_params", {
  n_ctx: "i32",
  flag: "u8",
  scale: "f64",
  origin: point,
  taps: { array: "i16", length: 3 },
  enabled: "bool",
  user_data: "ptr",
  seed: "u64",
});

/** enum gt_color. */
export const color = { red: 1, blue: 4 } as const;

export const binop = defineCallback({ parameters: ["i32", "i32"], result: "i32" });
export const visit = defineCallback({ parameters: ["cstring", "f64", "ptr"], result: "void" });
export const notify = defineCallback({ parameters: ["i32"], result: "void" });

export const testlibSymbols = defineSymbols({
  gt_add_i32: { parameters: ["i32", "i32"], result: "i32" },
  gt_add_u64: { parameters: ["u64", "u64"], result: "u64" },
  gt_neg_i8: { parameters: ["i8"], result: "i8" },
  gt_id_u16: { parameters: ["u16"], result: "u16" },
  gt_mul_f32: { parameters: ["f32", "f32"], result: "f32" },
  gt_mix: { parameters: ["i8", "u16", "i32", "i64", "f32", "f64"], result: "f64" },
  gt_not: { parameters: ["bool"], result: "bool" },
  gt_strlen: { parameters: ["cstring"], result: "usize" },
  gt_greeting: { parameters: ["i32"], result: "cstring" },
  gt_identity_ptr: { parameters: ["ptr"], result: "ptr" },
  gt_fill_u32: { parameters: ["buffer", "usize", "u32"], result: "void" },
  gt_point_make: { parameters: ["i32", "i32"], result: point },
  gt_point_sum: { parameters: [point], result: "i32" },
  gt_complex_mul: { parameters: [complex, complex], result: complex },
  gt_tagged_scale: { parameters: [tagged, "f32"], result: tagged },
  gt_weighted_make: { parameters: ["f64", "i32"], result: weighted },
  gt_weighted_dot: { parameters: ["i32", "f32", weighted, tagged, "f64"], result: "f64" },
  gt_params_default: { parameters: [], result: params },
  gt_params_checksum: { parameters: [params], result: "f64" },
  gt_params_bump: { parameters: [params, "i32"], result: params },
  gt_params_sizeof: { parameters: [], result: "usize" },
  gt_params_offsetof_seed: { parameters: [], result: "usize" },
  gt_apply: { parameters: ["callback", "i32", "i32"], result: "i32" },
  gt_each: { parameters: ["callback", "ptr"], result: "void" },
  gt_notify_from_thread: { parameters: ["callback", "i32"], result: "i32" },
  gt_join_thread: { parameters: [], result: "i32", nonblocking: true },
  gt_sleep_ms: { parameters: ["i32"], result: "i32", nonblocking: true },
});

const path = process.env.GPUFFI_TEST_LIB;
/** Why fixture tests skip, or `undefined` when the fixture library is there. */
export const skipFixture = path ? undefined : "no fixture library (GPUFFI_TEST_LIB unset: npm test builds it with the system C compiler)";
export const testlib = path ? openLibrary("gpuffi test library", path, testlibSymbols) : undefined!;
