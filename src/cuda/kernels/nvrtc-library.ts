// Where libnvrtc lives and which symbols gpuffi binds, in the order of nvrtc.h (CUDA 13.0; the
// same declarations in 12.x). NVRTC compiles CUDA C++ to PTX or CUBIN in-process: no compiler
// toolchain, no GPU needed for the compile itself.
import { type LibrarySpec, defineSymbols } from "../../ffi/index.ts";
import { cudaToolkitDirs } from "../cudart-library.ts";

export const nvrtcSpec: LibrarySpec = {
  name: "libnvrtc",
  sonames: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
  envVar: "GPUFFI_NVRTC",
  searchDirs: cudaToolkitDirs,
  hint:
    "install NVRTC (the CUDA Toolkit, the nvidia-cuda-nvrtc pip wheel for CUDA 13 or nvidia-cuda-nvrtc-cu12, or conda's cuda-nvrtc), " +
    "or set GPUFFI_NVRTC to the libnvrtc.so file or its directory.",
};

/** nvrtcResult values (nvrtc.h). */
export const NvrtcStatus = {
  success: 0,
  outOfMemory: 1,
  programCreationFailure: 2,
  invalidInput: 3,
  invalidProgram: 4,
  invalidOption: 5,
  compilation: 6,
  builtinOperationFailure: 7,
  noNameExpressionsAfterCompilation: 8,
  noLoweredNamesBeforeCompilation: 9,
  nameExpressionNotValid: 10,
  internalError: 11,
} as const;

const nvrtcTable = {
  // const char *nvrtcGetErrorString(nvrtcResult result);
  nvrtcGetErrorString: { parameters: ["i32"], result: "cstring" },
  // nvrtcResult nvrtcVersion(int *major, int *minor);
  nvrtcVersion: { parameters: ["buffer", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetNumSupportedArchs(int* numArchs);
  nvrtcGetNumSupportedArchs: { parameters: ["buffer"], result: "i32" },
  // nvrtcResult nvrtcGetSupportedArchs(int* supportedArchs);
  nvrtcGetSupportedArchs: { parameters: ["buffer"], result: "i32" },
  // nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name, int numHeaders, const char * const *headers, const char * const *includeNames);
  nvrtcCreateProgram: { parameters: ["buffer", "cstring", "cstring", "i32", "ptr", "ptr"], result: "i32" },
  // nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog);
  nvrtcDestroyProgram: { parameters: ["buffer"], result: "i32" },
  // nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options);
  nvrtcCompileProgram: { parameters: ["ptr", "i32", "ptr"], result: "i32" },
  // nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *ptxSizeRet);
  nvrtcGetPTXSize: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx);
  nvrtcGetPTX: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetCUBINSize(nvrtcProgram prog, size_t *cubinSizeRet);
  nvrtcGetCUBINSize: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetCUBIN(nvrtcProgram prog, char *cubin);
  nvrtcGetCUBIN: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *logSizeRet);
  nvrtcGetProgramLogSize: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log);
  nvrtcGetProgramLog: { parameters: ["ptr", "buffer"], result: "i32" },
  // nvrtcResult nvrtcAddNameExpression(nvrtcProgram prog, const char * const name_expression);
  nvrtcAddNameExpression: { parameters: ["ptr", "cstring"], result: "i32" },
  // nvrtcResult nvrtcGetLoweredName(nvrtcProgram prog, const char *const name_expression, const char** lowered_name);
  nvrtcGetLoweredName: { parameters: ["ptr", "cstring", "buffer"], result: "i32" },
} as const;
export const nvrtcSymbols: typeof nvrtcTable = defineSymbols(nvrtcTable);
