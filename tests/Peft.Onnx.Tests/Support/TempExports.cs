using Peft.Onnx.Exporter;
using Xunit;

namespace Peft.Onnx.Tests.Support;

/// <summary>Exports into fresh folders under the system temp folder, deleted by the tests that make them.</summary>
public static class TempExports
{
    /// <summary>A path under the temp folder that does not exist yet: an export creates its folder itself.</summary>
    public static string FreshPath() => Path.Combine(Path.GetTempPath(), $"peft-onnx-export-{Guid.NewGuid():N}");

    /// <summary>The base model in <paramref name="modelDir"/> exported into a fresh folder, which is returned.</summary>
    public static string Base(string modelDir)
    {
        var dir = FreshPath();
        OnnxExport.ExportBase(modelDir, dir);
        return dir;
    }

    /// <summary>A fixture case's base model + adapter (tests/fixtures/peft-reference/{arch}/{method}/adapter) exported into a fresh folder.</summary>
    public static string Adapted(string arch, string method, ExportOptions options)
    {
        var dir = FreshPath();
        OnnxExport.Export(Paths.Case(arch, "base_model"), Paths.Case(arch, method + "/adapter"), dir, options);
        return dir;
    }

    /// <summary>A refused export left nothing behind: neither its folder nor the temporary sibling it writes first.</summary>
    public static void AssertNothingWritten(string dir)
    {
        Assert.False(Directory.Exists(dir), $"{dir} was created");
        var parent = Path.GetDirectoryName(dir)!;
        Assert.Empty(Directory.EnumerateDirectories(parent, $".{Path.GetFileName(dir)}.*"));
    }
}
