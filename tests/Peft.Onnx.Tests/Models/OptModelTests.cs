using System.Text;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>OPT beyond the fixture: left padding, the KV cache, the 350m layout (project_in/out, post-LN), counts.</summary>
public class OptModelTests() : MaskPositionedCausalLmTests("opt")
{
    /// <summary>
    /// Random weights in the layouts the fixture does not cover: opt-350m style (word_embed_proj_dim != hidden_size,
    /// post-LN, so no decoder final_layer_norm), and one without LayerNorm affine parameters or biases.
    /// </summary>
    [Theory]
    [InlineData("\"word_embed_proj_dim\": 32, \"do_layer_norm_before\": false, \"activation_function\": \"gelu\"", true, false)]
    [InlineData("\"layer_norm_elementwise_affine\": false, \"enable_bias\": false, \"tie_word_embeddings\": false", false, true)]
    [InlineData("\"_remove_final_layer_norm\": true, \"activation_function\": \"gelu_new\"", false, false)]
    public void Other_layouts_build_and_run(string extra, bool projected, bool finalLayerNorm)
    {
        var dir = Paths.TempDir("opt-layout");
        try
        {
            var json = $$"""
                { "model_type": "opt", "vocab_size": 100, "hidden_size": 48, "num_hidden_layers": 2, "ffn_dim": 96,
                  "num_attention_heads": 4, "max_position_embeddings": 40, "pad_token_id": 1, "bos_token_id": 2,
                  "eos_token_id": 2, {{extra}} }
                """;
            File.WriteAllText(Path.Combine(dir, "config.json"), json);
            var arch = (OptArchitecture)Architecture.For(ModelConfig.Load(dir));
            CausalLmChecks.WriteRandomWeights(arch, Path.Combine(dir, "model.safetensors"));

            using var model = (CausalLm)ModelLoader.Load(dir, out var report);
            Assert.Empty(report.Unexpected);
            Assert.Equal(arch.CountParameters(), model.Parameters.CountElements());
            Assert.Equal(projected, model.Linears.Layers.ContainsKey("model.decoder.project_in"));
            Assert.Equal(projected, model.Linears.Layers.ContainsKey("model.decoder.project_out"));
            Assert.Equal(finalLayerNorm, arch.HasFinalLayerNorm);
            Assert.Equal(finalLayerNorm && arch.Opt.LayerNormElementwiseAffine, model.Parameters.Contains("model.decoder.final_layer_norm.weight"));

            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var (ids, mask) = CausalLmChecks.LeftPad([[5, 17, 30, 44, 9], [77, 3]]);
                var output = model.Forward(new CausalLmInput(ids, mask, Labels: ids.masked_fill(mask.eq(0), -100)));
                Assert.Equal([2L, 5, 100], output.Logits.shape);
                Assert.True(output.Logits.isfinite().all().item<bool>());
                Assert.True(float.IsFinite(output.Loss!.item<float>()));
            }
            CausalLmChecks.LeftPaddingMatchesRowsAlone(model, CausalLmChecks.SmallVocabPrompts);
            CausalLmChecks.LeftPaddedCachedStepsMatchFullForward(model, 4, 12);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The real opt-125m and opt-350m configs give transformers' num_parameters() from the config alone.</summary>
    [Theory]
    [InlineData(768, 768, 12, 3072, 12, true, 125_239_296L)]
    [InlineData(1024, 512, 24, 4096, 16, false, 331_196_416L)]
    public void Parameter_count_of_real_configs(int hidden, int projDim, int layers, int ffn, int heads, bool preLn, long expected)
    {
        var json = $$"""
            { "model_type": "opt", "vocab_size": 50272, "hidden_size": {{hidden}}, "word_embed_proj_dim": {{projDim}},
              "num_hidden_layers": {{layers}}, "ffn_dim": {{ffn}}, "num_attention_heads": {{heads}},
              "max_position_embeddings": 2048, "do_layer_norm_before": {{(preLn ? "true" : "false")}} }
            """;
        var arch = Architecture.For(ModelConfig.Parse(Encoding.UTF8.GetBytes(json), "config.json"));
        Assert.Equal(expected, arch.CountParameters());
        Assert.Equal("lm_head", arch.Linears[^1].Path);
        Assert.Equal(projDim, arch.Linears[^1].InFeatures);
    }

    [Fact]
    public void Linear_modules_follow_named_modules_order()
    {
        var config = (OptConfig)ModelConfig.Parse(Encoding.UTF8.GetBytes(
            """{ "model_type": "opt", "hidden_size": 16, "word_embed_proj_dim": 8, "num_hidden_layers": 1, "ffn_dim": 32, "num_attention_heads": 2 }"""), "config.json");
        var paths = new OptArchitecture(config).Linears.Select(l => l.Path).ToArray();
        Assert.Equal(new[]
        {
            "model.decoder.project_out", "model.decoder.project_in",
            "model.decoder.layers.0.self_attn.k_proj", "model.decoder.layers.0.self_attn.v_proj",
            "model.decoder.layers.0.self_attn.q_proj", "model.decoder.layers.0.self_attn.out_proj",
            "model.decoder.layers.0.fc1", "model.decoder.layers.0.fc2", "lm_head",
        }, paths);
    }
}
