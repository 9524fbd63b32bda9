using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// The methods beyond the five compiled to ONNX (always merged) against current PEFT's merge_and_unload
/// (tests/fixtures/peft-current), the same checks for each; what only one method refuses is tested beside it
/// (LycorisExportTests, OrthogonalExportTests, VeraAdaLoraExportTests).
/// </summary>
public class CurrentMethodExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        // LoHa, LoKr, OFT, HRA and BOFT adapt nn.Linear only, so PEFT wrote no GPT-2 case for them
        foreach (var (method, gpt2) in new[] { ("loha", false), ("lokr", false), ("oft", false), ("hra", false), ("boft", false), ("vera", true), ("adalora", true) })
            foreach (var arch in Paths.Archs.Where(a => gpt2 || a != "gpt2"))
                data.Add(arch, method);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Merged_export_matches_peft_merge_and_unload(string arch, string method)
    {
        var caseDir = Paths.CurrentCase(arch, method);
        var dir = TempExports.FreshPath();
        try
        {
            OnnxExport.Export(Paths.Case(arch, "base_model"), Path.Combine(caseDir, "adapter"), dir, new ExportOptions());
            var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(caseDir, "meta.json"))).RootElement;
            var expected = Reference.Rows(meta.GetProperty("generated_merged"))[0];
            var (diff, generated) = AdapterExportParity.RunCase(arch, caseDir, dir, "logits_merged", expected.Length);
            output.WriteLine($"{arch}/{method} merged: max |logit diff| vs logits_merged = {diff:g3}");
            Assert.Equal(expected, generated);
            Assert.Equal(Reference.Rows(meta.GetProperty("generated"))[0], generated);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("loha")]
    [InlineData("lokr")]
    [InlineData("oft")]
    [InlineData("hra")]
    [InlineData("boft")]
    [InlineData("vera")]
    [InlineData("adalora")]
    public void No_merge_is_refused_naming_the_method(string method)
    {
        var dir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() =>
            OnnxExport.Export(Paths.Case("opt", "base_model"), Paths.CurrentCase("opt", method + "/adapter"), dir, new ExportOptions { Merge = false }));
        Assert.Contains($"--no-merge applies to LoRA adapters only (a {method.ToUpperInvariant()} delta is always merged", ex.Message);
        TempExports.AssertNothingWritten(dir);
    }
}
