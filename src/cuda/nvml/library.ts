// Where libnvidia-ml lives and which symbols gpuffi binds, in the order of nvml.h. NVML ships
// with the driver (like libcuda), so it is present wherever a GPU is, and it sees every GPU of the
// machine whatever CUDA_VISIBLE_DEVICES says: its device indices are not CUDA ordinals.
import { type LibrarySpec, type StructType, defineStruct, defineSymbols } from "../../ffi/index.ts";

export const nvmlSpec: LibrarySpec = {
  name: "libnvidia-ml",
  sonames: ["libnvidia-ml.so.1", "libnvidia-ml.so"],
  envVar: "GPUFFI_NVML",
  hint: "install the NVIDIA driver (libnvidia-ml.so.1 ships with it), or set GPUFFI_NVML to the file or its directory.",
};

/**
 * The oldest driver branch gpuffi reads NVML from: r510 added nvmlDeviceGetMemoryInfo_v2 and
 * nvmlDeviceGetComputeRunningProcesses_v3. Both are optional in the table below so that an older
 * library is refused by the version check, with the driver to install, not by a missing symbol.
 */
export const nvmlMinimumDriverBranch = 510;

/** Buffer sizes from nvml.h (the _V2 ones where there are two). */
export const NvmlBufferSize = {
  /** NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE, NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE. */
  version: 80,
  /** NVML_DEVICE_NAME_V2_BUFFER_SIZE. */
  name: 96,
  /** NVML_DEVICE_UUID_V2_BUFFER_SIZE. */
  uuid: 96,
  /** Process names are paths: PATH_MAX is more than NVML ever fills. */
  processName: 1024,
} as const;

