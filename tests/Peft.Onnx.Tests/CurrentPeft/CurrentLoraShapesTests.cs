using Peft.Onnx.Core.Peft;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.Lora;
using Peft.Onnx.Verification;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.CurrentPeft;

/// <summary>
/// Shapes, seeds and ranks the fixtures lack: a DoRA adapter with rank and alpha patterns, rsLoRA, all-linear minus
/// an excluded kind, random B and magnitudes away from the weight norms; a lora_bias adapter with random biases.
/// Each is saved, exported merged and unmerged, and both exports are compared with the adapted TorchSharp model.
/// </summary>
public class CurrentLoraShapesTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Variants
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var arch in Paths.Archs)
                foreach (var variant in new[] { "dora", "bias" }) data.Add(arch, variant);
            return data;
        }
    }

    private static readonly Dictionary<string, string> Excluded = new()
    {
        ["bloom"] = "dense_4h_to_h", ["gpt2"] = "mlp.c_proj", ["llama"] = "up_proj", ["opt"] = "fc1", ["t5"] = "wo", ["mt5"] = "wi_1",
    };

    [Theory, MemberData(nameof(Variants))]
    public void Exports_agree_with_the_adapted_model(string arch, string variant)
    {
        var dir = Paths.TempDir("peft-onnx-lora-shapes");
        try
        {
            var adapter = Path.Combine(dir, "adapter");
            var config = variant == "dora"
                ? new LoraConfig
                {
                    R = 3, LoraAlpha = 5, UseRslora = true, InitLoraWeights = InitLoraWeights.Random, UsesDora = true,
                    TargetModules = TargetModules.FromPattern("all-linear"), ExcludedModules = TargetModules.FromNames([Excluded[arch]]),
                    RankPattern = new() { [Excluded[arch] == "up_proj" ? "down_proj" : "lm_head_never"] = 2 },
                }
                : new LoraConfig { R = 2, LoraAlpha = 3, InitLoraWeights = InitLoraWeights.Random, HasLoraBias = true };
            using (var model = PeftModel.Create(ModelLoader.Load(CurrentLoraCases.BaseDir(arch)), config, seed: arch.Length + variant.Length))
            {
                var tuner = (LoraTuner)model.Tuner;
                if (variant == "dora") Assert.DoesNotContain(tuner.Layers, l => l.Path.EndsWith("." + Excluded[arch], StringComparison.Ordinal));
                using (no_grad())
                {
                    var generator = new Generator(7);
                    foreach (var layer in tuner.Layers)
                    {
                        // magnitudes and biases away from their no-op starts, so every term of the layer shows
                        using var noise = randn(layer.Target.Linear.OutFeatures, generator: generator);
                        if (layer.Magnitude is { } m) m.mul_(noise.mul_(0.3).add_(1));
                        else layer.BBias!.copy_(noise);
                    }
                }
                model.Save(adapter);
            }
            foreach (var merge in new[] { true, false })
            {
                var onnx = Path.Combine(dir, merge ? "merged" : "unmerged");
                OnnxExport.Export(CurrentLoraCases.BaseDir(arch), adapter, onnx, new ExportOptions { Merge = merge });
                var report = CompareRunner.Run(new CompareRequest(CurrentLoraCases.BaseDir(arch), adapter, onnx, Path.Combine(Paths.Case(arch), "inputs.safetensors"),
                    null, null, null, null, null, null, 4, "cpu"), TextWriter.Null);
                output.WriteLine($"{arch}/{variant} {(merge ? "merged" : "unmerged")}: max |diff| {report.MaxAbsDiff:g3} (tolerance {report.Tolerance:g3}), adapted logit std {report.AdaptedLogitStd:g3}");
                Assert.True(report.Passed, $"{arch}/{variant} {(merge ? "merged" : "unmerged")}: max |diff| {report.MaxAbsDiff:g4} > {report.Tolerance:g4}");
                Assert.Equal(1.0, report.Top1Agreement);
                Assert.Equal(report.Generations, report.GenerationsEqual);
            }
        }
        finally { Directory.Delete(dir, true); }
    }
}
