// gpuffi's LoRA layer: the adapter lifecycle on top of src/llama and src/cuda: PEFT → GGUF
// conversion and merging adapters into a base model (on the CPU or with cuBLAS).
export * from "./convert/index.ts";
export {
  type DequantizeTarget,
  type DequantizedTensor,
  type MergeAdapter,
  type MergeOptions,
  type MergeResult,
  type MergeDevice,
  type MergeTerm,
  cpuMergeDevice,
  mergeLoraFiles,
  mergeLoraSpecs,
} from "./merge.ts";
export { CudaMergeDevice } from "./merge-cuda.ts";
export { type ExportPeftOptions, type ExportPeftResult, exportPeftAdapter, loraWeightsToPeft } from "./export-peft.ts";
export { type PeftAdapterOptions, loadPeftAdapter } from "./peft-adapter.ts";
export { type LoraPair, type LoraWeights, checkLoraWeights, encodeLoraGguf, loraTargetOf, readLoraGguf } from "./train/lora-weights.ts";
export {
  CHECKPOINT_ADAPTER_FILE,
  CHECKPOINT_OPTIMIZER_FILE,
  type OptimizerMoments,
  type TrainingState,
  baseIdentity,
  canonicalJson,
  checkResumable,
  readCheckpoint,
  writeCheckpoint,
} from "./train/checkpoint.ts";
export { CheckpointError, ResumeMismatchError, TrainingError } from "./train/errors.ts";
export { BatchOrder, Dataset, type DataFormat, type DatasetOptions, type Tokenizer, type TrainingSequence, modelTokenizer } from "./train/dataset.ts";
export { TrainingDataError } from "./train/errors.ts";
export { LoraTrainer, type TrainerOptions, type StepReport } from "./train/trainer.ts";
export { type TrainingOptions, type Schedule, learningRate } from "./train/options.ts";
export { ArchitectureError, type LlamaShape, type Target, allTargets, llamaShape } from "./train/architecture.ts";
export { type GradientReducer, NcclGradientReducer, shardOf } from "./train/data-parallel.ts";
export { TcpGradientReducer, type TcpReducerOptions } from "./train/tcp-reducer.ts";
export { type DataParallelOptions, type DataParallelResult, DataParallelRun, type DataParallelStepReport, type RankStepReport, trainDataParallel } from "./train/launcher.ts";
export { type RankExit, RankFailedError } from "./train/errors.ts";
