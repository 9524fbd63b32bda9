using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Training;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// FourierFT compiled to ONNX (always merged) against current PEFT (tests/fixtures/peft-current): merge_and_unload's
/// outputs, and on GPT-2, where PEFT 0.13.2 cannot merge, its unmerged outputs; bad adapters refused alike by the
/// trainer and the exporter.
/// </summary>
public class FourierFtExportTests(ITestOutputHelper output)
{
    public static TheoryData<string> Archs() => new(Paths.Archs);

    [Theory, MemberData(nameof(Archs))]
    public void Merged_export_matches_peft(string arch)
    {
        var caseDir = Paths.CurrentCase(arch, "fourierft");
        var dir = TempExports.FreshPath();
        try
        {
            OnnxExport.Export(Paths.Case(arch, "base_model"), Path.Combine(caseDir, "adapter"), dir, new ExportOptions());
            var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(caseDir, "meta.json"))).RootElement;
            var merged = arch != "gpt2";
            var expected = Reference.Rows(meta.GetProperty(merged ? "generated_merged" : "generated"))[0];
            var (diff, generated) = AdapterExportParity.RunCase(arch, caseDir, dir, merged ? "logits_merged" : "logits", expected.Length);
            output.WriteLine($"{arch}/fourierft: max |logit diff| = {diff:g3}");
            Assert.Equal(expected, generated);
            Assert.Equal(Reference.Rows(meta.GetProperty("generated"))[0], generated);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private const string Spectrum = "base_model.model.transformer.h.0.self_attention.query_key_value.fourierft_spectrum";

    public static TheoryData<string, string, string> BadAdapters() => new()
    {
        // changed key or "reshape", value (JSON; "remove" drops the key; the reshaped tensor's new shape), expected part of the message
        { "random_loc_seed", "remove", "random_loc_seed is missing or null (expected the integer seed of the spectrum positions, which PEFT never saves)" },
        { "random_loc_seed", "null", "random_loc_seed is missing or null" },
        { "reshape", "[32]", $"tensor '{Spectrum}' has shape [32] but the base model needs [64] (FourierFT spectrum, n_frequency = 64 on 'transformer.h.0.self_attention.query_key_value')" },
        { "n_frequency", "20000", "n_frequency = 20000 for 'transformer.h.0.self_attention.query_key_value' is invalid (expected 1 to in * out = 12288)" },
        { "bias", "\"all\"", "bias = \"all\" is invalid (expected \"none\"" },
        { "layers_to_transform", "[1]", "layers_to_transform = [1] is not supported for FOURIERFT adapters" },
    };

    [Theory, MemberData(nameof(BadAdapters))]
    public void Trainer_and_exporter_refuse_the_same_adapter_with_the_same_message(string key, string value, string expected)
    {
        var source = Paths.CurrentCase("bloom", "fourierft/adapter");
        var adapter = Paths.TempDir("peft-onnx-bad-fourierft");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        if (value == "remove") config.Remove(key);
        else if (key != "reshape") config[key] = JsonNode.Parse(value);
        File.WriteAllText(Path.Combine(adapter, AdapterFormat.ConfigFile), config.ToJsonString());
        using (var weights = SafeTensorsFile.Open(Path.Combine(source, AdapterFormat.WeightsFile)))
        {
            TensorData Copy(string n)
            {
                if (key != "reshape" || n != Spectrum) return TensorData.FromFloat32(n, weights[n].Shape, weights.ReadFloat32(n));
                var shape = JsonSerializer.Deserialize<long[]>(value)!;
                return TensorData.FromFloat32(n, shape, new float[shape.Aggregate(1L, (a, b) => a * b)]);
            }
            SafeTensorsWriter.Write(Path.Combine(adapter, AdapterFormat.WeightsFile), weights.Names.Select(Copy).ToList(), AdapterFormat.WeightsMetadata);
        }
        SameRefusal.Check("bloom", adapter, expected);
    }

    [Fact]
    public void No_merge_is_refused_naming_the_method()
    {
        var dir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() =>
            OnnxExport.Export(Paths.Case("opt", "base_model"), Paths.CurrentCase("opt", "fourierft/adapter"), dir, new ExportOptions { Merge = false }));
        Assert.Contains("--no-merge applies to LoRA adapters only (a FOURIERFT delta is always merged", ex.Message);
        TempExports.AssertNothingWritten(dir);
    }
}
