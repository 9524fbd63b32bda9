using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>
/// DoRA, lora_bias and exclude_modules compiled to ONNX against PEFT 0.13.2 / 0.20.0: merged exports against
/// merge_and_unload (or, where PEFT cannot merge a lora_B bias into a layer without one, against the adapted model),
/// unmerged exports (--no-merge) against the adapted model; logits and greedy generations.
/// </summary>
public class CurrentLoraExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases => CurrentLoraCases.All;

    [Theory, MemberData(nameof(Cases))]
    public void Merged_export_matches_peft(string arch, string method)
    {
        var dir = Export(arch, method, new ExportOptions());
        try
        {
            var meta = Reference.MetaAt(CurrentLoraCases.Dir(arch, method));
            // where PEFT merges, its merged outputs; where it cannot (lora_bias without a base bias), the adapted model's
            var (logits, generatedKey) = CurrentLoraCases.PeftMerges(arch, method) ? ("logits_merged", "generated_merged") : ("logits", "generated");
            var expected = Reference.Rows(meta.GetProperty(generatedKey))[0];
            var (diff, generated) = AdapterExportParity.RunCase(arch, CurrentLoraCases.Dir(arch, method), dir, logits, expected.Length);
            output.WriteLine($"{arch}/{method} merged: max |logit diff| vs {logits} = {diff:g3}");
            Assert.Equal(expected, generated);
            Assert.Equal(Reference.Rows(meta.GetProperty("generated"))[0], generated);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Unmerged_export_matches_the_adapted_model(string arch, string method)
    {
        var dir = Export(arch, method, new ExportOptions { Merge = false });
        try
        {
            var meta = Reference.MetaAt(CurrentLoraCases.Dir(arch, method));
            var expected = Reference.Rows(meta.GetProperty("generated"))[0];
            var (diff, generated) = AdapterExportParity.RunCase(arch, CurrentLoraCases.Dir(arch, method), dir, "logits", expected.Length);
            output.WriteLine($"{arch}/{method} unmerged: max |logit diff| vs logits = {diff:g3}");
            Assert.Equal(expected, generated);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>The unmerged DoRA graph keeps the per-output factor as an initializer; the merged lora_bias graph of a bias-less LLaMA adds the scaled bias.</summary>
    [Fact]
    public void Dora_and_added_bias_terms_are_initializers_named_after_the_module()
    {
        const string module = "model.layers.0.self_attn.q_proj";
        var dora = Export("llama", "lora_dora", new ExportOptions { Merge = false });
        var bias = Export("llama", "lora_bias", new ExportOptions());
        try
        {
            var doraInit = Initializers(dora);
            Assert.Equal([64L], doraInit[LoraBranches.MagnitudeScaleName(module)].Dims);
            Assert.Contains(LoraBranches.AName(module), doraInit.Keys);
            var biasInit = Initializers(bias);
            Assert.Equal([64L], biasInit[LoraBranches.AddedBiasName(module)].Dims);
            Assert.DoesNotContain(LoraBranches.AName(module), biasInit.Keys);
        }
        finally
        {
            Directory.Delete(dora, true);
            Directory.Delete(bias, true);
        }
    }

    [Fact]
    public void A_dora_magnitude_of_the_wrong_length_is_refused_naming_the_tensor_and_shapes()
    {
        var adapter = Paths.TempDir("peft-onnx-dora-bad");
        var dir = TempExports.FreshPath();
        try
        {
            var source = CurrentLoraCases.AdapterDir("opt", "lora_dora");
            File.Copy(Path.Combine(source, "adapter_config.json"), Path.Combine(adapter, "adapter_config.json"));
            CopyWithOneTensorCut(Path.Combine(source, "adapter_model.safetensors"), Path.Combine(adapter, "adapter_model.safetensors"),
                "base_model.model.model.decoder.layers.0.self_attn.q_proj.lora_magnitude_vector", 63);
            var error = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(CurrentLoraCases.BaseDir("opt"), adapter, dir, new ExportOptions()));
            Assert.Contains("lora_magnitude_vector' has shape [63]", error.Message);
            Assert.Contains("[64]", error.Message);
            Assert.Contains("use_dora", error.Message);
            TempExports.AssertNothingWritten(dir);
        }
        finally { Directory.Delete(adapter, true); }
    }

    /// <summary>Copies a safetensors file with tensor <paramref name="key"/> cut to its first <paramref name="length"/> values (1-D).</summary>
    internal static void CopyWithOneTensorCut(string from, string to, string key, int length)
    {
        using var file = SafeTensorsFile.Open(from);
        var tensors = file.Names.Select(n => n == key
            ? TensorData.FromFloat32(n, [length], file.ReadFloat32(n)[..length])
            : TensorData.FromFloat32(n, file[n].Shape, file.ReadFloat32(n))).ToList();
        SafeTensorsWriter.Write(to, tensors);
    }

    private static string Export(string arch, string method, ExportOptions options)
    {
        var dir = TempExports.FreshPath();
        OnnxExport.Export(CurrentLoraCases.BaseDir(arch), CurrentLoraCases.AdapterDir(arch, method), dir, options);
        return dir;
    }

    private static Dictionary<string, TensorProto> Initializers(string dir) =>
        ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile))).Graph.Initializer.ToDictionary(t => t.Name);
}
