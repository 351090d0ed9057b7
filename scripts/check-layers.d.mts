// Types of scripts/check-layers.mjs, for the tests that import it.
export declare const layers: Readonly<Record<"ffi" | "formats" | "cuda" | "ggml" | "llama" | "lora" | "cli", number>>;
export interface LayerViolation {
  readonly file: string;
  readonly line: number;
  readonly specifier: string;
  readonly message: string;
}
export declare function importsOf(text: string): { specifier: string; line: number }[];
export declare function checkLayers(root: string): LayerViolation[];
