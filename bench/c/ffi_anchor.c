/* The C anchor of bench/ffi.bench.ts and bench/hot-paths.bench.ts. Built twice by scripts/bench.mjs:
 *   -DGB_LIBRARY -shared  → libgpuffi_bench.so, the trivial function every runtime calls;
 *   (default)             → ffi_anchor, which dlopens that library and calls the same function
 *                           through a pointer in a loop, as an FFI call must, and prints ns/call.
 * `ffi_anchor --out-param LIBCUDART [SYMBOL]` times a call with one `int *` out-parameter the same
 * way: cudaRuntimeGetVersion by default, which has cudaGetDevice's signature and answers without
 * a GPU (bench/hot-paths.bench.ts). */
#include <stdint.h>
#ifdef GB_LIBRARY
int32_t gb_add(int32_t a, int32_t b) { return a + b; }
#else
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  int out_param = argc > 1 && strcmp(argv[1], "--out-param") == 0;
  if (argc < 2 + out_param) { fprintf(stderr, "usage: ffi_anchor libgpuffi_bench.so [calls] | ffi_anchor --out-param LIBCUDART [SYMBOL]\n"); return 2; }
  void *lib = dlopen(argv[1 + out_param], RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  /* Through a dlsym pointer the compiler cannot inline the call; independent calls, as the JS loops make. */
  const char *symbol = out_param ? (argc > 3 ? argv[3] : "cudaRuntimeGetVersion") : "gb_add";
  void *function = dlsym(lib, symbol);
  if (!function) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  int32_t (*add)(int32_t, int32_t) = (int32_t (*)(int32_t, int32_t))function;
  int (*get)(int *) = (int (*)(int *))function;
  long calls = out_param ? 20000000L : argc > 2 ? atol(argv[2]) : 200000000L;
  int value = 0;
  double best = 1e300;
  for (int round = 0; round < 5; round++) {
    int64_t sum = 0;
    double start = now_ns();
    if (out_param) for (long i = 0; i < calls; i++) { get(&value); sum += value; }
    else for (long i = 0; i < calls; i++) sum += add((int32_t)i, 2);
    double per_call = (now_ns() - start) / calls;
    if (sum == 42) puts("");  /* keeps the loop's result alive */
    if (per_call < best) best = per_call;
  }
  printf("{\"nsPerCall\": %.4f, \"calls\": %ld, \"symbol\": \"%s\"}\n", best, calls, symbol);
  return 0;
}
#endif
