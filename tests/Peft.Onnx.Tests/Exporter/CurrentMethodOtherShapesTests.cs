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
/// The methods beyond the five on shapes, ranks, patterns, targets and seeds the fixtures do not have: a random adapter
/// (init_weights false) saved by the trainer, exported merged, and compared (`compare`) against the trainer's unmerged
/// forward, two independent computations of the delta (libtorch's matmul / kron / solve against the exporter's element
/// loops).
/// </summary>
public class CurrentMethodOtherShapesTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases() => new()
    {
        // decompose_both with a factor cap: both Kronecker factors as rank products; fc1 with its own rank
        { "opt", """{"peft_type": "LOKR", "r": 1, "alpha": 3, "decompose_both": true, "decompose_factor": 4, "init_weights": false, "target_modules": ["q_proj", "k_proj", "fc1", "fc2"], "rank_pattern": {"fc1": 3}}""" },
        // a rank large enough that w2 is kept whole; every linear of the blocks
        { "llama", """{"peft_type": "LOKR", "r": 16, "alpha": 4, "init_weights": false, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}""" },
        // an encoder-decoder with a per-module alpha
        { "t5", """{"peft_type": "LOHA", "r": 2, "alpha": 5, "init_weights": false, "target_modules": ["q", "v", "wo"], "alpha_pattern": {"wo": 1.5}}""" },
        { "bloom", """{"peft_type": "LOHA", "r": 8, "alpha": 64, "init_weights": false, "target_modules": ["dense_h_to_4h", "dense_4h_to_h"]}""" },
        // VeRA: targets of different widths share one pair of projections, sliced per layer (fc1 64 -> 256, fc2 256 -> 64)
        { "opt", """{"peft_type": "VERA", "r": 8, "init_weights": false, "projection_prng_key": 5, "target_modules": ["q_proj", "fc1", "fc2"]}""" },
        // GPT-2's Conv1D: the delta lands transposed in the [in, out] weight
        { "gpt2", """{"peft_type": "VERA", "r": 4, "init_weights": false, "projection_prng_key": 11, "target_modules": ["c_attn", "c_fc", "mlp.c_proj"]}""" },
        { "gpt2", """{"peft_type": "ADALORA", "init_r": 3, "target_r": 3, "lora_alpha": 5, "init_lora_weights": false, "target_modules": ["c_attn", "c_fc"]}""" },
        { "t5", """{"peft_type": "ADALORA", "init_r": 6, "target_r": 6, "lora_alpha": 2, "init_lora_weights": false, "target_modules": ["q", "v", "wi", "wo"]}""" },
        // BOFT: two butterfly factors on every linear of the blocks (fc1 has 64 inputs, fc2 128)
        { "opt", """{"peft_type": "BOFT", "boft_block_size": 8, "boft_block_num": 0, "boft_n_butterfly_factor": 2, "init_weights": false, "target_modules": ["q_proj", "k_proj", "out_proj", "fc1", "fc2"]}""" },
        // a block count, three factors
        { "llama", """{"peft_type": "BOFT", "boft_block_size": 0, "boft_block_num": 8, "boft_n_butterfly_factor": 3, "init_weights": false, "target_modules": ["q_proj", "o_proj", "down_proj"]}""" },
        // an encoder-decoder, one factor, small blocks
        { "t5", """{"peft_type": "BOFT", "boft_block_size": 4, "boft_block_num": 0, "boft_n_butterfly_factor": 1, "init_weights": false, "target_modules": ["k", "wo"]}""" },
        { "bloom", """{"peft_type": "BOFT", "boft_block_size": 16, "boft_block_num": 0, "boft_n_butterfly_factor": 2, "init_weights": false, "target_modules": ["dense_h_to_4h", "dense_4h_to_h"]}""" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void Export_matches_the_trainers_adapted_model(string arch, string configJson)
    {
        var adapterDir = Paths.TempDir("peft-onnx-method-shape");
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
                // the adapter changes the model: the export's logits are not the base model's
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
