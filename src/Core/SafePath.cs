namespace Peft.Onnx.Core;

/// <summary>Resolves file names found inside configs so they cannot escape the folder they were given in.</summary>
public static class SafePath
{
    public static string Inside(string dir, string relative, string mentionedIn)
    {
        if (string.IsNullOrWhiteSpace(relative) || Path.IsPathRooted(relative))
            throw new PeftOnnxException($"{mentionedIn}: path '{relative}' must be relative to {dir}");
        var root = Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(root, relative));
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new PeftOnnxException($"{mentionedIn}: path '{relative}' escapes the folder {dir}");
        return full;
    }
}
