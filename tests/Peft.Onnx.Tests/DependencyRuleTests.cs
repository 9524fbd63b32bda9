using System.Reflection;
using System.Xml.Linq;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests;

/// <summary>
/// Runtime and Exporter never reference TorchSharp; Runtime references neither Exporter nor Trainer, nor a console or
/// plotting package. The Exporter may reference the Runtime (it checks what it writes through the Runtime's sessions),
/// never the Trainer; the verification library never reaches back into the CLI.
/// </summary>
public class DependencyRuleTests
{
    [Theory]
    [InlineData("Runtime", new[] { "TorchSharp", "libtorch", "Peft.Onnx.Trainer", "Peft.Onnx.Exporter", "Trainer.csproj", "Exporter.csproj" })]
    [InlineData("Exporter", new[] { "TorchSharp", "libtorch", "Peft.Onnx.Trainer", "Trainer.csproj" })]
    [InlineData("Core", new[] { "TorchSharp", "libtorch", "OnnxRuntime", "Trainer.csproj", "Exporter.csproj", "Runtime.csproj" })]
    [InlineData("Verification", new[] { "Cli.csproj", "Spectre" })]
    [InlineData("Server", new[] { "TorchSharp", "libtorch", "Trainer.csproj", "Exporter.csproj", "Cli.csproj", "Spectre" })]
    public void Project_file_has_no_forbidden_reference(string project, string[] forbidden)
    {
        var csproj = XDocument.Load(Path.Combine(Paths.RepoRoot, "src", project, $"{project}.csproj"));
        var references = csproj.Descendants()
            .Where(e => e.Name.LocalName is "PackageReference" or "ProjectReference" or "Reference")
            .Select(e => (string?)e.Attribute("Include") ?? "")
            .ToList();
        foreach (var f in forbidden)
            Assert.DoesNotContain(references, r => r.Contains(f, StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData("Peft.Onnx.Runtime", new[] { "TorchSharp", "Peft.Onnx.Trainer", "Peft.Onnx.Exporter", "Spectre.Console", "ScottPlot" })]
    [InlineData("Peft.Onnx.Exporter", new[] { "TorchSharp", "Peft.Onnx.Trainer" })]
    [InlineData("Peft.Onnx.Core", new[] { "TorchSharp", "Peft.Onnx.Trainer", "Peft.Onnx.Exporter", "Peft.Onnx.Runtime" })]
    public void Compiled_assembly_has_no_forbidden_reference(string assembly, string[] forbidden)
    {
        var referenced = Assembly.Load(assembly).GetReferencedAssemblies().Select(a => a.Name!).ToList();
        foreach (var f in forbidden) Assert.DoesNotContain(f, referenced);
    }
}
