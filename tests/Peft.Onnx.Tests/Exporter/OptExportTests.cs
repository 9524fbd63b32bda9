using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The exported OPT graph against transformers 4.33 (fixture), itself (cache vs no cache) and the trainer's model.</summary>
public class OptExportTests(ITestOutputHelper output)
{
    [Fact]
    public void Fixture_logits_match_transformers() => DecoderExportChecks.FixtureLogits("opt", output);

    [Fact]
    public void Fixture_greedy_generation_with_kv_cache_matches_transformers() => DecoderExportChecks.FixtureGreedy("opt");

    [Fact]
    public void Left_padded_cached_decoding_equals_full_prefill() => DecoderExportChecks.CachedDecodingEqualsFullPrefill(Paths.Case("opt", "base_model"));

    [Fact]
    public void Graph_derives_positions_from_the_mask_and_ties_the_head()
    {
        var dir = TempExports.Base(Paths.Case("opt", "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            Assert.Equal(["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "num_logits_to_keep"],
                model.Graph.Input.Select(i => i.Name));
            NumLogitsToKeepChecks.AssertDefaultsToEveryPosition(model);
            var nodes = model.Graph.Node.Select(n => n.Name).ToHashSet();
            Assert.Contains("/model/decoder/embed_positions/CumSum", nodes);
            Assert.Contains("/model/decoder/layers.0/self_attn/q_proj/MatMul", nodes);
            Assert.Contains("/model/decoder/layers.1/fc2/Add", nodes);
            Assert.Contains("/model/decoder/final_layer_norm/LayerNormalization", nodes);
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([130, 64], initializers["model.decoder.embed_positions.weight"].Dims); // max_position_embeddings + offset 2
            Assert.Equal([64, 64], initializers["model.decoder.layers.0.self_attn.k_proj.weight"].Dims);
            Assert.DoesNotContain("lm_head.weight", initializers.Keys);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// Layouts the fixture does not cover, against the trainer's OPT (the same transformers math in TorchSharp):
    /// opt-350m style (project_in/out, post-LN, no decoder final_layer_norm), LayerNorms without parameters and
    /// linears without bias (untied head), and a pre-LN model converted with _remove_final_layer_norm.
    /// </summary>
    [Theory]
    [InlineData("\"word_embed_proj_dim\": 32, \"do_layer_norm_before\": false, \"activation_function\": \"gelu\"")]
    [InlineData("\"layer_norm_elementwise_affine\": false, \"enable_bias\": false, \"tie_word_embeddings\": false")]
    [InlineData("\"_remove_final_layer_norm\": true, \"activation_function\": \"gelu_new\"")]
    public void Other_layouts_match_the_trainer_model(string extra)
    {
        var json = $$"""
            { "model_type": "opt", "vocab_size": 100, "hidden_size": 48, "num_hidden_layers": 2, "ffn_dim": 96,
              "num_attention_heads": 4, "max_position_embeddings": 40, "pad_token_id": 1, "bos_token_id": 2,
              "eos_token_id": 2, {{extra}} }
            """;
        DecoderExportChecks.MatchesTrainer(json, output);
    }
}
