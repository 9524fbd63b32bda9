namespace Peft.Onnx.Tests.Support;

/// <summary>Locates the repository's test fixtures and bundled models from the test binary's folder.</summary>
public static class Paths
{
    public static string RepoRoot { get; } = FindRoot();

    public static string Fixtures => Path.Combine(RepoRoot, "tests", "fixtures");
    public static string Reference => Path.Combine(Fixtures, "peft-reference");
    /// <summary>Cases written by PEFT 0.13.2 / 0.20.0 on the same base models and inputs as <see cref="Reference"/>.</summary>
    public static string Current => Path.Combine(Fixtures, "peft-current");

    public static string DocConfigs => Path.Combine(Fixtures, "peft-doc-configs");
    public static string Models => Path.Combine(RepoRoot, "models");

    /// <summary>tests/fixtures/peft-current/{arch}/{sub}.</summary>
    public static string CurrentCase(string arch, string sub = "") => Path.Combine(Current, arch, sub);

    /// <summary>tests/fixtures/peft-reference/{arch}/{sub}.</summary>
    public static string Case(string arch, string sub = "") => Path.Combine(Reference, arch, sub);

    /// <summary>
    /// The folder with the base model and inputs of a case: the case's own parent where it holds a base_model (a base
    /// only one fixture set has, e.g. peft-current/llama_gqa), else peft-reference/{arch}.
    /// </summary>
    public static string ArchDirOf(string caseDir, string arch)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(caseDir).TrimEnd(Path.DirectorySeparatorChar))!;
        return Directory.Exists(Path.Combine(parent, "base_model")) ? parent : Case(arch);
    }

    public static readonly string[] Archs = ["bloom", "gpt2", "llama", "opt", "t5", "mt5"];

    public static readonly string[] Methods =
        ["lora", "lora_all", "ia3", "prompt_tuning_random", "prompt_tuning_text", "p_tuning_mlp", "p_tuning_lstm", "prefix", "prefix_proj"];

    /// <summary>A fresh empty folder under the system temp folder, deleted by the caller or left for the OS.</summary>
    public static string TempDir(string prefix = "peft-onnx-test")
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Peft.Onnx.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Peft.Onnx.sln not found above " + AppContext.BaseDirectory);
    }
}
