/* The C anchor of bench/upload.bench.ts's reads-only figure: how fast this host reads a file in
 * the page cache into pinned memory with no JS runtime in the way. THREADS threads each take the
 * next CHUNK-byte piece of the file (an atomic counter) and pread it into their own pinned
 * buffer (cudaHostAlloc, as gpuffi's staging ring is); no copies to the device. Best of 3 passes.
 *   nvcc -O2 -o .cache/bench/read_anchor bench/c/read_anchor.cu
 *   .cache/bench/read_anchor FILE CHUNK_BYTES THREADS...     (prints one JSON line per thread count) */
#include <cuda_runtime.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd;
static size_t file_size, chunk;
static size_t next_chunk;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *buffer) {
  for (;;) {
    size_t offset = __atomic_fetch_add(&next_chunk, 1, __ATOMIC_RELAXED) * chunk;
    if (offset >= file_size) return NULL;
    size_t length = file_size - offset < chunk ? file_size - offset : chunk;
    for (size_t done = 0; done < length;) {
      ssize_t n = pread(fd, (char *)buffer + done, length - done, (off_t)(offset + done));
      if (n <= 0) { perror("pread"); exit(1); }
      done += (size_t)n;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: read_anchor FILE CHUNK_BYTES THREADS...\n"); return 2; }
  fd = open(argv[1], O_RDONLY);
  if (fd < 0) { perror(argv[1]); return 1; }
  struct stat st;
  fstat(fd, &st);
  file_size = (size_t)st.st_size;
  chunk = strtoull(argv[2], NULL, 10);
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
