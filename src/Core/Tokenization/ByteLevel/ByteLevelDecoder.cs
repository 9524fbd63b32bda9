using System.Text;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Byte-level BPE decoding (GPT2Tokenizer.convert_tokens_to_string, tokenizers' ByteLevel decoder): map each token's
/// characters back to bytes and read them as UTF-8, invalid sequences becoming U+FFFD as Python's errors="replace"
/// and Rust's from_utf8_lossy do. A token with characters outside the byte alphabet (an added token such as
/// "&lt;pad&gt;" written with ordinary characters) contributes its own UTF-8 bytes.
/// </summary>
internal sealed class ByteLevelDecoder(Func<int, string> tokenOf) : ITokenDecoder
{
    public string Decode(IReadOnlyList<int> ids) => DecodeTokens(ids.Select(tokenOf));

    public static string DecodeTokens(IEnumerable<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens) AppendBytes(token, bytes);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    private static void AppendBytes(string token, List<byte> bytes)
    {
        int start = bytes.Count;
        foreach (char c in token)
        {
            if (!ByteLevelAlphabet.TryGetByte(c, out byte b))
            {
                bytes.RemoveRange(start, bytes.Count - start);
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
            bytes.Add(b);
        }
    }
}
