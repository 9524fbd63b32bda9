using Peft.Onnx.Core;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>Bad input to a multi-adapter export or its runtime: one line naming what is wrong, nothing written, the loaded model unchanged.</summary>
public class MultiAdapterRefusalTests
{
    private const string Arch = "bloom";

    private static PeftOnnxException Refused(params (string Name, string Dir)[] adapters) => RefusedOn(Paths.Case(Arch, "base_model"), adapters);

    private static PeftOnnxException RefusedOn(string baseDir, params (string Name, string Dir)[] adapters)
    {
        var outDir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() =>
            MultiAdapterExport.Export(baseDir, adapters.Select(a => new NamedAdapter(a.Name, a.Dir)).ToList(), outDir, new ExportOptions()));
        TempExports.AssertNothingWritten(outDir);
        Assert.DoesNotContain('\n', ex.Message);
        return ex;
    }

    private static string Lora => Paths.Case(Arch, "lora/adapter_trained");

    [Fact]
    public void Two_adapters_with_one_name_are_refused() =>
        Assert.Contains("two adapters are named 'x'", Refused(("x", Lora), ("x", Paths.Case(Arch, "ia3/adapter_trained"))).Message);

    [Theory]
    [InlineData("1st")]
    [InlineData("a b")]
    [InlineData("")]
    [InlineData("x/y")]
    public void A_name_that_is_not_a_plain_identifier_is_refused(string name) =>
        Assert.Contains("is not a plain identifier", Refused((name, Lora)).Message);

    [Fact]
    public void An_adapter_made_for_another_base_is_refused_naming_the_tensor_and_both_shapes()
    {
        // the fixture's bloom (hidden 64) adapter on the bundled tiny-bloom-fin (hidden 256)
        var message = RefusedOn(Path.Combine(Paths.Models, "tiny-bloom-fin"), ("small", Lora)).Message;
        Assert.Contains("'base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.weight' has shape [4, 64] but the base model needs [4, 256]", message);
    }

    [Fact]
    public void A_method_that_cannot_be_stacked_is_refused_naming_it() =>
        Assert.Contains("is LOHA", Refused(("ok", Lora), ("soft", Paths.Case(Arch, "prompt_tuning_random/adapter_trained")), ("loha", Paths.CurrentCase(Arch, "loha/adapter_trained"))).Message);

    [Fact]
    public void An_fp16_multi_adapter_export_quantized_or_not_is_refused_before_writing()
    {
        var quantize = new WeightQuantization(new QuantizationFormat(8, 32, true), 0, false);
        foreach (var (options, expected) in new[]
        {
            (new ExportOptions { DType = ExportDType.Fp16 }, "--dtype fp16 is not supported with named adapters yet"),
            (new ExportOptions { DType = ExportDType.Fp16, Quantize = quantize }, "--dtype fp16 with --quantize is not supported on the CPU"),
        })
        {
            var outDir = TempExports.FreshPath();
            var ex = Assert.Throws<PeftOnnxException>(() => MultiAdapterExport.Export(Paths.Case(Arch, "base_model"), [new NamedAdapter("a", Lora)], outDir, options));
            Assert.Contains(expected, ex.Message);
            TempExports.AssertNothingWritten(outDir);
        }
    }

    [Fact]
    public void An_unknown_adapter_in_a_request_lists_the_known_ones_and_leaves_the_model_usable()
    {
        using var model = OnnxModel.Load(MultiAdapterExportTests.MultiExport(Arch), DeviceOptions.Cpu);
        var ex = Assert.Throws<PeftOnnxException>(() => model.Generate(new GenerationRequest
        {
            InputIds = [[4, 5], [6, 7]], Adapters = ["plain", "missing"], Options = GenerationOptions.Greedy(2),
        }));
        Assert.Contains("unknown adapter 'missing'", ex.Message);
        Assert.Contains("plain, all_linear, dora, with_bias, ia3", ex.Message);
        Assert.Equal(2, model.Generate(new GenerationRequest { InputIds = [[4, 5]], Adapter = "plain", Options = GenerationOptions.Greedy(2) }).NewTokens[0].Length);
    }

    [Fact]
    public void An_adapter_name_on_an_export_without_adapters_is_refused()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => ExportedModels.Model("bloom").Generate(new GenerationRequest
        {
            InputIds = [[4, 5]], Adapter = "plain", Options = GenerationOptions.Greedy(2),
        }));
        Assert.Contains("holds no named adapters", ex.Message);
    }
}
