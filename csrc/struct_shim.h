/*
 * Prelude of the struct-by-value shim that gpuffi generates for Bun.
 *
 * bun:ffi cannot pass or return C structs by value. For every such function in a gpuffi symbol
 * table, src/ffi/bun-struct-shim.ts writes a wrapper that takes the real function's address and
 * pointers to the struct arguments and result, and calls the real function by value:
 *
 *     void gpuffi_shim_div(void *fn, int32_t a0, int32_t a1, gpuffi_div_t *ret) {
 *         *ret = ((gpuffi_div_t (*)(int32_t, int32_t))fn)(a0, a1);
 *     }
 *
 * Bun's built-in TinyCC compiles it when the library is opened, so users need no compiler. The
 * struct typedefs are generated from the same table as the JS layout, so C and JS agree on it.
 */
#ifndef GPUFFI_STRUCT_SHIM_H
#define GPUFFI_STRUCT_SHIM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif
