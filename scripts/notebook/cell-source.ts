// A notebook cell's TypeScript as Deno's Jupyter kernel sees it: static imports become dynamic
// ones (a cell is evaluated as a script, where `import … from` is a syntax error), type-only
// imports vanish, relative specifiers resolve against the notebook's directory (the kernel's
// working directory), and `export` before a declaration is dropped. The kernel does this on swc's
// AST; here a small scanner finds the import declarations at the top level of the cell (outside
// strings, comments, templates, regular expressions and brackets) and rewrites them in place,
// keeping every other character and the line count, so that a line number in an error is the
// line in the cell. Pure string work, no runtime API: the runner (scripts/run-notebook.ts) strips
// the types afterwards.

/** A declaration the rewriter understood, for tests and messages. */
export interface CellImport {
  /** The specifier as written in the cell. */
  readonly specifier: string;
  /** The statement that replaced it (empty for `import type`). */
  readonly replacement: string;
}

export interface RewrittenCell {
  readonly code: string;
  readonly imports: readonly CellImport[];
}

interface Token {
  readonly kind: "ident" | "string" | "punct" | "end";
  readonly value: string;
  readonly start: number;
  readonly end: number;
}

const identStart = /[A-Za-z_$\u0080-\uffff]/;
const identPart = /[\w$\u0080-\uffff]/;
// After these a `/` starts a regular expression; after an identifier, a number, `)` or `]` it divides.
const regexAfterPunct = new Set("([{,;:=!&|?+-*%<>~^}".split(""));
// Declarations whose `export` keyword a cell may carry (other export forms are left to fail).
const exportable = new Set(["const", "let", "var", "function", "class", "async", "enum", "interface", "type", "abstract", "declare", "namespace"]);
const regexAfterWord = new Set(["return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await"]);

/** Index just past the string literal that starts at `i` (a quote). */
function skipString(text: string, i: number): number {
  const quote = text[i];
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === quote || text[j] === "\n") return j + 1;
  }
  return text.length;
}

/** Index just past the comment at `i`, or `i` when none starts there. */
function skipComment(text: string, i: number): number {
  if (text[i] !== "/") return i;
  if (text[i + 1] === "/") {
    const end = text.indexOf("\n", i);
    return end < 0 ? text.length : end;
  }
  if (text[i + 1] === "*") {
    const end = text.indexOf("*/", i + 2);
    return end < 0 ? text.length : end + 2;
  }
  return i;
}

function skipSpace(text: string, i: number): number {
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    const after = skipComment(text, i);
    if (after === i) return i;
    i = after;
  }
}

/** Index just past the regular expression literal at `i` (its opening slash). */
function skipRegex(text: string, i: number): number {
  let inClass = false;
  for (let j = i + 1; j < text.length; j++) {
    const c = text[j];
    if (c === "\\") j++;
    else if (c === "\n") return j;
    else if (inClass) inClass = c !== "]";
    else if (c === "[") inClass = true;
    else if (c === "/") {
      j++;
      while (j < text.length && identPart.test(text[j]!)) j++;
      return j;
    }
  }
  return text.length;
}

/** The next token from `i`, for reading an import declaration (identifiers, strings, punctuation). */
function tokenAt(text: string, i: number): Token {
  const start = skipSpace(text, i);
  if (start >= text.length) return { kind: "end", value: "", start, end: start };
  const c = text[start]!;
  if (c === '"' || c === "'") {
    const end = skipString(text, start);
    return { kind: "string", value: text.slice(start, end), start, end };
  }
  if (identStart.test(c)) {
    let end = start + 1;
    while (end < text.length && identPart.test(text[end]!)) end++;
    return { kind: "ident", value: text.slice(start, end), start, end };
  }
  return { kind: "punct", value: c, start, end: start + 1 };
}

/** The value of a string literal token (its quotes and escapes resolved). */
function stringValue(literal: string): string {
  if (literal.startsWith('"')) return JSON.parse(literal) as string;
  return JSON.parse(`"${literal.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string;
}

interface Parsed {
  readonly end: number;
  readonly specifier: string;
  /** Where the specifier's string literal is. */
  readonly literal: readonly [number, number];
  readonly typeOnly: boolean;
  readonly defaultName?: string;
  readonly namespace?: string;
  /** [imported, local]; imported is an identifier or a string literal. */
  readonly named: readonly (readonly [string, string])[];
  /** `with { … }` as written, or undefined. */
  readonly attributes?: string;
}

/**
 * Reads the import declaration whose `import` keyword ends at `i`. Returns undefined for what is
 * not a declaration this rewriter handles (`import x = require(…)`, malformed text): it is left
 * as written, and the evaluation reports it.
 */
function parseImport(text: string, i: number): Parsed | undefined {
  let t = tokenAt(text, i);
  let typeOnly = false;
  let defaultName: string | undefined;
  let namespace: string | undefined;
  const named: [string, string][] = [];
  if (t.kind !== "string") {
    if (t.kind === "ident" && t.value === "type") {
      const after = tokenAt(text, t.end);
      // `import type from "m"` and `import type, { a } from "m"` import a default named `type`.
      const defaultNamedType = (after.kind === "ident" && after.value === "from" && tokenAt(text, after.end).kind === "string") || after.value === ",";
      if (!defaultNamedType) {
        typeOnly = true;
        t = after;
      }
    }
    if (t.kind === "ident") {
      defaultName = t.value;
      t = tokenAt(text, t.end);
      if (t.value === "=") return undefined;
      if (t.value === ",") t = tokenAt(text, t.end);
    }
    if (t.value === "*") {
      const as = tokenAt(text, t.end);
      const name = tokenAt(text, as.end);
      if (as.value !== "as" || name.kind !== "ident") return undefined;
      namespace = name.value;
      t = tokenAt(text, name.end);
    } else if (t.value === "{") {
      t = tokenAt(text, t.end);
      while (t.value !== "}") {
        let specifierTypeOnly = false;
        if (t.kind === "ident" && t.value === "type") {
          const after = tokenAt(text, t.end);
          if (after.kind === "ident" || after.kind === "string") {
            // `{ type as }` imports `type` renamed… to `as`; `{ type as as x }` is type-only.
            const third = tokenAt(text, after.end);
            if (!(after.value === "as" && (third.value === "," || third.value === "}"))) {
              specifierTypeOnly = true;
              t = after;
            }
          }
        }
        if (t.kind !== "ident" && t.kind !== "string") return undefined;
        const imported = t.value;
        let local = t.kind === "ident" ? t.value : "";
        t = tokenAt(text, t.end);
        if (t.kind === "ident" && t.value === "as") {
          const name = tokenAt(text, t.end);
          if (name.kind !== "ident") return undefined;
          local = name.value;
          t = tokenAt(text, name.end);
        }
        if (local === "") return undefined;
        if (!specifierTypeOnly) named.push([imported, local]);
        if (t.value === ",") t = tokenAt(text, t.end);
        else if (t.value !== "}") return undefined;
      }
      t = tokenAt(text, t.end);
    } else if (defaultName === undefined) {
      return undefined;
    }
    if (!(t.kind === "ident" && t.value === "from")) return undefined;
    t = tokenAt(text, t.end);
    if (t.kind !== "string") return undefined;
  }
  const specifier = stringValue(t.value);
  const literal = [t.start, t.end] as const;
  let end = t.end;
  let attributes: string | undefined;
  const next = tokenAt(text, end);
  if (next.kind === "ident" && (next.value === "with" || next.value === "assert") && tokenAt(text, next.end).value === "{") {
    const open = tokenAt(text, next.end);
    let j = open.end;
    while (j < text.length && text[j] !== "}") j = text[j] === '"' || text[j] === "'" ? skipString(text, j) : j + 1;
    attributes = text.slice(open.start, j + 1);
    end = j + 1;
  }
  const semicolon = tokenAt(text, end);
  if (semicolon.value === ";") end = semicolon.end;
  return { end, specifier, literal, typeOnly, defaultName, namespace, named, attributes };
}

function replacementOf(p: Parsed, resolve: (specifier: string) => string): string {
  if (p.typeOnly) return "";
  const load = `await import(${JSON.stringify(resolve(p.specifier))}${p.attributes === undefined ? "" : `, { with: ${p.attributes} }`})`;
  const bindings = [
    ...(p.defaultName === undefined ? [] : [`default: ${p.defaultName}`]),
    ...p.named.map(([imported, local]) => (imported === local ? local : `${imported}: ${local}`)),
  ];
  if (p.namespace !== undefined) {
    return `const ${p.namespace} = ${load};${bindings.length === 0 ? "" : ` const { ${bindings.join(", ")} } = ${p.namespace};`}`;
  }
  if (bindings.length === 0) return `${load};`;
  return `const { ${bindings.join(", ")} } = ${load};`;
}

/**
 * Rewrites the top-level import declarations of a cell into `const { … } = await import(…)`
 * statements (a type-only import into nothing), each on the line where its declaration started,
 * followed by as many line breaks as the declaration spanned, and blanks the `export` keyword of
 * top-level declarations. `resolve` maps each specifier. With `keepStatic` (for type-checking the
 * cells as one module) the declarations stay as they are, with only their specifiers resolved.
 */
export function rewriteImports(text: string, resolve: (specifier: string) => string = (s) => s, { keepStatic = false } = {}): RewrittenCell {
  let out = "";
  let copied = 0;
  const imports: CellImport[] = [];
  // Closers of the open brackets; "${" marks a template substitution, whose `}` resumes the template.
  const stack: string[] = [];
  let regexAllowed = true;
  let afterDot = false;
  let i = 0;

  const scanTemplate = (from: number): number => {
    for (let j = from; j < text.length; j++) {
      if (text[j] === "\\") j++;
      else if (text[j] === "`") return j + 1;
      else if (text[j] === "$" && text[j + 1] === "{") {
        stack.push("${");
        return j + 2;
      }
    }
    return text.length;
  };

  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const afterComment = skipComment(text, i);
    if (afterComment !== i) {
      i = afterComment;
      continue;
    }
    if (c === '"' || c === "'") {
      i = skipString(text, i);
      regexAllowed = false;
      afterDot = false;
      continue;
    }
    if (c === "`") {
      i = scanTemplate(i + 1);
      regexAllowed = stack.at(-1) === "${" && text.slice(i - 2, i) === "${";
      afterDot = false;
      continue;
    }
    if (c === "/" && regexAllowed) {
      i = skipRegex(text, i);
      regexAllowed = false;
      continue;
    }
    if (identStart.test(c)) {
      let end = i + 1;
      while (end < text.length && identPart.test(text[end]!)) end++;
      const word = text.slice(i, end);
      if (word === "export" && !keepStatic && stack.length === 0 && !afterDot && exportable.has(tokenAt(text, end).value)) {
        // `export const x = 1` in a cell declares x, as in the kernel; the keyword goes.
        out += text.slice(copied, i) + " ".repeat(word.length);
        copied = i = end;
        regexAllowed = true;
        continue;
      }
      if (word === "import" && stack.length === 0 && !afterDot) {
        const next = tokenAt(text, end);
        if (next.value !== "(" && next.value !== ".") {
          const parsed = parseImport(text, end);
          if (parsed !== undefined) {
            const [from, to] = parsed.literal;
            const replacement = keepStatic
              ? text.slice(i, from) + JSON.stringify(resolve(parsed.specifier)) + text.slice(to, parsed.end)
              : replacementOf(parsed, resolve);
            const lines = keepStatic ? 0 : text.slice(i, parsed.end).split("\n").length - 1;
            out += text.slice(copied, i) + replacement + "\n".repeat(lines);
            copied = i = parsed.end;
            imports.push({ specifier: parsed.specifier, replacement });
            regexAllowed = true;
            afterDot = false;
            continue;
          }
        }
      }
      regexAllowed = regexAfterWord.has(word);
      afterDot = false;
      i = end;
      continue;
    }
    if (/[0-9]/.test(c)) {
      while (i < text.length && /[\w.]/.test(text[i]!)) i++;
      regexAllowed = false;
      afterDot = false;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") {
      stack.push(c === "(" ? ")" : c === "[" ? "]" : "}");
    } else if (c === ")" || c === "]" || c === "}") {
      if (c === "}" && stack.at(-1) === "${") {
        stack.pop();
        i = scanTemplate(i + 1);
        regexAllowed = stack.at(-1) === "${" && text.slice(i - 2, i) === "${";
        afterDot = false;
        continue;
      }
      stack.pop();
    }
    regexAllowed = regexAfterPunct.has(c);
    afterDot = c === "." && text[i + 1] !== ".";
    i++;
  }
  return { code: out + text.slice(copied), imports };
}

/**
 * The specifier resolver the runner uses: relative and absolute paths against `base` (the
 * notebook's directory, as a file URL ending in "/"), anything else (`npm:`, `jsr:`, `node:`,
 * bare names from deno.json, URLs) as written.
 */
export function resolveAgainst(base: string): (specifier: string) => string {
  return (specifier) => (/^(\.{1,2}\/|\/)/.test(specifier) ? new URL(specifier, base).href : specifier);
}

/**
 * As the kernel does, a cell that starts with `{` and does not end with `;` is tried as an
 * expression first (an object literal, not a block); the runner falls back to the plain text
 * when that does not parse.
 */
export function objectLiteralWrapping(text: string): string | undefined {
  return text.trimStart().startsWith("{") && !text.trimEnd().endsWith(";") ? `(${text})` : undefined;
}
