// libcuda, the driver API, for the two device facts the runtime API only returns inside
// struct cudaDeviceProp (whose layout changes between CUDA versions): the name and the UUID.
// The driver library comes with the NVIDIA driver itself, so it is present wherever a GPU is.
import { type LibrarySpec, defineSymbols } from "../ffi/index.ts";

export const libcudaSpec: LibrarySpec = {
  name: "libcuda",
  sonames: ["libcuda.so.1"],
  envVar: "GPUFFI_LIBCUDA",
  hint: "install the NVIDIA driver (libcuda.so.1 ships with it), or set GPUFFI_LIBCUDA to the file or its directory.",
};

export const libcudaSymbols = defineSymbols({
  // CUresult cuGetErrorString(CUresult error, const char **pStr);
  cuGetErrorString: { parameters: ["i32", "buffer"], result: "i32" },
  // CUresult cuGetErrorName(CUresult error, const char **pStr);
  cuGetErrorName: { parameters: ["i32", "buffer"], result: "i32" },
  // CUresult cuInit(unsigned int Flags);
  cuInit: { parameters: ["u32"], result: "i32" },
  // CUresult cuDeviceGet(CUdevice *device, int ordinal);
  cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
  // CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
  cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev);
  cuDeviceGetUuid_v2: { parameters: ["buffer", "i32"], result: "i32" },
  // CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev);
  cuDeviceTotalMem_v2: { parameters: ["buffer", "i32"], result: "i32" },
});
