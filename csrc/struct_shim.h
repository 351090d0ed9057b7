/*
 * Prelude of the struct-by-value shim that gpuffi generates for Bun.
 *
 * bun:ffi cannot pass or return C structs by value. For every such function in a gpuffi symbol
 * table, src/ffi/bun-struct-shim.ts writes a wrapper that takes the real function's address and
 * pointers to the struct arguments and result, and calls the real function by value:
 *
 *     void gpuffi_shim_div(void *fn, int32_t a0, int32_t a1, gpuffi_s0_div_t *ret) {
 *         *ret = ((gpuffi_s0_div_t (*)(int32_t, int32_t))fn)(a0, a1);
 *     }
 *
 * Bun's built-in TinyCC compiles it when the library is opened, so users need no compiler. The
 * struct typedefs are generated from the same table as the JS layout, so C and JS agree on it.
 *
 * One TinyCC defect is worked around here: for structs of at most 16 bytes whose two eightbytes
 * are of different System V classes (one integer, one floating point, e.g. {int64_t; float}),
 * TinyCC passes and returns the wrong registers. Such arguments are passed as their eightbytes
 * (uint64_t in a general register, double in an SSE register: what the ABI does), and such
 * results are read from RAX and XMM0 directly.
 */
#ifndef GPUFFI_STRUCT_SHIM_H
#define GPUFFI_STRUCT_SHIM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Eightbyte `index` of a struct of `size` bytes, as the integer or SSE register would hold it. */
static uint64_t gpuffi_eightbyte_int(const void *s, size_t size, int index) {
  uint64_t v = 0;
  size_t n = size - 8 * index < 8 ? size - 8 * index : 8;
  memcpy(&v, (const char *)s + 8 * index, n);
  return v;
}
static double gpuffi_eightbyte_sse(const void *s, size_t size, int index) {
  uint64_t bits = gpuffi_eightbyte_int(s, size, index);
  double v;
  memcpy(&v, &bits, 8);
  return v;
}
/* Stores a two-eightbyte result that came back in RAX and XMM0. */
static void gpuffi_store_mixed(void *ret, size_t size, int integer_first, uint64_t rax, uint64_t xmm0) {
  uint64_t first = integer_first ? rax : xmm0, second = integer_first ? xmm0 : rax;
  memcpy(ret, &first, 8);
  memcpy((char *)ret + 8, &second, size - 8);
}
#endif
