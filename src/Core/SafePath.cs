using System.Buffers;

namespace Peft.Onnx.Core;

/// <summary>
/// Resolves file names found inside configs so they cannot escape the folder they were given in.
/// Symbolic links are followed, not judged: Hugging Face's own cache keeps every file of a snapshot folder as a
/// link into a blobs folder outside it, so refusing links that leave the folder would refuse every cached model.
/// What a config writes (the name) is checked; where the user's file system points it is the user's choice.
/// </summary>
public static class SafePath
{
    public static string Inside(string dir, string relative, string mentionedIn)
    {
        RequireValidChars(relative, "path", mentionedIn);
        if (string.IsNullOrWhiteSpace(relative) || Path.IsPathRooted(relative))
            throw new PeftOnnxException($"{mentionedIn}: path {MessageText.Quote(relative)} must be relative to {dir}");
        var root = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(root, relative));
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new PeftOnnxException($"{mentionedIn}: path {MessageText.Quote(relative)} escapes the folder {dir}");
        return full;
    }

    /// <summary>
    /// Refuses a path taken from a config (<paramref name="key"/> in <paramref name="mentionedIn"/>) that holds a
    /// character no path can hold (NUL on Linux; more on Windows), which the file APIs would otherwise reject
    /// with an ArgumentException far from the file that held it.
    /// </summary>
    public static void RequireValidChars(string? value, string key, string mentionedIn)
    {
        if (value is not null && value.AsSpan().IndexOfAny(InvalidChars) >= 0)
            throw new PeftOnnxException($"{mentionedIn}: {key} {MessageText.Quote(value)} holds a character that no file path can hold (expected a file or folder path)");
    }

    private static readonly SearchValues<char> InvalidChars = SearchValues.Create(Path.GetInvalidPathChars());
}
