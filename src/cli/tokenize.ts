// `gpuffi tokenize -m MODEL [--special] [--json] TEXT`: token ids and pieces, loading the vocabulary only.
import { LlamaModel } from "../llama/index.ts";
import { type CliIO, type Command, UsageError, parseCommandArgs, table, toJson } from "./command.ts";

const utf8 = new TextDecoder();

const usage = `usage: gpuffi tokenize -m MODEL [--special] [--json] TEXT

Tokenizes TEXT with the model's vocabulary (the weights are not loaded) and prints each
token id with its piece.
  -m, --model FILE   the GGUF model
  --special          parse special tokens written as text (e.g. "</s>") and add BOS/EOS
  --json             print {"tokens": [...], "pieces": [...]}`;

export const tokenizeCommand: Command = {
  name: "tokenize",
  synopsis: "tokenize -m MODEL [--special] [--json] TEXT",
  summary: "tokenize text with a model's vocabulary (llama.cpp)",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { positionals, values } = parseCommandArgs(argv.map((a) => (a === "-m" ? "--model" : a)), { model: "string", special: "boolean", json: "boolean" }, ["TEXT"]);
    if (typeof values.model !== "string") throw new UsageError("-m MODEL is required");
    const special = values.special === true;
    const model = await LlamaModel.load(values.model, { vocabOnly: true });
    try {
      const tokens = Array.from(model.tokenize(positionals[0]!, { addSpecial: special, parseSpecial: special }));
      const pieces = tokens.map((t) => utf8.decode(model.tokenPiece(t, true)));
      if (values.json === true) io.out(toJson({ tokens, pieces }));
      else io.out(table([["id", "piece"], ...tokens.map((t, i) => [String(t), JSON.stringify(pieces[i])])]));
      return 0;
    } finally {
      model.dispose();
    }
  },
};
