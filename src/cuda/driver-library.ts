// libcuda, the driver API, for what the runtime API lacks: the device name and UUID (the runtime
// only returns them inside struct cudaDeviceProp, whose layout changes between CUDA versions) and
// virtual memory management, which the pools' expandable segments map memory with; and modules
// and launches for the kernels gpuffi compiles with NVRTC (kernels/). The driver
// library comes with the NVIDIA driver itself, so it is present wherever a GPU is.
import { type LibrarySpec, defineStruct, defineSymbols } from "../ffi/index.ts";

export const libcudaSpec: LibrarySpec = {
  name: "libcuda",
  sonames: ["libcuda.so.1"],
  envVar: "GPUFFI_LIBCUDA",
  hint: "install the NVIDIA driver (libcuda.so.1 ships with it), or set GPUFFI_LIBCUDA to the file or its directory.",
};

// typedef struct CUmemLocation_st { CUmemLocationType type; int id; } CUmemLocation;
export const cuMemLocation = defineStruct("CUmemLocation", { type: "i32", id: "i32" });

// typedef struct CUmemAllocationProp_st { CUmemAllocationType type; CUmemAllocationHandleType
// requestedHandleTypes; CUmemLocation location; void *win32HandleMetaData; struct { unsigned char
// compressionType; unsigned char gpuDirectRDMACapable; unsigned short usage; unsigned char
// reserved[4]; } allocFlags; } CUmemAllocationProp;
export const cuMemAllocationProp = defineStruct("CUmemAllocationProp", {
  type: "i32",
  requestedHandleTypes: "i32",
  location: cuMemLocation,
  win32HandleMetaData: "ptr",
  allocFlags: defineStruct("CUmemAllocationProp.allocFlags", { compressionType: "u8", gpuDirectRDMACapable: "u8", usage: "u16", reserved: { array: "u8", length: 4 } }),
});

// typedef struct CUmemAccessDesc_st { CUmemLocation location; CUmemAccess_flags flags; } CUmemAccessDesc;
export const cuMemAccessDesc = defineStruct("CUmemAccessDesc", { location: cuMemLocation, flags: "i32" });

/** The enum values the pools use. */
export const CuMem = {
  /** CUresult CUDA_ERROR_OUT_OF_MEMORY. */
  errorOutOfMemory: 2,
  /** CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED. */
  attributeVmmSupported: 102,
  /** CU_MEM_ALLOCATION_TYPE_PINNED: the only type cuMemCreate takes. */
  allocationPinned: 1,
  /** CU_MEM_LOCATION_TYPE_DEVICE. */
  locationDevice: 1,
  /** CU_MEM_ACCESS_FLAGS_PROT_READWRITE. */
  accessReadWrite: 3,
  /** CU_MEM_ALLOC_GRANULARITY_MINIMUM. */
  granularityMinimum: 0,
} as const;

const libcudaTable = {
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
  // CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev);
  cuDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // CUresult cuCtxGetCurrent(CUcontext *pctx);
  cuCtxGetCurrent: { parameters: ["buffer"], result: "i32" },
  // CUresult cuModuleLoadData(CUmodule *module, const void *image);
  cuModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  // CUresult cuModuleUnload(CUmodule hmod);
  cuModuleUnload: { parameters: ["ptr"], result: "i32" },
  // CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name);
  cuModuleGetFunction: { parameters: ["buffer", "ptr", "cstring"], result: "i32" },
  // CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr, unsigned long long flags);
  cuMemAddressReserve: { parameters: ["buffer", "usize", "usize", "ptr", "u64"], result: "i32" },
  // CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size);
  cuMemAddressFree: { parameters: ["ptr", "usize"], result: "i32" },
  // CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop, unsigned long long flags);
  cuMemCreate: { parameters: ["buffer", "usize", "buffer", "u64"], result: "i32" },
  // CUresult cuMemRelease(CUmemGenericAllocationHandle handle);
  cuMemRelease: { parameters: ["u64"], result: "i32" },
  // CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle, unsigned long long flags);
  cuMemMap: { parameters: ["ptr", "usize", "usize", "u64", "u64"], result: "i32" },
  // CUresult cuMemUnmap(CUdeviceptr ptr, size_t size);
  cuMemUnmap: { parameters: ["ptr", "usize"], result: "i32" },
  // CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count);
  cuMemSetAccess: { parameters: ["ptr", "usize", "buffer", "usize"], result: "i32" },
  // CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, CUmemAllocationGranularity_flags option);
  cuMemGetAllocationGranularity: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  // CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc);
  cuFuncGetAttribute: { parameters: ["buffer", "i32", "ptr"], result: "i32" },
  // CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value);
  cuFuncSetAttribute: { parameters: ["ptr", "i32", "i32"], result: "i32" },
  // CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra);
  // kernelParams is a `ptr`: the argument block lives in C heap memory, so a launch passes only numbers.
  cuLaunchKernel: { parameters: ["ptr", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "ptr", "ptr", "ptr"], result: "i32" },
} as const;
export const libcudaSymbols: typeof libcudaTable = defineSymbols(libcudaTable);
