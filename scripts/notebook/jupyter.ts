// `Deno.jupyter` outside the kernel: the same functions with the same semantics as Deno's own
// (cli/js/40_jupyter.js in Deno 2.x), but `broadcast` hands each message to the runner instead
// of a Jupyter frontend. `format` is the kernel's rule for showing a value: an object's
// `Symbol.for("Jupyter.display")` method, Vega-like objects (`toSpec`), data frames, PNG/JPEG
// bytes, elements with `outerHTML`, and otherwise Deno's inspect of `%o` (colored unless
// `Deno.noColor`). `display(obj, { raw: true })` takes a plain object as a MIME bundle as it is;
// without `raw` (the kernel's default) it formats the object like any other value.
import { Buffer } from "node:buffer";

/** A MIME bundle: MIME type → text, or a JSON value for JSON types. */
export type MediaBundle = Record<string, unknown>;

export interface DisplayOptions {
  raw?: boolean;
  update?: boolean;
  display_id?: string;
}

/** What the kernel would publish on IOPub: `display_data`, `update_display_data`, `execute_result`, `stream`, `error`, `clear_output`. */
export type Broadcast = (messageType: string, content: Record<string, unknown>, extra?: { metadata?: Record<string, unknown>; buffers?: Uint8Array[] }) => void | Promise<void>;

export const $display = Symbol.for("Jupyter.display");

type Internal = { inspectArgs?: (args: unknown[], options: { colors: boolean }) => string };

function internals(): Internal {
  const deno = Deno as unknown as { internal: symbol } & Record<symbol, Internal | undefined>;
  return deno[deno.internal] ?? {};
}

/** Deno's `inspectArgs(["%o", value])`, as the kernel shows a value; `Deno.inspect` where it is not there. */
export function inspectValue(value: unknown): string {
  const colors = !Deno.noColor;
  const inspectArgs = internals().inspectArgs;
  return inspectArgs ? inspectArgs(["%o", value], { colors }) : Deno.inspect(value, { colors, depth: 4, showProxy: true });
}

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => entities[c]!);
}

function isObject(value: unknown): value is Record<PropertyKey, unknown> {
  return value !== null && typeof value === "object";
}

function startsWith(bytes: unknown, signature: number[]): bytes is Uint8Array {
  return bytes instanceof Uint8Array && bytes.length >= signature.length && signature.every((b, i) => bytes[i] === b);
}

const isPng = (value: unknown): value is Uint8Array => startsWith(value, [137, 80, 78, 71, 13, 10, 26, 10]);
const isJpeg = (value: unknown): value is Uint8Array => startsWith(value, [0xff, 0xd8]) && value.at(-2) === 0xff && value.at(-1) === 0xd9;

const base64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");

function vegaBundle(spec: Record<string, unknown>): MediaBundle | null {
  if (!isObject(spec) || !("$schema" in spec)) return null;
  const mime = spec.$schema === "https://vega.github.io/schema/vega-lite/v4.json"
    ? "application/vnd.vegalite.v4+json"
    : spec.$schema === "https://vega.github.io/schema/vega-lite/v5.json"
    ? "application/vnd.vegalite.v5+json"
    : "application/vnd.vega.v5+json";
  return { [mime]: spec };
}

type DataFrameLike = { schema: Record<string, { toJSON(): Record<string, string> }>; head(n: number): { toRecords(): Record<string, unknown>[] } };

