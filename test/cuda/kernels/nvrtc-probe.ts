// Whether libnvrtc loads here; the one-line reason to skip when it does not.
import { LibraryNotFoundError } from "../../../src/ffi/index.ts";
import { loadNvrtc } from "../../../src/cuda/index.ts";

export function nvrtcSkipReason(): string | undefined {
  try {
    loadNvrtc();
    return undefined;
  } catch (error) {
    if (error instanceof LibraryNotFoundError) return "libnvrtc not found (no CUDA toolkit or nvidia-cuda-nvrtc wheel; GPUFFI_NVRTC names one)";
    return `libnvrtc does not load: ${(error as Error).message.split("\n")[0]}`;
  }
}
