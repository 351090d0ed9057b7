// Several GPUs and several machines: NCCL collectives, the TCP rendezvous that bootstraps them, and peer access.
export { NcclCommunicator, type CommunicatorOptions, type InitRankOptions, type ConnectOptions, type CollectiveOptions, type ReduceOptions, type RootOptions, type SynchronizedOptions } from "./nccl.ts";
export { Nccl, type NcclApi, type NcclSymbols, type NcclUniqueId, nccl, loadNccl, disableNvlinkMulticast } from "./nccl-runtime.ts";
export { NcclError, NcclResult, ncclResultName } from "./nccl-errors.ts";
export { NcclDataType, NcclReduceOp, type NcclDataTypeName, type NcclReduceOpName, type NcclVersion, decodeNcclVersion, formatNcclVersion } from "./nccl-types.ts";
export { ncclSpec, ncclSymbols, ncclUniqueIdBytes } from "./nccl-library.ts";
export { RendezvousServer, RendezvousError, type RendezvousFailure, type RendezvousOptions, type ServeOptions, fetchUniqueId, rendezvous, rendezvousVersion } from "./rendezvous.ts";
export { type PeerDevice, type PeerCopyOptions, type PeerTopology, canAccessPeer, enablePeerAccess, disablePeerAccess, copyPeer, peerTopology, formatPeerTopology } from "./peer.ts";
