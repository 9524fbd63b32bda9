namespace Peft.Onnx.Core.Tokenization;

/// <summary>transformers' clean_up_tokenization: removes the space a word-level decode leaves before punctuation
/// and English contractions. Applied when tokenizer_config.json's clean_up_tokenization_spaces is true (transformers
/// 4.33 default).</summary>
internal static class TokenizationSpaces
{
    public static string CleanUp(string text) => text
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
        .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" 's", "'s")
        .Replace(" 've", "'ve").Replace(" 're", "'re");
}
