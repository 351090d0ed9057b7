/* The C anchor of bench/pool.bench.ts, built with nvcc in the same run:
 *   nvcc -O2 -o .cache/bench/pool_anchor bench/c/pool_anchor.cu
 * Prints one JSON line: µs per cudaMallocAsync+cudaFreeAsync pair (the driver's stream-ordered
 * pool, warm) and per cudaMalloc+cudaFree pair, for the size given (default 4096 bytes). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e)); exit(1); } } while (0)

int main(int argc, char **argv) {
  size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : 4096;
  CHECK(cudaSetDevice(0));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  void *p;
  double best_async = 1e300, best_sync = 1e300;
  for (int round = 0; round < 5; round++) {
    int n = 100000;
    double start = now_us();
    for (int i = 0; i < n; i++) { CHECK(cudaMallocAsync(&p, bytes, stream)); CHECK(cudaFreeAsync(p, stream)); }
    CHECK(cudaStreamSynchronize(stream));
    double us = (now_us() - start) / n;
    if (us < best_async) best_async = us;
    n = 2000;
    start = now_us();
    for (int i = 0; i < n; i++) { CHECK(cudaMalloc(&p, bytes)); CHECK(cudaFree(p)); }
    us = (now_us() - start) / n;
    if (us < best_sync) best_sync = us;
  }
  printf("{\"bytes\": %zu, \"mallocAsyncFreeAsyncUs\": %.3f, \"mallocFreeUs\": %.2f}\n", bytes, best_async, best_sync);
  return 0;
}
