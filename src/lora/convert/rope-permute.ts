// Hugging Face and llama.cpp order the rows of the q and k projections differently. HF's
// rotary embedding pairs dimension i of a head with dimension i + d/2 ("rotate_half"), ggml's
// LLAMA rope pairs 2i with 2i + 1, so convert_hf_to_gguf.py (LlamaModel.permute) reorders every
// head's rows: weights.reshape(n_head, 2, d/2, ...).swapaxes(1, 2).reshape(weights.shape).
// For a LoRA pair, W = B·A, so only B's rows move (convert_lora_to_gguf.py's LoraTorchTensor
// applies the reshape/permute to B and leaves A alone).

/** Row `r` of the llama.cpp layout comes from this row of the HF layout. */
export function hfRowOf(row: number, headSize: number): number {
  const head = Math.floor(row / headSize);
  const within = row % headSize;
  // New position (i, t) within the head, i < d/2, t ∈ {0, 1}, takes old position (t, i).
  const i = within >> 1;
  const t = within & 1;
  return head * headSize + t * (headSize / 2) + i;
}

/**
 * Reorders the rows (each `rowLength` elements of `bytesPer` bytes) of an HF-layout q or k
 * matrix into llama.cpp's layout. `heads` is the head count of that projection (the KV head
 * count for k, as convert_hf_to_gguf.py does when it differs).
 */
export function permuteRopeRows(data: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  const headSize = rows / heads;
  if (!Number.isInteger(headSize) || headSize % 2 !== 0) throw new RangeError(`${rows} rows do not split into ${heads} heads of even size`);
  const out = new Uint8Array(data.length);
  for (let row = 0; row < rows; row++) {
    const from = hfRowOf(row, headSize) * rowBytes;
    out.set(data.subarray(from, from + rowBytes), row * rowBytes);
  }
  return out;
}

/**
 * The inverse of permuteRopeRows: llama.cpp's row order of a q or k matrix back to Hugging
 * Face's (for exporting an adapter to PEFT, where only B's rows move, as above).
 */
export function unpermuteRopeRows(data: Uint8Array, rows: number, rowBytes: number, heads: number): Uint8Array {
  const headSize = rows / heads;
  if (!Number.isInteger(headSize) || headSize % 2 !== 0) throw new RangeError(`${rows} rows do not split into ${heads} heads of even size`);
  const out = new Uint8Array(data.length);
  for (let row = 0; row < rows; row++) {
    const to = hfRowOf(row, headSize) * rowBytes;
    out.set(data.subarray(row * rowBytes, (row + 1) * rowBytes), to);
  }
  return out;
}
