using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;

namespace Peft.Onnx.Trainer.Tuners.PromptTuning;

/// <summary>
/// Finds the tokenizer PEFT's TEXT init loads with AutoTokenizer.from_pretrained(tokenizer_name_or_path), offline:
/// an absolute folder as given; a relative one under the adapter's folder, the base model's folder, or the folder
/// both config paths are relative to (the base folder minus base_model_name_or_path); the base folder itself when
/// the name is base_model_name_or_path. A relative path that climbs out of the folder it is resolved against is
/// refused. Hub names that are not local folders fail with the places looked at.
/// </summary>
public static class InitTextTokenizer
{
    public static HfTokenizer Load(PromptTuningConfig config, ModelConfig model)
    {
        var name = config.TokenizerNameOrPath;
        if (string.IsNullOrWhiteSpace(name))
            throw new PeftOnnxException($"{config.SourcePath}: prompt_tuning_init is \"TEXT\" but tokenizer_name_or_path is {(name is null ? "missing" : "empty")} (give the tokenizer folder that tokenizes prompt_tuning_init_text)");
        var looked = new List<string>();
        foreach (var candidate in Candidates(name, config, model, looked))
            if (Directory.Exists(candidate)) return HfTokenizer.FromFolder(candidate);
        throw new PeftOnnxException($"{config.SourcePath}: tokenizer_name_or_path '{name}' is not a local tokenizer folder (looked in {string.Join(", ", looked.Distinct())}); hub downloads are not supported, give a folder path");
    }

    private static IEnumerable<string> Candidates(string name, PromptTuningConfig config, ModelConfig model, List<string> looked)
    {
        if (Path.IsPathRooted(name))
        {
            looked.Add(name);
            yield return name;
            yield break;
        }
        var baseDir = FolderOf(model.SourcePath);
        var anchors = new List<string>();
        if (FolderOf(config.SourcePath) is { } adapterDir) anchors.Add(adapterDir);
        if (baseDir is not null)
        {
            if (Same(name, config.BaseModelNameOrPath)) { looked.Add(baseDir); yield return baseDir; }
            anchors.Add(baseDir);
            if (RootOf(baseDir, config.BaseModelNameOrPath) is { } root) anchors.Add(root);
        }
        anchors.Add(Directory.GetCurrentDirectory());
        foreach (var anchor in anchors.Distinct())
        {
            var full = Path.GetFullPath(Path.Combine(anchor, name));
            if (!IsInside(full, anchor))
                throw new PeftOnnxException($"{config.SourcePath}: tokenizer_name_or_path '{name}' leaves the folder it is relative to ({anchor}); give an absolute path instead");
            looked.Add(full);
            yield return full;
        }
    }

    /// <summary>The folder of a config file that was read from disk, or null for a config built in code.</summary>
    private static string? FolderOf(string sourcePath) =>
        Path.IsPathRooted(sourcePath) || File.Exists(sourcePath) ? Path.GetDirectoryName(Path.GetFullPath(sourcePath)) : null;

    /// <summary>"/x/fixtures/t5/base_model" with base_model_name_or_path "t5/base_model" -> "/x/fixtures".</summary>
    private static string? RootOf(string baseDir, string? baseName)
    {
        if (string.IsNullOrEmpty(baseName) || Path.IsPathRooted(baseName)) return null;
        var parts = baseName.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Any(p => p is "." or "..")) return null;
        var dir = new DirectoryInfo(baseDir);
        for (int i = parts.Length - 1; i >= 0; i--)
        {
            if (dir is null || dir.Name != parts[i]) return null;
            dir = dir.Parent;
        }
        return dir?.FullName;
    }

    private static bool Same(string a, string? b) =>
        b is not null && a.Replace('\\', '/').TrimEnd('/') == b.Replace('\\', '/').TrimEnd('/');

    private static bool IsInside(string full, string anchor)
    {
        var root = Path.GetFullPath(anchor).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return (full + Path.DirectorySeparatorChar).StartsWith(root, StringComparison.Ordinal);
    }
}
