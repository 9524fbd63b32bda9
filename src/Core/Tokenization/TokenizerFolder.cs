namespace Peft.Onnx.Core.Tokenization;

/// <summary>Picks the tokenizer files of a checkpoint folder: tokenizer.json first (what transformers' fast
/// tokenizer uses), else the slow files.</summary>
internal static class TokenizerFolder
{
    public static HfTokenizer Load(string dir)
    {
        try { return LoadChecked(dir); }
        catch (PeftOnnxException ex) when (MessageText.HasLineBreak(ex.Message)) { throw MessageText.OneLine(ex); }
    }

    private static HfTokenizer LoadChecked(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new PeftOnnxException($"{dir}: tokenizer folder does not exist");

        bool Has(string file) => File.Exists(Path.Combine(dir, file));
        TokenizerParts parts =
            Has("tokenizer.json") ? TokenizerJsonLoader.Load(dir)
            : Has("vocab.json") && Has("merges.txt") ? SlowTokenizerLoader.LoadByteLevelBpe(dir)
            : Has("spiece.model") ? SlowTokenizerLoader.LoadSentencePiece(dir, "spiece.model")
            : Has("tokenizer.model") ? SlowTokenizerLoader.LoadSentencePiece(dir, "tokenizer.model")
            : throw new PeftOnnxException(
                $"{dir}: no tokenizer found (expected tokenizer.json, vocab.json + merges.txt, spiece.model or tokenizer.model)");
        // Ids near int.MaxValue wrap the vocabulary size (largest id + 1) negative; no real vocabulary comes near the cap.
        if (parts.VocabSize < 0 || parts.VocabSize > MaxVocabularySize)
            throw new PeftOnnxException(
                $"{dir}: the tokenizer's largest token id is beyond {MaxVocabularySize - 1:N0} (expected ids below {MaxVocabularySize:N0})");
        return new HfTokenizer(parts);
    }

    private const int MaxVocabularySize = 1 << 26;
}
