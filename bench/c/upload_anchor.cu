/* The C anchor of bench/upload.bench.ts's staged uploads: the file (in the page cache) to the GPU
 * as gpuffi's staged strategy moves it, with no JS runtime in the way. THREADS threads each own
 * two pinned buffers of CHUNK bytes (cudaHostAlloc) and a stream; each takes the next CHUNK-byte
 * piece of the file (an atomic counter), waits until the copy out of its buffer completed (its
 * event), preads the piece into the buffer, queues cudaMemcpyAsync to the device and records the
 * buffer's event, then does the same with its other buffer. What this host does at most when every
 * byte is read once by the CPU and once by the DMA engine. Best of 3 passes.
 *   nvcc -O2 -o .cache/bench/upload_anchor bench/c/upload_anchor.cu
 *   .cache/bench/upload_anchor FILE CHUNK_BYTES THREADS...     (prints one JSON line per thread count) */
#include <cuda_runtime.h>
#include <pthread.h>
#include "file_pieces.h"

#define CHECK(call)                                                                   \
  do {                                                                                \
    cudaError_t status_ = (call);                                                     \
    if (status_ != cudaSuccess) {                                                     \
      fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(status_));         \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

static char *device;

struct Worker {
  void *buffers[2];
  cudaEvent_t copied[2];
  cudaStream_t stream;
};

static void *upload(void *arg) {
  struct Worker *w = (struct Worker *)arg;
  size_t offset, length;
  for (int b = 0; (length = take_piece(&offset)) > 0; b ^= 1) {
    CHECK(cudaEventSynchronize(w->copied[b]));
    read_piece(w->buffers[b], offset, length);
    CHECK(cudaMemcpyAsync(device + offset, w->buffers[b], length, cudaMemcpyHostToDevice, w->stream));
    CHECK(cudaEventRecord(w->copied[b], w->stream));
  }
  CHECK(cudaStreamSynchronize(w->stream));
  return NULL;
}

int main(int argc, char **argv) {
  open_pieces(argc, argv, "upload_anchor FILE CHUNK_BYTES THREADS...");
  CHECK(cudaMalloc((void **)&device, file_size));
  for (int a = 3; a < argc; a++) {
    int threads = atoi(argv[a]);
    struct Worker *workers = (struct Worker *)calloc(threads, sizeof(struct Worker));
    pthread_t *ids = (pthread_t *)calloc(threads, sizeof(pthread_t));
    for (int i = 0; i < threads; i++) {
      CHECK(cudaStreamCreateWithFlags(&workers[i].stream, cudaStreamNonBlocking));
      for (int b = 0; b < 2; b++) {
        CHECK(cudaHostAlloc(&workers[i].buffers[b], chunk, cudaHostAllocPortable));
        CHECK(cudaEventCreateWithFlags(&workers[i].copied[b], cudaEventDisableTiming));
      }
    }
    double best = 1e30;
    for (int pass = 0; pass < 3; pass++) {
      __atomic_store_n(&next_chunk, 0, __ATOMIC_RELAXED);
      double start = now_s();
      for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, upload, &workers[i]);
      for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
      double seconds = now_s() - start;
      if (seconds < best) best = seconds;
    }
    printf("{\"threads\": %d, \"chunkBytes\": %zu, \"buffersPerThread\": 2, \"gbps\": %.2f}\n", threads, chunk, file_size / best / 1e9);
    for (int i = 0; i < threads; i++) {
      for (int b = 0; b < 2; b++) {
        CHECK(cudaFreeHost(workers[i].buffers[b]));
        CHECK(cudaEventDestroy(workers[i].copied[b]));
      }
      CHECK(cudaStreamDestroy(workers[i].stream));
    }
    free(workers);
    free(ids);
  }
  CHECK(cudaFree(device));
  close(fd);
  return 0;
}
