// Your own CUDA kernels: NVRTC compiles CUDA C++ (cached in memory and on disk), the driver API
// loads it into a device and launches it on gpuffi's memory, streams and graphs.
export { nvrtcSpec, nvrtcSymbols, NvrtcStatus } from "./nvrtc-library.ts";
export { type NvrtcApi, type NvrtcSymbols, type CompileOptions, NvrtcError, NvrtcCompileError, compile, loadNvrtc, nvrtcVersion, supportedArchitectures, toolkitIncludeDirs } from "./nvrtc.ts";
export { type CompiledProgram, clearMemoryCache, defaultCacheDir } from "./cache.ts";
export { kernelArgTypes, type KernelArgType, type KernelArgValue, type DevicePointerArg, type PitchedArg } from "./arguments.ts";
export { KernelModule, Kernel, type KernelArgs, type KernelDriverApi, type ModuleOptions, type LaunchConfig, type Dim3, kernelDriver } from "./module.ts";
export { ElementwiseKernel, elementwise, elementwiseSource, type ElementwiseArgs, type ElementwiseArray, type ElementwiseElement, type ElementwiseParam, type ElementwiseRunOptions } from "./elementwise.ts";
