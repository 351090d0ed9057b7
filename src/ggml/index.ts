// gpuffi's ggml layer: the libggml-base / libggml binding under llama.cpp (versions, the backend
// registry and its devices, CPU threadpools, the RPC backend's table). Loaded by src/llama.
export {
  ggmlSonames,
  ggmlBaseSonames,
  ggmlBaseSymbols,
  ggmlSymbols,
  deviceTypes,
  ggmlThreadpoolParams,
  SchedPriority,
  ggmlCpuSymbols,
  rpcProtocol,
  rpcMaxServers,
  rpcSymbols,
  rpcSonames,
} from "./bindings.ts";