/** The text of a NUL-terminated char buffer NVML (or CUDA) filled. */
export function bufferText(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

// typedef struct nvmlPciInfo_st {
//     char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];   // 16
//     unsigned int domain;
//     unsigned int bus;
//     unsigned int device;
//     unsigned int pciDeviceId;       // combined 16-bit device id and 16-bit vendor id
//     unsigned int pciSubSystemId;
//     char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];             // 32, "%08X:%02X:%02X.0"
// } nvmlPciInfo_t;                                                // nvmlDeviceGetPciInfo_v3
const nvmlPciInfoFields = {
  busIdLegacy: { array: "u8", length: 16 },
  domain: "u32",
  bus: "u32",
  device: "u32",
  pciDeviceId: "u32",
  pciSubSystemId: "u32",
  busId: { array: "u8", length: 32 },
} as const;
export const nvmlPciInfo: StructType<typeof nvmlPciInfoFields> = defineStruct("nvmlPciInfo_t", nvmlPciInfoFields);

// typedef struct nvmlMemory_st {
//     unsigned long long total;   // bytes
//     unsigned long long free;
//     unsigned long long used;    // includes what the driver reserves
// } nvmlMemory_t;
const nvmlMemoryFields = { total: "u64", free: "u64", used: "u64" } as const;
export const nvmlMemory: StructType<typeof nvmlMemoryFields> = defineStruct("nvmlMemory_t", nvmlMemoryFields);

// typedef struct nvmlMemory_v2_st {
//     unsigned int version;       // nvmlMemory_v2 = NVML_STRUCT_VERSION(Memory, 2)
//     unsigned long long total;
//     unsigned long long reserved; // what the driver/firmware reserves
//     unsigned long long free;
//     unsigned long long used;    // allocated: total - reserved - free
// } nvmlMemory_v2_t;
const nvmlMemoryV2Fields = { version: "u32", total: "u64", reserved: "u64", free: "u64", used: "u64" } as const;
export const nvmlMemoryV2: StructType<typeof nvmlMemoryV2Fields> = defineStruct("nvmlMemory_v2_t", nvmlMemoryV2Fields);
/** #define NVML_STRUCT_VERSION(data, ver) (unsigned int)(sizeof(nvml ## data ## _v ## ver ## _t) | (ver << 24U)) */
export const nvmlMemoryV2Version: number = (nvmlMemoryV2.size | (2 << 24)) >>> 0;

// typedef struct nvmlUtilization_st {
//     unsigned int gpu;      // percent of the last sample period in which a kernel ran
//     unsigned int memory;   // percent of it in which device memory was read or written
// } nvmlUtilization_t;
const nvmlUtilizationFields = { gpu: "u32", memory: "u32" } as const;
export const nvmlUtilization: StructType<typeof nvmlUtilizationFields> = defineStruct("nvmlUtilization_t", nvmlUtilizationFields);

// typedef struct nvmlProcessInfo_st {       // == nvmlProcessInfo_v2_t
//     unsigned int pid;
//     unsigned long long usedGpuMemory;     // NVML_VALUE_NOT_AVAILABLE when it cannot be read
//     unsigned int gpuInstanceId;           // 0xFFFFFFFF outside MIG
//     unsigned int computeInstanceId;
// } nvmlProcessInfo_t;                      // what nvmlDeviceGetComputeRunningProcesses_v3 fills
const nvmlProcessInfoFields = { pid: "u32", usedGpuMemory: "u64", gpuInstanceId: "u32", computeInstanceId: "u32" } as const;
export const nvmlProcessInfo: StructType<typeof nvmlProcessInfoFields> = defineStruct("nvmlProcessInfo_t", nvmlProcessInfoFields);

// The r535 drivers of CUDA 12.2's first releases filled nvmlDeviceGetComputeRunningProcesses_v3's
// array with a 32-byte struct, one field longer, without a version bump; later ones moved the
// field to nvmlDeviceGetRunningProcessDetailList and went back to 24 bytes. Such a library exports
// nvmlDeviceGetConfComputeMemSizeInfo but not nvmlDeviceGetRunningProcessDetailList.
//     ...nvmlProcessInfo_st fields..., unsigned long long usedGpuCcProtectedMemory;
const nvmlProcessInfoR535Fields = { ...nvmlProcessInfoFields, usedGpuCcProtectedMemory: "u64" } as const;
export const nvmlProcessInfoR535: StructType<typeof nvmlProcessInfoR535Fields> = defineStruct("nvmlProcessInfo_r535_t", nvmlProcessInfoR535Fields);

/** NVML_VALUE_NOT_AVAILABLE as an unsigned long long. */
export const nvmlValueNotAvailable = 0xffff_ffff_ffff_ffffn;

/** nvmlClockType_t. */
export const NvmlClock = { graphics: 0, sm: 1, memory: 2, video: 3 } as const;
/** nvmlTemperatureSensors_t: NVML_TEMPERATURE_GPU, the die. */
export const nvmlTemperatureGpu = 0;
/** nvmlComputeMode_t, by value. */
export const nvmlComputeModes = ["default", "exclusiveThread", "prohibited", "exclusiveProcess"] as const;
export type NvmlComputeMode = (typeof nvmlComputeModes)[number];

const nvmlTable = {
  // nvmlReturn_t nvmlInit_v2(void);
  nvmlInit_v2: { parameters: [], result: "i32" },
  // nvmlReturn_t nvmlShutdown(void);
  nvmlShutdown: { parameters: [], result: "i32" },
  // const char* nvmlErrorString(nvmlReturn_t result);
  nvmlErrorString: { parameters: ["i32"], result: "cstring" },
  // nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length);
  nvmlSystemGetDriverVersion: { parameters: ["buffer", "u32"], result: "i32" },
  // nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length);
  nvmlSystemGetNVMLVersion: { parameters: ["buffer", "u32"], result: "i32" },
  // nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion);
  nvmlSystemGetCudaDriverVersion_v2: { parameters: ["buffer"], result: "i32" },
  // nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length);
  nvmlSystemGetProcessName: { parameters: ["u32", "buffer", "u32"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount);
  nvmlDeviceGetCount_v2: { parameters: ["buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device);
  nvmlDeviceGetHandleByIndex_v2: { parameters: ["u32", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length);
  nvmlDeviceGetName: { parameters: ["ptr", "buffer", "u32"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length);
  nvmlDeviceGetUUID: { parameters: ["ptr", "buffer", "u32"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci);
  nvmlDeviceGetPciInfo_v3: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *currLinkGen);
  nvmlDeviceGetCurrPcieLinkGeneration: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *currLinkWidth);
  nvmlDeviceGetCurrPcieLinkWidth: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock);
  nvmlDeviceGetClockInfo: { parameters: ["ptr", "i32", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType, unsigned int *temp);
  nvmlDeviceGetTemperature: { parameters: ["ptr", "i32", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power);          — milliwatts
  nvmlDeviceGetPowerUsage: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit);  — milliwatts
  nvmlDeviceGetEnforcedPowerLimit: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory);
  nvmlDeviceGetMemoryInfo: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory);   — r510+
  nvmlDeviceGetMemoryInfo_v2: { parameters: ["ptr", "buffer"], result: "i32", optional: true },
  // nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, nvmlComputeMode_t *mode);
  nvmlDeviceGetComputeMode: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending);
  nvmlDeviceGetEccMode: { parameters: ["ptr", "buffer", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization);
  nvmlDeviceGetUtilizationRates: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_t *infos);  — r510+
  nvmlDeviceGetComputeRunningProcesses_v3: { parameters: ["ptr", "buffer", "buffer"], result: "i32", optional: true },
  // nvmlReturn_t nvmlDeviceGetRunningProcessDetailList(nvmlDevice_t device, nvmlProcessDetailList_t *plist);  — bound only to tell the process struct's size
  nvmlDeviceGetRunningProcessDetailList: { parameters: ["ptr", "buffer"], result: "i32", optional: true },
  // nvmlReturn_t nvmlDeviceGetConfComputeMemSizeInfo(nvmlDevice_t device, nvmlConfComputeMemSizeInfo_t *memInfo);  — likewise
  nvmlDeviceGetConfComputeMemSizeInfo: { parameters: ["ptr", "buffer"], result: "i32", optional: true },
} as const;
export const nvmlSymbols: typeof nvmlTable = defineSymbols(nvmlTable);
