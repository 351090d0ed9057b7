import { llamaUnavailable } from "./fixtures.ts";
import { registerLoraNumerics } from "./numerics.ts";

registerLoraNumerics("LoRA on CPU", 0, llamaUnavailable);
