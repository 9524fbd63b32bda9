using System.Text.Json;
using System.Xml.Linq;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// samples/EmbedRuntime is what an application embedding the runtime does: it references the packed
/// Peft.Onnx.Runtime and ONNX Runtime's CPU package. The end-to-end test packs src/Runtime into a temporary feed,
/// builds a temporary copy of the sample from it and runs it: the packages depend on ORT's managed API and
/// Tokenizers only, and the sample's output holds ORT's CPU build and no TorchSharp or libtorch file.
/// </summary>
public class EmbedSampleTests(ITestOutputHelper output)
{
    private static readonly string SampleDir = Path.Combine(Paths.RepoRoot, "samples", "EmbedRuntime");
    private static readonly string[] Forbidden = ["torch", "Peft.Onnx.Trainer", "Peft.Onnx.Exporter", "Microsoft.ML.OnnxRuntime.Gpu"];
    private const string Prompt = "The company said";
    private const int NewTokens = 8;

    [Fact]
    public void Sample_references_the_runtime_package_and_the_cpu_onnx_runtime_only()
    {
        var csproj = XDocument.Load(Path.Combine(SampleDir, "EmbedRuntime.csproj"));
        Assert.DoesNotContain(csproj.Descendants(), e => e.Name.LocalName is "ProjectReference" or "Reference");
        var packages = PackageVersions(csproj);
        Assert.Equal(["Microsoft.ML.OnnxRuntime", "Peft.Onnx.Runtime"], packages.Keys.Order());
        // The native build must be the version of the managed API the runtime is compiled against.
        var repository = XDocument.Load(Path.Combine(Paths.RepoRoot, "Directory.Build.props"));
        var ortVersion = repository.Descendants().Single(e => e.Name.LocalName == "OnnxRuntimeVersion").Value;
        Assert.Equal(ortVersion, packages["Microsoft.ML.OnnxRuntime"]);
    }

