/* What the upload benchmark's C anchors share (read_anchor.cu, upload_anchor.cu): a file in the
 * page cache cut into CHUNK-byte pieces that threads take in turn (an atomic counter), each read
 * with pread, and a monotonic clock. */
#include <fcntl.h>
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

/* argv: FILE CHUNK_BYTES THREADS...; opens FILE, or exits with `usage` when arguments are missing. */
static void open_pieces(int argc, char **argv, const char *usage) {
  if (argc < 4) { fprintf(stderr, "usage: %s\n", usage); exit(2); }
  fd = open(argv[1], O_RDONLY);
  if (fd < 0) { perror(argv[1]); exit(1); }
  struct stat st;
  fstat(fd, &st);
  file_size = (size_t)st.st_size;
  chunk = strtoull(argv[2], NULL, 10);
}

/* Takes the next piece: its offset, and its length in *length; 0 when the file is done. */
static size_t take_piece(size_t *offset) {
  *offset = __atomic_fetch_add(&next_chunk, 1, __ATOMIC_RELAXED) * chunk;
  if (*offset >= file_size) return 0;
  return file_size - *offset < chunk ? file_size - *offset : chunk;
}

/* Reads the piece at `offset` whole into `buffer`. */
static void read_piece(void *buffer, size_t offset, size_t length) {
  for (size_t done = 0; done < length;) {
    ssize_t n = pread(fd, (char *)buffer + done, length - done, (off_t)(offset + done));
    if (n <= 0) { perror("pread"); exit(1); }
    done += (size_t)n;
  }
}
