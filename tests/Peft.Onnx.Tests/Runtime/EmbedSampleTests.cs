using System.Diagnostics;
using System.Text.Json;
using System.Xml.Linq;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// samples/EmbedRuntime is what an application embedding the runtime ships: ORT + Tokenizers + Core + Runtime,
/// never TorchSharp or libtorch. Checked on the sample's restored package closure (project.assets.json, what its
/// deps.json and output folder are made from) and on any build output of it already on disk.
/// </summary>
public class EmbedSampleTests
{
    private static readonly string SampleDir = Path.Combine(Paths.RepoRoot, "samples", "EmbedRuntime");
    private static readonly string[] Forbidden = ["TorchSharp", "libtorch", "Peft.Onnx.Trainer", "Peft.Onnx.Exporter"];

    [Fact]
    public void Sample_references_only_runtime_and_core()
    {
        var csproj = XDocument.Load(Path.Combine(SampleDir, "EmbedRuntime.csproj"));
        var references = csproj.Descendants()
            .Where(e => e.Name.LocalName is "ProjectReference" or "PackageReference" or "Reference")
            .Select(e => Path.GetFileName((string?)e.Attribute("Include") ?? ""))
            .Order().ToArray();
        Assert.Equal(["Core.csproj", "Runtime.csproj"], references);
    }

    [Fact]
    public void Sample_package_closure_and_build_output_hold_no_torch()
    {
        var psi = new ProcessStartInfo("dotnet", ["restore", SampleDir]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using (var p = Process.Start(psi)!)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "dotnet restore timed out");
            Assert.True(p.ExitCode == 0, $"dotnet restore failed: {stdout.Result}{stderr.Result}");
        }
        using var assets = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(SampleDir, "obj", "project.assets.json")));
        var libraries = assets.RootElement.GetProperty("libraries").EnumerateObject().Select(l => l.Name).ToList();
        Assert.Contains(libraries, l => l.StartsWith("Microsoft.ML.OnnxRuntime.Gpu.Linux/", StringComparison.Ordinal));
        Assert.DoesNotContain(libraries, l => l.StartsWith("Microsoft.ML.OnnxRuntime/", StringComparison.Ordinal));
        foreach (var f in Forbidden) Assert.DoesNotContain(libraries, l => l.Contains(f, StringComparison.OrdinalIgnoreCase));
        foreach (var target in assets.RootElement.GetProperty("targets").EnumerateObject())
        foreach (var library in target.Value.EnumerateObject())
        foreach (var f in Forbidden)
            Assert.DoesNotContain(f, library.Value.ToString(), StringComparison.OrdinalIgnoreCase);

        // Any build of the sample already on disk (bin/...): no torch file, and its deps.json names none.
        var bin = Path.Combine(SampleDir, "bin");
        if (!Directory.Exists(bin)) return;
        foreach (var file in Directory.EnumerateFiles(bin, "*", SearchOption.AllDirectories))
        {
            foreach (var f in Forbidden) Assert.DoesNotContain(f, Path.GetFileName(file), StringComparison.OrdinalIgnoreCase);
            if (file.EndsWith(".deps.json", StringComparison.Ordinal))
                foreach (var f in Forbidden) Assert.DoesNotContain(f, File.ReadAllText(file), StringComparison.OrdinalIgnoreCase);
        }
    }
}