    [Fact]
    public async Task Packed_runtime_builds_the_sample_which_runs_on_the_cpu_onnx_runtime()
    {
        var work = Paths.TempDir("peft-onnx-embed");
        try
        {
            // A version of its own: a package restored once stays in NuGet's caches under its version.
            var suffix = $"embedtest-{Guid.NewGuid():N}";
            var feed = Path.Combine(work, "feed");
            await Dotnet("pack", ["pack", Path.Combine(Paths.RepoRoot, "src", "Runtime"), "-c", "Release", "-o", feed,
                "--artifacts-path", Path.Combine(work, "artifacts"), $"-p:VersionSuffix={suffix}", "--nologo"], TimeSpan.FromMinutes(4));
            var version = CheckPackages(feed, suffix);

            var sample = CopySample(Path.Combine(work, "sample"), feed);
            var bin = Path.Combine(work, "bin");
            List<string> build = ["build", Path.Combine(sample, "EmbedRuntime.csproj"), "-c", "Release", "-o", bin, "--nologo",
                $"-p:PeftOnnxVersion={version}", $"-p:RestorePackagesPath={Path.Combine(work, "packages")}"];
            // ORT and Tokenizers from the machine's package folder when they are there (no copy of ~400 MB per run).
            var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            if (Directory.Exists(globalPackages)) build.Add($"-p:RestoreAdditionalProjectFallbackFolders={globalPackages}");
            await Dotnet("build of the sample", build, TimeSpan.FromMinutes(3));

            CheckRestoredClosure(Path.Combine(sample, "obj", "project.assets.json"), version);
            CheckOutputFolder(bin);
            await CheckRun(bin, work);
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    /// <summary>Both packages, in one version, with their metadata; Runtime depends on Core and ORT's managed API, Core on Tokenizers.</summary>
    private string CheckPackages(string feed, string suffix)
    {
        var files = Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName).Order().ToList();
        output.WriteLine($"packed: {string.Join(", ", files)}");
        Assert.Equal(2, files.Count);
        var runtime = PackedPackage.Read(Directory.GetFiles(feed, "Peft.Onnx.Runtime.*.nupkg").Single());
        var core = PackedPackage.Read(Directory.GetFiles(feed, "Peft.Onnx.Core.*.nupkg").Single());
        Assert.Equal(("Peft.Onnx.Runtime", "Peft.Onnx.Core"), (runtime.Id, core.Id));
        Assert.EndsWith("-" + suffix, runtime.Version);
        Assert.Equal(runtime.Version, core.Version);

        Assert.Equal(["Microsoft.ML.OnnxRuntime.Managed", "Peft.Onnx.Core"], runtime.Dependencies.Keys.Order());
        var sampleOrt = PackageVersions(XDocument.Load(Path.Combine(SampleDir, "EmbedRuntime.csproj")))["Microsoft.ML.OnnxRuntime"];
        Assert.Equal(sampleOrt, runtime.Dependencies["Microsoft.ML.OnnxRuntime.Managed"]);
        Assert.Equal(runtime.Version, runtime.Dependencies["Peft.Onnx.Core"]);
        Assert.Equal(["Microsoft.ML.Tokenizers"], core.Dependencies.Keys);
        foreach (var p in new[] { runtime, core })
        {
            Assert.False(string.IsNullOrWhiteSpace(p.Description), $"{p.Id}: no description");
            Assert.Equal("MIT", p.LicenseExpression);
            Assert.Equal("git", p.RepositoryType);
            Assert.NotNull(p.Readme);
            Assert.Contains(p.Readme, p.Files);
            Assert.Contains($"lib/net10.0/{p.Id}.dll", p.Files);
            Assert.Contains($"lib/net10.0/{p.Id}.xml", p.Files);
        }
        return runtime.Version;
    }

    /// <summary>The sample's sources in a folder of their own, restoring from the feed beside the machine's sources.</summary>
    private static string CopySample(string dir, string feed)
    {
        Directory.CreateDirectory(dir);
        foreach (var name in new[] { "EmbedRuntime.csproj", "Program.cs" })
            File.Copy(Path.Combine(SampleDir, name), Path.Combine(dir, name));
        File.WriteAllText(Path.Combine(dir, "NuGet.config"),
            new XDocument(new XElement("configuration", new XElement("packageSources",
                new XElement("add", new XAttribute("key", "peft-onnx-packed"), new XAttribute("value", feed))))).ToString());
        return dir;
    }

    /// <summary>The restored closure: our two packages from the feed (not projects), ORT's CPU build, nothing forbidden.</summary>
    private static void CheckRestoredClosure(string assetsFile, string version)
    {
        using var assets = JsonDocument.Parse(File.ReadAllBytes(assetsFile));
        var libraries = assets.RootElement.GetProperty("libraries").EnumerateObject()
            .ToDictionary(l => l.Name, l => l.Value.GetProperty("type").GetString());
        Assert.Equal("package", libraries.GetValueOrDefault($"Peft.Onnx.Runtime/{version}"));
        Assert.Equal("package", libraries.GetValueOrDefault($"Peft.Onnx.Core/{version}"));
        Assert.Contains(libraries.Keys, l => l.StartsWith("Microsoft.ML.OnnxRuntime/", StringComparison.Ordinal));
        Assert.Contains(libraries.Keys, l => l.StartsWith("Microsoft.ML.OnnxRuntime.Managed/", StringComparison.Ordinal));
        Assert.Contains(libraries.Keys, l => l.StartsWith("Microsoft.ML.Tokenizers/", StringComparison.Ordinal));
        Assert.DoesNotContain("project", libraries.Values);
        foreach (var f in Forbidden) Assert.DoesNotContain(libraries.Keys, l => l.Contains(f, StringComparison.OrdinalIgnoreCase));
        foreach (var target in assets.RootElement.GetProperty("targets").EnumerateObject())
        foreach (var library in target.Value.EnumerateObject())
        foreach (var f in Forbidden)
            Assert.DoesNotContain(f, library.Value.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>ORT's CPU native library (no CUDA provider), our assemblies, and no torch file anywhere.</summary>
    private void CheckOutputFolder(string bin)
    {
        var files = Directory.EnumerateFiles(bin, "*", SearchOption.AllDirectories).ToList();
        output.WriteLine($"sample output: {string.Join(", ", files.Select(Path.GetFileName).Order())}");
        foreach (var file in files)
        {
            foreach (var f in Forbidden) Assert.DoesNotContain(f, Path.GetFileName(file), StringComparison.OrdinalIgnoreCase);
            if (file.EndsWith(".deps.json", StringComparison.Ordinal))
                foreach (var f in Forbidden) Assert.DoesNotContain(f, File.ReadAllText(file), StringComparison.OrdinalIgnoreCase);
        }
        var names = files.Select(Path.GetFileName).ToHashSet();
        foreach (var expected in new[] { "embed-runtime.dll", "Peft.Onnx.Runtime.dll", "Peft.Onnx.Core.dll", "Microsoft.ML.OnnxRuntime.dll", "libonnxruntime.so" })
            Assert.Contains(expected, names);
        Assert.DoesNotContain("libonnxruntime_providers_cuda.so", names);
    }

    /// <summary>The sample on the bundled BLOOM: exit 0, greedy text as the runtime generates it in this process, on the CPU.</summary>
    private async Task CheckRun(string bin, string work)
    {
        var model = Path.Combine(work, "bloom");
        OnnxExport.ExportBase(Path.Combine(Paths.Models, "tiny-bloom-fin"), model, new ExportOptions { Verify = false });
        string expected;
        using (var loaded = OnnxModel.Load(model, DeviceOptions.Cpu))
            expected = loaded.Generate(GenerationRequest.FromText(Prompt, GenerationOptions.Greedy(NewTokens))).Text![0];

        var run = await ChildProcess.RunAsync("dotnet", [Path.Combine(bin, "embed-runtime.dll"), model, Prompt, $"{NewTokens}", "cpu"], TimeSpan.FromMinutes(2));
        output.WriteLine(run.Output);
        Assert.True(run.ExitCode == 0, $"embed-runtime exited with {run.ExitCode}: {run.Output}");
        var lines = run.Stdout.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Contains($"greedy:   {expected}", lines);
        Assert.Contains(lines, l => l.Contains($" {NewTokens} tokens, ") && l.Contains(" on cpu (first run)"));
        Assert.Single(lines, l => l.StartsWith($"sampled:  {Prompt}", StringComparison.Ordinal));
        Assert.Equal(3, lines.Count(l => l.StartsWith("parallel: ", StringComparison.Ordinal)));
    }

    private async Task Dotnet(string what, IEnumerable<string> args, TimeSpan limit)
    {
        var started = DateTime.UtcNow;
        var r = await ChildProcess.RunAsync("dotnet", args, limit);
        output.WriteLine($"{what}: exit {r.ExitCode} in {(DateTime.UtcNow - started).TotalSeconds:F1} s");
        Assert.True(r.ExitCode == 0, $"dotnet {what} failed (exit {r.ExitCode}): {r.Output}");
    }

    private static Dictionary<string, string> PackageVersions(XDocument csproj) =>
        csproj.Descendants().Where(e => e.Name.LocalName == "PackageReference")
            .ToDictionary(e => (string)e.Attribute("Include")!, e => (string?)e.Attribute("Version") ?? "");
}
