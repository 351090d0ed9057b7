// Strings llama.cpp writes into a caller's buffer snprintf-style: the call returns the length it
// needed (or -1 when there is nothing), so a short buffer is grown once and the call repeated.

const utf8 = new TextDecoder();

/** Calls `write(buffer, size)` until the whole NUL-terminated string fits; `undefined` for -1. */
export function readSizedString(write: (buffer: Uint8Array, size: number) => number, initial = 256): string | undefined {
  let buffer = new Uint8Array(initial);
  let length = write(buffer, buffer.length);
  if (length < 0) return undefined;
  if (length >= buffer.length) {
    buffer = new Uint8Array(length + 1);
    length = write(buffer, buffer.length);
  }
  return utf8.decode(buffer.subarray(0, length));
}

/** GGUF metadata as llama.cpp exposes it: every scalar rendered as a string, in file order. */
export function readMetadata(
  count: number,
  key: (i: number, buffer: Uint8Array, size: number) => number,
  value: (i: number, buffer: Uint8Array, size: number) => number,
): Map<string, string> {
  const metadata = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const name = readSizedString((b, n) => key(i, b, n));
    if (name !== undefined) metadata.set(name, readSizedString((b, n) => value(i, b, n)) ?? "");
  }
  return metadata;
}