function dataFrameBundle(df: DataFrameLike): MediaBundle {
  const jsonTypes: Record<string, string> = {
    Null: "null", Bool: "boolean", Int8: "integer", Int16: "integer", Int32: "integer", Int64: "integer", UInt8: "integer",
    UInt16: "integer", UInt32: "integer", UInt64: "integer", Float32: "number", Float64: "number", Date: "string",
    Datetime: "string", Utf8: "string", Categorical: "string", List: "array", Struct: "object",
  };
  const fields = Object.entries(df.schema).map(([name, type]) => ({ name, type: jsonTypes[type.toJSON()["DataType"] ?? ""] ?? "string" }));
  const head = (n: number) => df.head(n).toRecords();
  const rows = head(10).map((row) => `<tr>${fields.map((f) => `<td>${escapeHtml(String(row[f.name]))}</td>`).join("")}</tr>`).join("");
  return {
    "application/vnd.dataresource+json": { data: head(50), schema: { fields } },
    "text/html": `<table><thead><tr>${fields.map((f) => `<th>${escapeHtml(f.name)}</th>`).join("")}</tr></thead><tbody>${rows}</tbody></table>`,
  };
}

/** The kernel's MIME bundle for a value. */
export async function format(value: unknown): Promise<MediaBundle> {
  if (isObject(value) && typeof value[$display] === "function") return await (value[$display] as () => MediaBundle | Promise<MediaBundle>)();
  if (!isObject(value)) return { "text/plain": inspectValue(value) };
  if ("toDataURL" in value && typeof value.toDataURL === "function") {
    const [head, data] = String(value.toDataURL()).split(",");
    return { [head!.split(":")[1]!.split(";")[0]!]: data };
  }
  if ("toSpec" in value && typeof value.toSpec === "function") return vegaBundle(value.toSpec() as Record<string, unknown>) as MediaBundle;
  if (isObject(value.schema) && typeof value.head === "function" && typeof value.toRecords === "function") return dataFrameBundle(value as unknown as DataFrameLike);
  if (isJpeg(value)) return { "image/jpeg": base64(value) };
  if (isPng(value)) return { "image/png": base64(value) };
  if (typeof value.outerHTML === "string") {
    return value.outerHTML.startsWith("<svg") ? { "image/svg+xml": value.outerHTML } : { "text/html": value.outerHTML };
  }
  return { "text/plain": inspectValue(value) };
}

function isMediaBundle(value: unknown): value is MediaBundle {
  return isObject(value) && !Array.isArray(value);
}

/** What `display` publishes for a value: the bundle itself when raw, else its format. */
export async function formatInner(value: unknown, raw: boolean | undefined): Promise<MediaBundle> {
  return raw && isMediaBundle(value) ? value : await format(value);
}

const displayable = (bundle: MediaBundle) => ({ [$display]: () => bundle });

function taggedTemplate(mime: string) {
  return (strings: TemplateStringsArray, ...values: unknown[]) =>
    displayable({ [mime]: strings.reduce((text, s, i) => text + s + (values[i] !== undefined ? values[i] : ""), "") });
}

/** The `Deno.jupyter` namespace, publishing through `broadcast`. */
export function jupyterNamespace(broadcast: Broadcast) {
  return {
    $display,
    format,
    md: taggedTemplate("text/markdown"),
    html: taggedTemplate("text/html"),
    svg: taggedTemplate("image/svg+xml"),
    image(source: string | Uint8Array) {
      let bytes: unknown = source;
      if (typeof source === "string") {
        try {
          bytes = Deno.readFileSync(source);
        } catch {
          // as the kernel: a path that cannot be read is reported as "not a valid image" below
        }
      }
      if (isJpeg(bytes)) return displayable({ "image/jpeg": base64(bytes) });
      if (isPng(bytes)) return displayable({ "image/png": base64(bytes) });
      throw new TypeError("Object is not a valid image or a path to an image. `Deno.jupyter.image` supports displaying JPG or PNG images.");
    },
    async broadcast(messageType: string, content: Record<string, unknown>, extra: { metadata?: Record<string, unknown>; buffers?: Uint8Array[] } = {}) {
      await broadcast(messageType, content, extra);
    },
    async display(value: unknown, options: DisplayOptions = { raw: false, update: false }) {
      const data = await formatInner(value, options.raw);
      await broadcast(options.update ? "update_display_data" : "display_data", {
        data,
        metadata: {},
        transient: options.display_id === undefined ? {} : { display_id: options.display_id },
      });
    },
  };
}
