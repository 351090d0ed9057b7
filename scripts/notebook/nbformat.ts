// The parts of nbformat 4 (https://nbformat.readthedocs.io/en/latest/format_description.html)
// the runner reads and writes. Files are written as nbformat's Python writer writes them: keys
// sorted, one-space indent, non-ASCII as is, multi-line text as a list of lines (each keeping its
// "\n"), JSON MIME types as JSON, so that saving the notebook in Jupyter afterwards changes nothing.

export type MultilineString = string | string[];

export interface StreamOutput {
  output_type: "stream";
  name: "stdout" | "stderr";
  text: MultilineString;
}

export interface DataOutput {
  output_type: "display_data" | "execute_result";
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  execution_count?: number | null;
}

export interface ErrorOutput {
  output_type: "error";
  ename: string;
  evalue: string;
  traceback: string[];
}

export type Output = StreamOutput | DataOutput | ErrorOutput;

export interface Cell {
  cell_type: "code" | "markdown" | "raw";
  id?: string;
  source: MultilineString;
  metadata: Record<string, unknown>;
  outputs?: Output[];
  execution_count?: number | null;
  attachments?: unknown;
}

export interface Notebook {
  nbformat: number;
  nbformat_minor: number;
  metadata: Record<string, unknown>;
  cells: Cell[];
}

export function joinLines(text: MultilineString): string {
  return Array.isArray(text) ? text.join("") : text;
}

/** Python's `str.splitlines(keepends=True)` for "\n"-separated text, as nbformat stores text. */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/** nbformat's rule: application/json and application/*+json hold JSON; every other type is text. */
export function isJsonMime(mime: string): boolean {
  return mime === "application/json" || (mime.startsWith("application/") && mime.endsWith("+json"));
}

export function readNotebook(text: string, path: string): Notebook {
  const notebook = JSON.parse(text) as Notebook;
  if (notebook.nbformat !== 4 || !Array.isArray(notebook.cells)) throw new Error(`${path}: not an nbformat 4 notebook (nbformat ${String(notebook.nbformat)})`);
  return notebook;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]));
}

function splitData(data: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(data).map(([mime, value]) => [mime, typeof value === "string" && !isJsonMime(mime) ? splitLines(value) : value]));
}

function storedOutput(output: Output): Output {
  if (output.output_type === "stream") return { ...output, text: splitLines(joinLines(output.text)) };
  if (output.output_type === "error") return output;
  return { ...output, data: splitData(output.data) };
}

export function writeNotebookText(notebook: Notebook): string {
  const cells = notebook.cells.map((cell) => ({
    ...cell,
    source: splitLines(joinLines(cell.source)),
    ...(cell.outputs === undefined ? {} : { outputs: cell.outputs.map(storedOutput) }),
  }));
  return `${JSON.stringify(sortKeys({ ...notebook, cells }), null, 1)}\n`;
}
