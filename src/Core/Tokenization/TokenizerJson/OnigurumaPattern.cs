using System.Text;
using System.Text.RegularExpressions;

namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Compiles tokenizer.json regexes (written for Oniguruma / Rust regex) with .NET. The one construct .NET lacks is a
/// character class nested in another, which Oniguruma reads as a union: BLOOM's Split pattern
/// <c> ?[^(\s|[.,!?…。，、।۔،])]+</c> means "not any of ( \s | . , ! ? … ) ". Nested non-negated classes are
/// flattened into their parent; a negated nested class has no flat equivalent and is refused.
/// </summary>
internal static class OnigurumaPattern
{
    /// <summary>How long one match may run: a file's pattern that backtracks catastrophically fails instead of hanging.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    public static Regex Compile(string pattern) => new(FlattenNestedClasses(pattern), RegexOptions.CultureInvariant, MatchTimeout);

    public static string FlattenNestedClasses(string pattern)
    {
        var output = new StringBuilder(pattern.Length);
        int depth = 0;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                output.Append(c).Append(pattern[++i]);
                continue;
            }
            if (depth == 0)
            {
                output.Append(c);
                if (c != '[') continue;
                depth = 1;
                if (i + 1 < pattern.Length && pattern[i + 1] == '^') output.Append(pattern[++i]);
                if (i + 1 < pattern.Length && pattern[i + 1] == ']') output.Append(pattern[++i]);  // leading ']' is literal
                continue;
            }
            if (c == '[' && i + 1 < pattern.Length && pattern[i + 1] != ':')
            {
                if (pattern[i + 1] == '^') throw new NotSupportedException($"regex '{pattern}' negates a nested character class");
                depth++;
                continue;
            }
            if (c == ']')
            {
                depth--;
                if (depth == 0) output.Append(c);
                continue;
            }
            output.Append(c);
        }
        return output.ToString();
    }
}
