using System.Text.Json.Nodes;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// The exported LLaMA graph against transformers 4.33 (fixture), itself (cache vs no cache), a grouped-query model
/// vs the same model with its kv heads repeated, and the trainer's model.
/// </summary>
public class LlamaExportTests(ITestOutputHelper output)
{
    [Fact]
    public void Fixture_logits_match_transformers() => DecoderExportChecks.FixtureLogits("llama", output);

    [Fact]
    public void Fixture_greedy_generation_with_kv_cache_matches_transformers() => DecoderExportChecks.FixtureGreedy("llama");

    [Fact]
    public void Left_padded_cached_decoding_equals_full_prefill() => DecoderExportChecks.CachedDecodingEqualsFullPrefill(Paths.Case("llama", "base_model"));

    [Fact]
    public void Graph_takes_position_ids_and_keeps_an_untied_head()
    {
        var dir = TempExports.Base(Paths.Case("llama", "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            Assert.Equal(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "num_logits_to_keep"],
                model.Graph.Input.Select(i => i.Name));
            NumLogitsToKeepChecks.AssertDefaultsToEveryPosition(model);
            var nodes = model.Graph.Node.Select(n => n.Name).ToHashSet();
            Assert.Contains("/model/rotary_emb/Cos", nodes);
            Assert.Contains("/model/layers.0/self_attn/q_proj/MatMul", nodes);
            Assert.Contains("/model/layers.1/mlp/act_fn/Sigmoid", nodes);
            Assert.Contains("/model/norm/ReduceMean", nodes);
            Assert.Contains(model.Graph.Node, n => n.Name == "/lm_head/MatMul" && n.Output.Single() == "logits");
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([64, 1000], initializers["lm_head.weight"].Dims);
            Assert.Equal([64, 128], initializers["model.layers.0.mlp.gate_proj.weight"].Dims);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Position_ids_contract_is_cumsum_minus_one_with_pads_at_one()
    {
        long[] mask = [0, 0, 1, 1, 1, /**/ 1, 1, 1, 1, 1];
        Assert.Equal([1L, 1, 0, 1, 2, 0, 1, 2, 3, 4], CausalLmContract.PositionIdsFromMask(mask, 2, 5));
        Assert.Equal([1L, 2, 3, 4], CausalLmContract.PositionIdsFromMask(mask, 2, 2));
    }

    /// <summary>
    /// num_key_value_heads = 2 &lt; num_attention_heads = 4: the cache keeps 2 heads, and the logits equal those of
    /// the same model with k_proj/v_proj rows repeated into 4 kv heads (head h reads kv head h / 2), exported the same
    /// way; the grouped cache equals the repeated model's cache at heads 0 and 2. Cached decoding matches too.
    /// </summary>
    [Fact]
    public void Grouped_query_attention_equals_repeated_kv_heads()
    {
        var gqa = Paths.TempDir("peft-onnx-gqa");
        var mha = Paths.TempDir("peft-onnx-mha");
        string gqaOut = "", mhaOut = "";
        try
        {
            var config = JsonNode.Parse("""
                { "model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
                  "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": false }
                """)!;
            File.WriteAllText(Path.Combine(gqa, "config.json"), config.ToJsonString());
            var arch = (LlamaArchitecture)Architecture.For(ModelConfig.Load(gqa));
            DecoderExportChecks.WriteRandomWeights(arch, Path.Combine(gqa, "model.safetensors"), seed: 5);

            config["num_key_value_heads"] = 4;
            File.WriteAllText(Path.Combine(mha, "config.json"), config.ToJsonString());
            const int headDim = 16, groups = 2;
            using (var st = SafeTensorsFile.Open(Path.Combine(gqa, "model.safetensors")))
            {
                var tensors = st.Entries.Select(e =>
                {
                    var values = st.ReadFloat32(e.Name);
                    if (!e.Name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal) && !e.Name.EndsWith(".self_attn.v_proj.weight", StringComparison.Ordinal))
                        return TensorData.FromFloat32(e.Name, e.Shape, values);
                    long cols = e.Shape[1], kvHeads = e.Shape[0] / headDim;
                    var repeated = new float[values.Length * groups];
                    for (long h = 0; h < kvHeads * groups; h++)
                        Array.Copy(values, h / groups * headDim * cols, repeated, h * headDim * cols, headDim * cols);
                    return TensorData.FromFloat32(e.Name, [e.Shape[0] * groups, cols], repeated);
                }).ToList();
                SafeTensorsWriter.Write(Path.Combine(mha, "model.safetensors"), tensors);
            }

            gqaOut = TempExports.Base(gqa);
            mhaOut = TempExports.Base(mha);
            using var grouped = CausalLmForward.Open(Path.Combine(gqaOut, CausalLmContract.ModelFile));
            using var repeated = CausalLmForward.Open(Path.Combine(mhaOut, CausalLmContract.ModelFile));
            Assert.Equal((2, 4), (grouped.NumHeads, repeated.NumHeads));

            var (ids, mask, width) = DecoderExportChecks.LeftPad(DecoderExportChecks.Prompts);
            int batch = DecoderExportChecks.Prompts.Length;
            var a = grouped.Run(ids, mask, batch);
            var b = repeated.Run(ids, mask, batch);
            var rows = Tolerance.RowsFromMask(mask);
            output.WriteLine($"GQA vs repeated kv: max |logit diff| = {DecoderExportChecks.MaxDiff(b.Logits, a.Logits, grouped.VocabSize, rows):g3}");
            Tolerance.AssertLogits(b.Logits, a.Logits, grouped.VocabSize, rows, "grouped-query logits");

            int perHead = width * headDim;
            for (int layer = 0; layer < 2; layer++)
                for (int row = 0; row < batch; row++)
                    for (int kv = 0; kv < 2; kv++)
                    {
                        var actual = a.Present.Keys[layer].AsSpan((row * 2 + kv) * perHead, perHead).ToArray();
                        var expected = b.Present.Keys[layer].AsSpan((row * 4 + kv * groups) * perHead, perHead).ToArray();
                        Tolerance.AssertLogits(expected, actual, headDim, null, $"present.{layer}.key row {row} kv head {kv}");
                    }

            DecoderExportChecks.CachedDecodingEqualsFullPrefill(grouped);
        }
        finally
        {
            foreach (var d in new[] { gqa, mha, gqaOut, mhaOut })
                if (d.Length > 0 && Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    /// <summary>tie_word_embeddings = true: no lm_head initializer, and the logits of an untied copy whose lm_head is the embeddings.</summary>
    [Fact]
    public void Tied_head_reads_the_embeddings()
    {
        var source = Paths.Case("llama", "base_model");
        var tied = Paths.TempDir("peft-onnx-tied");
        var untied = Paths.TempDir("peft-onnx-untied");
        string tiedOut = "", untiedOut = "";
        try
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
            config["tie_word_embeddings"] = true;
            File.WriteAllText(Path.Combine(tied, "config.json"), config.ToJsonString());
            File.Copy(Path.Combine(source, "config.json"), Path.Combine(untied, "config.json"));
            using (var st = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors")))
            {
                var tensors = st.Entries.Where(e => e.Name != "lm_head.weight")
                    .Select(e => new TensorData(e.Name, e.DType, e.Shape, st.GetBytes(e.Name).ToArray())).ToList();
                SafeTensorsWriter.Write(Path.Combine(tied, "model.safetensors"), tensors);
                var emb = st["model.embed_tokens.weight"];
                tensors.Add(new TensorData("lm_head.weight", emb.DType, emb.Shape, st.GetBytes(emb.Name).ToArray()));
                SafeTensorsWriter.Write(Path.Combine(untied, "model.safetensors"), tensors);
            }
            tiedOut = TempExports.Base(tied);
            untiedOut = TempExports.Base(untied);
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(tiedOut, CausalLmContract.ModelFile)));
            Assert.DoesNotContain(model.Graph.Initializer, t => t.Name == "lm_head.weight");

            var (ids, mask, _) = DecoderExportChecks.LeftPad(DecoderExportChecks.Prompts);
            using var a = CausalLmForward.Open(Path.Combine(tiedOut, CausalLmContract.ModelFile));
            using var b = CausalLmForward.Open(Path.Combine(untiedOut, CausalLmContract.ModelFile));
            Tolerance.AssertLogits(b.Run(ids, mask, 3).Logits, a.Run(ids, mask, 3).Logits, a.VocabSize, Tolerance.RowsFromMask(mask), "tied head logits");
        }
        finally
        {
            foreach (var d in new[] { tied, untied, tiedOut, untiedOut })
                if (d.Length > 0 && Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    /// <summary>Other shapes against the trainer's LLaMA: grouped and multi-query attention, another rope_theta, another activation.</summary>
    [Theory]
    [InlineData("\"num_key_value_heads\": 2, \"rope_theta\": 500000.0")]
    [InlineData("\"num_key_value_heads\": 1, \"hidden_act\": \"gelu\", \"tie_word_embeddings\": true")]
    public void Other_layouts_match_the_trainer_model(string extra)
    {
        var json = $$"""
            { "model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 80, "num_hidden_layers": 2,
              "num_attention_heads": 4, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, {{extra}} }
            """;
        DecoderExportChecks.MatchesTrainer(json, output);
    }
}
