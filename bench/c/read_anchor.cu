/* The C anchor of bench/upload.bench.ts's reads-only figure: how fast this host reads a file in
 * the page cache into pinned memory with no JS runtime in the way. THREADS threads each take the
 * next CHUNK-byte piece of the file (an atomic counter) and pread it into their own pinned
 * buffer (cudaHostAlloc, as gpuffi's staging ring is); no copies to the device. Best of 3 passes.
 *   nvcc -O2 -o .cache/bench/read_anchor bench/c/read_anchor.cu
 *   .cache/bench/read_anchor FILE CHUNK_BYTES THREADS...     (prints one JSON line per thread count) */
#include <cuda_runtime.h>
#include <pthread.h>
#include "file_pieces.h"

static void *reader(void *buffer) {
  size_t offset, length;
  while ((length = take_piece(&offset)) > 0) read_piece(buffer, offset, length);
  return NULL;
}

int main(int argc, char **argv) {
  open_pieces(argc, argv, "read_anchor FILE CHUNK_BYTES THREADS...");
  for (int a = 3; a < argc; a++) {
    int threads = atoi(argv[a]);
    void **buffers = (void **)calloc(threads, sizeof(void *));
    pthread_t *ids = (pthread_t *)calloc(threads, sizeof(pthread_t));
    /* Without a device (a machine with no GPU), plain memory: the figure says which it was. */
    int pinned = cudaHostAlloc(&buffers[0], chunk, cudaHostAllocPortable) == cudaSuccess;
    for (int i = 0; i < threads; i++) {
      if (!pinned) buffers[i] = malloc(chunk);
      else if (i > 0 && cudaHostAlloc(&buffers[i], chunk, cudaHostAllocPortable) != cudaSuccess) { fprintf(stderr, "cudaHostAlloc failed\n"); return 1; }
    }
    double best = 1e30;
    for (int pass = 0; pass < 3; pass++) {
      __atomic_store_n(&next_chunk, 0, __ATOMIC_RELAXED);
      double start = now_s();
      for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, reader, buffers[i]);
      for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
      double seconds = now_s() - start;
      if (seconds < best) best = seconds;
    }
    printf("{\"threads\": %d, \"chunkBytes\": %zu, \"pinned\": %s, \"gbps\": %.2f}\n", threads, chunk, pinned ? "true" : "false", file_size / best / 1e9);
    for (int i = 0; i < threads; i++) {
      if (pinned) cudaFreeHost(buffers[i]);
      else free(buffers[i]);
    }
    free(buffers);
    free(ids);
  }
  close(fd);
  return 0;
}
