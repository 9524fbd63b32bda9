using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// T5Tokenizer / LlamaTokenizer convert_tokens_to_string (transformers 4.33, legacy): drop the prefix "▁" of the
/// first token (T5: all of them, LLaMA: one), decode runs of ordinary pieces with sentencepiece, and write special
/// tokens as text with a space before a run of them (LLaMA: not at the very start). T5 strips the result.
/// </summary>
internal sealed class SlowSentencePieceDecoder(
    SentencePieceTextDecoder pieces, bool t5Style, IReadOnlySet<string> specialTokens, Func<int, string> tokenOf) : ITokenDecoder
{
    public string Decode(IReadOnlyList<int> ids)
    {
        var tokens = ids.Select(tokenOf).ToList();
        if (t5Style) tokens[0] = tokens[0].TrimStart('\u2581');
        else if (tokens[0].StartsWith('\u2581')) tokens[0] = tokens[0][1..];

        var output = new StringBuilder();
        var run = new List<string>();
        bool previousSpecial = false;
        for (int i = 0; i < tokens.Count; i++)
        {
            if (specialTokens.Contains(tokens[i]))
            {
                if (!previousSpecial && (t5Style || i != 0)) output.Append(' ');
                output.Append(pieces.Decode(run)).Append(tokens[i]);
                run.Clear();
                previousSpecial = true;
            }
            else
            {
                run.Add(tokens[i]);
                previousSpecial = false;
            }
        }
        output.Append(pieces.Decode(run));
        return t5Style ? PythonText.Strip(output.ToString()) : output.ToString();
    }
}
