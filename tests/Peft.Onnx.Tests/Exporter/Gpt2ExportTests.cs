using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The exported GPT-2 graph against transformers 4.33 (fixture), itself (cache vs no cache) and the trainer's model.</summary>
public class Gpt2ExportTests(ITestOutputHelper output)
{
    [Fact]
    public void Fixture_logits_match_transformers() => DecoderExportChecks.FixtureLogits("gpt2", output);

    [Fact]
    public void Fixture_greedy_generation_with_kv_cache_matches_transformers() => DecoderExportChecks.FixtureGreedy("gpt2");

    [Fact]
    public void Left_padded_cached_decoding_equals_full_prefill() => DecoderExportChecks.CachedDecodingEqualsFullPrefill(Paths.Case("gpt2", "base_model"));

    [Fact]
    public void Graph_takes_position_ids_and_ties_the_head_to_wte()
    {
        var dir = TempExports.Base(Paths.Case("gpt2", "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            Assert.Equal(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "num_logits_to_keep"],
                model.Graph.Input.Select(i => i.Name));
            NumLogitsToKeepChecks.AssertDefaultsToEveryPosition(model);
            Assert.Equal(["batch_size", "sequence_length"], model.Graph.Input[2].Type.TensorType.Shape.Dim.Select(d => d.DimParam));
            var nodes = model.Graph.Node.Select(n => n.Name).ToHashSet();
            Assert.Contains("/transformer/h.0/attn/c_attn/MatMul", nodes);
            Assert.Contains("/transformer/h.1/mlp/c_proj/Add", nodes);
            Assert.Contains("/transformer/ln_f/LayerNormalization", nodes);
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([64, 192], initializers["transformer.h.0.attn.c_attn.weight"].Dims); // Conv1D: [in, out] as stored
            Assert.Equal([128, 64], initializers["transformer.wpe.weight"].Dims);
            Assert.DoesNotContain("lm_head.weight", initializers.Keys);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Layouts the fixture does not cover, against the trainer's GPT-2 (the same transformers math in TorchSharp):
    /// scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn, other activations, n_inner, untied head.
    /// </summary>
    [Theory]
    [InlineData("\"scale_attn_by_inverse_layer_idx\": true, \"activation_function\": \"gelu\", \"n_inner\": 40, \"tie_word_embeddings\": false")]
    [InlineData("\"reorder_and_upcast_attn\": true, \"scale_attn_by_inverse_layer_idx\": true, \"activation_function\": \"quick_gelu\"")]
    [InlineData("\"scale_attn_weights\": false, \"activation_function\": \"relu\", \"n_layer\": 3")]
    public void Other_layouts_match_the_trainer_model(string extra)
    {
        var json = $$"""
            { "model_type": "gpt2", "vocab_size": 100, "n_embd": 48, "n_layer": 2, "n_head": 4, "n_positions": 32,
              "layer_norm_epsilon": 1e-5, "bos_token_id": 1, "eos_token_id": 1, {{extra}} }
            """;
        DecoderExportChecks.MatchesTrainer(json, output);
    }
}
