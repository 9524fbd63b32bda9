using System.Runtime.CompilerServices;

// The tokenizer tests rebuild tokenizer.json files from the real sentencepiece models with SentencePieceModel.
[assembly: InternalsVisibleTo("Peft.Onnx.Tests")]
