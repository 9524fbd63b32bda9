using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Verification;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// VeRA and AdaLoRA on shapes, ranks, targets and seeds the fixtures do not have: a random adapter saved by the
/// trainer, exported merged, and compared (`compare`) against the trainer's unmerged forward, two independent
/// computations of the delta (libtorch's matmuls against the exporter's element loops).
/// </summary>
public class VeraAdaLoraOtherShapesTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases() => new()
    {
        // targets of different widths share one pair of projections, sliced per layer (fc1 64 -> 256, fc2 256 -> 64)
        { "opt", """{"peft_type": "VERA", "r": 8, "init_weights": false, "projection_prng_key": 5, "target_modules": ["q_proj", "fc1", "fc2"]}""" },
        // GPT-2's Conv1D: the delta lands transposed in the [in, out] weight
        { "gpt2", """{"peft_type": "VERA", "r": 4, "init_weights": false, "projection_prng_key": 11, "target_modules": ["c_attn", "c_fc", "mlp.c_proj"]}""" },
        { "gpt2", """{"peft_type": "ADALORA", "init_r": 3, "target_r": 3, "lora_alpha": 5, "init_lora_weights": false, "target_modules": ["c_attn", "c_fc"]}""" },
        { "t5", """{"peft_type": "ADALORA", "init_r": 6, "target_r": 6, "lora_alpha": 2, "init_lora_weights": false, "target_modules": ["q", "v", "wi", "wo"]}""" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void Export_matches_the_trainers_adapted_model(string arch, string configJson)
    {
        var adapterDir = Paths.TempDir("peft-onnx-vera-shape");
        var onnxDir = TempExports.FreshPath();
        try
        {
            var config = AdapterConfig.Parse(System.Text.Encoding.UTF8.GetBytes(configJson), "adapter_config.json") with
            {
                TaskType = arch is "t5" ? AdapterConfig.Seq2SeqLm : AdapterConfig.CausalLm,
            };
            using (var model = PeftModel.Create(ModelLoader.Load(Paths.Case(arch, "base_model")), config, seed: 7))
                model.Save(adapterDir);
            OnnxExport.Export(Paths.Case(arch, "base_model"), adapterDir, onnxDir, new ExportOptions());
            var report = CompareRunner.Run(new CompareRequest(Paths.Case(arch, "base_model"), adapterDir, onnxDir,
                Path.Combine(Paths.Case(arch), "inputs.safetensors"), null, null, null, null, null, null, 4, "cpu"), TextWriter.Null);
            output.WriteLine($"{arch} {config.PeftType}: max |diff| {report.MaxAbsDiff:g3} (tolerance {report.Tolerance:g3}, logit std {report.AdaptedLogitStd:g3}), greedy {report.GenerationsEqual}/{report.Generations}");
            Assert.True(report.AdaptedLogitStd > 0);
            Assert.True(report.Passed, $"max |diff| {report.MaxAbsDiff} > {report.Tolerance}");
            Assert.Equal(report.Generations, report.GenerationsEqual);
            if (arch != "t5")
            {
                using var baseReference = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
                var effect = baseReference.ReadFloat32("logits").Zip(AdapterExportParity.FixtureLogits(arch, onnxDir), (b, a) => Math.Abs(a - b)).Max();
                output.WriteLine($"{arch} {config.PeftType}: adapter effect max |logit change| {effect:g3}");
                Assert.True(effect > 0.05, $"adapter effect {effect}");
            }
        }
        finally
        {
            Directory.Delete(adapterDir, true);
            if (Directory.Exists(onnxDir)) Directory.Delete(onnxDir, true);
        }
    }
}
