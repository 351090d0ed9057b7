/* The C anchor of bench/cuda.bench.ts, built with nvcc in the same run:
 *   nvcc -O2 -o .cache/bench/cuda_anchor bench/c/cuda_anchor.cu
 * Prints one JSON line: ns per cudaGetDevice call in a loop, and pinned host↔device cudaMemcpy
 * bandwidth (best of 10) for the same size the JS benchmark copies. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

#define CHECK(call) do { cudaError_t e = (call); if (e != cudaSuccess) { fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e)); exit(1); } } while (0)

int main(int argc, char **argv) {
  size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)256 << 20;
  long calls = 10000000L;
  int device = 0;
  CHECK(cudaSetDevice(0));
  double best_call = 1e300;
  for (int round = 0; round < 5; round++) {
    long sum = 0;
    double start = now_ns();
    for (long i = 0; i < calls; i++) { cudaGetDevice(&device); sum += device; }
    double ns = (now_ns() - start) / calls;
    if (ns < best_call) best_call = ns;
    if (sum == 42) puts("");
  }
  void *host, *dev;
  CHECK(cudaHostAlloc(&host, bytes, cudaHostAllocPortable));
  CHECK(cudaMalloc(&dev, bytes));
  for (size_t i = 0; i < bytes; i++) ((unsigned char *)host)[i] = (unsigned char)(i * 131 + 7);
  double best_h2d = 1e300, best_d2h = 1e300;
  for (int round = 0; round < 10; round++) {
    double start = now_ns();
    CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    double mid = now_ns();
    CHECK(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
    double end = now_ns();
    if (mid - start < best_h2d) best_h2d = mid - start;
    if (end - mid < best_d2h) best_d2h = end - mid;
  }
  printf("{\"getDeviceNs\": %.2f, \"bytes\": %zu, \"h2dGBps\": %.2f, \"d2hGBps\": %.2f}\n", best_call, bytes, bytes / best_h2d, bytes / best_d2h);
  return 0;
}
