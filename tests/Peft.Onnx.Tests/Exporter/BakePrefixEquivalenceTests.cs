using System.Text.Json.Nodes;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// A baked prefix is what transformers does with a past of nv tokens: the baked graph equals the base graph fed the
/// prefix as past_key_values, with nv ones before the mask and positions nv + t (PEFT drops position_ids). Also on a
/// grouped-query LLaMA (prefix sized with num_key_value_heads), and with a right-padded row. The prefix-in-cache graph
/// written beside model.onnx (the Runtime's) gives the same logits with the prefix in its present, and its second step,
/// fed that present, equals the base graph's second step and model.onnx's.
/// </summary>
public class BakePrefixEquivalenceTests
{
    [Theory]
    [InlineData("gpt2", 0)]
    [InlineData("opt", 0)]
    [InlineData("bloom", 0)]   // ALiBi; attention (and the cache append) one MultiHeadAttention node
    [InlineData("llama", 0)]
    [InlineData("llama", 2)]   // grouped-query attention: 4 heads, 2 key/value heads
    public void Baked_prefix_equals_the_base_graph_with_the_prefix_as_past(string arch, int kvHeads)
    {
        var model = kvHeads == 0 ? Paths.Case(arch, "base_model") : GqaLlama(kvHeads);
        var config = ModelConfig.Load(model);
        var d = config.Dimensions;
        const int nv = 3, batch = 2, seq = 5;
        var adapterDir = PrefixAdapter(d.NumLayers, d.NumKeyValueHeads, d.HeadDim, nv);
        var baked = Path.Combine(Path.GetTempPath(), $"peft-onnx-bake-{Guid.NewGuid():N}");
        var base_ = Path.Combine(Path.GetTempPath(), $"peft-onnx-bake-{Guid.NewGuid():N}");
        try
        {
            OnnxExport.Export(model, adapterDir, baked, new ExportOptions());
            OnnxExport.ExportBase(model, base_);
            long[] ids = [5, 17, 99, 3, 250, /**/ 42, 7, 8, 0, 0];
            long[] mask = [1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0];

            using var bakedRunner = CausalLmForward.Open(Path.Combine(baked, CausalLmContract.ModelFile));
            var actual = bakedRunner.Run(ids, mask, batch);

            var prefix = BakePrefix.ForDecoder(PromptAdapter.Load(adapterDir, config), config);
            var keys = prefix.Keys.Select(k => Enumerable.Repeat(k, batch).SelectMany(x => x).ToArray()).ToArray();
            var values = prefix.Values.Select(v => Enumerable.Repeat(v, batch).SelectMany(x => x).ToArray()).ToArray();
            var fullMask = new long[batch * (nv + seq)];
            var positions = new long[batch * seq];
            for (int b = 0; b < batch; b++)
            {
                for (int t = 0; t < nv; t++) fullMask[b * (nv + seq) + t] = 1;
                for (int t = 0; t < seq; t++)
                {
                    fullMask[b * (nv + seq) + nv + t] = mask[b * seq + t];
                    positions[b * seq + t] = nv + t;
                }
            }
            using var baseRunner = CausalLmForward.Open(Path.Combine(base_, CausalLmContract.ModelFile));
            var expected = baseRunner.Run(ids, fullMask, batch, new KeyValueCache(batch, nv, keys, values), positions);

            Assert.Equal(expected.LogitsShape, actual.LogitsShape);
            Tolerance.AssertLogits(expected.Logits, actual.Logits, bakedRunner.VocabSize, Tolerance.RowsFromMask(mask), $"{arch} baked prefix");
            // present covers the real tokens only
            Assert.Equal(seq, actual.Present.Length);
            int rowsPerBatch = d.NumKeyValueHeads;
            for (int i = 0; i < d.NumLayers; i++)
            {
                var real = new List<float>();   // expected present [B, kv, nv + seq, d] without the prefix positions
                for (int r = 0; r < batch * rowsPerBatch; r++)
                    real.AddRange(expected.Present.Keys[i].AsSpan((r * (nv + seq) + nv) * d.HeadDim, seq * d.HeadDim).ToArray());
                Assert.Equal(real.Count, actual.Present.Keys[i].Length);
                Assert.True(real.Zip(actual.Present.Keys[i]).All(p => Math.Abs(p.First - p.Second) < 1e-5f), $"present.{i}.key");
            }

            // the prefix-in-cache graph: same logits; present = [prefix constants, the base graph's real positions]
            using var inCacheRunner = CausalLmForward.Open(Path.Combine(baked, CausalLmContract.PrefixInCacheFile));
            var inCache = inCacheRunner.Run(ids, mask, batch);
            Tolerance.AssertLogits(expected.Logits, inCache.Logits, inCacheRunner.VocabSize, Tolerance.RowsFromMask(mask), $"{arch} prefix in cache");
            Assert.Equal(nv + seq, inCache.Present.Length);
            for (int i = 0; i < d.NumLayers; i++)
            {
                AssertClose(expected.Present.Keys[i], inCache.Present.Keys[i], $"in-cache present.{i}.key");
                AssertClose(expected.Present.Values[i], inCache.Present.Values[i], $"in-cache present.{i}.value");
                for (int r = 0; r < batch * rowsPerBatch; r++)
                {
                    var stored = prefix.Keys[i].AsSpan((r % rowsPerBatch) * nv * d.HeadDim, nv * d.HeadDim).ToArray();
                    Assert.Equal(stored, inCache.Present.Keys[i].AsSpan(r * (nv + seq) * d.HeadDim, nv * d.HeadDim).ToArray());
                }
            }

            // a second step fed each graph's own present (mask over the real tokens only) equals the base graph's
            long[] next = [11, 23];
            var nextMask = new long[batch * (seq + 1)];
            var nextFullMask = new long[batch * (nv + seq + 1)];
            for (int b = 0; b < batch; b++)
            {
                Array.Copy(mask, b * seq, nextMask, b * (seq + 1), seq);
                nextMask[b * (seq + 1) + seq] = 1;
                Array.Copy(fullMask, b * (nv + seq), nextFullMask, b * (nv + seq + 1), nv + seq);
                nextFullMask[b * (nv + seq + 1) + nv + seq] = 1;
            }
            var expectedNext = baseRunner.Run(next, nextFullMask, batch, expected.Present, [nv + seq, nv + seq]);
            var inCacheNext = inCacheRunner.Run(next, nextMask, batch, inCache.Present);
            var bakedNext = bakedRunner.Run(next, nextMask, batch, actual.Present);
            Tolerance.AssertLogits(expectedNext.Logits, inCacheNext.Logits, inCacheRunner.VocabSize, null, $"{arch} prefix in cache, second step");
            Tolerance.AssertLogits(expectedNext.Logits, bakedNext.Logits, bakedRunner.VocabSize, null, $"{arch} baked prefix, second step");
            Assert.Equal(nv + seq + 1, inCacheNext.Present.Length);
            Assert.Equal(seq + 1, bakedNext.Present.Length);
            for (int i = 0; i < d.NumLayers; i++)
                AssertClose(expectedNext.Present.Keys[i], inCacheNext.Present.Keys[i], $"second step in-cache present.{i}.key");
        }
        finally
        {
            foreach (var dir in new[] { adapterDir, baked, base_ }) if (Directory.Exists(dir)) Directory.Delete(dir, true);
            if (kvHeads != 0) Directory.Delete(model, true);
        }
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int j = 0; j < expected.Length; j++)
            Assert.True(Math.Abs(expected[j] - actual[j]) < 1e-5f, $"{what}[{j}]: {expected[j]} vs {actual[j]}");
    }

    /// <summary>A PREFIX_TUNING adapter with random prompt_embeddings [nv, layers * 2 * kv_heads * head_dim] (as newer PEFT sizes it under GQA).</summary>
    private static string PrefixAdapter(int layers, int kvHeads, int headDim, int nv)
    {
        var dir = Paths.TempDir("peft-onnx-prefix-adapter");
        int tokenDim = kvHeads * headDim;
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), $$"""
            { "peft_type": "PREFIX_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": {{nv}}, "token_dim": {{tokenDim}},
              "num_attention_heads": {{kvHeads}}, "num_layers": {{layers}}, "num_transformer_submodules": 1,
              "encoder_hidden_size": {{tokenDim}}, "prefix_projection": false, "inference_mode": true }
            """);
        var random = new Random(7);
        var values = Enumerable.Range(0, nv * layers * 2 * tokenDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        SafeTensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), [TensorData.FromFloat32("prompt_embeddings", [nv, layers * 2 * tokenDim], values)]);
        return dir;
    }

    /// <summary>The fixture LLaMA with num_key_value_heads = <paramref name="kvHeads"/>: k_proj/v_proj keep their first kv_heads * head_dim rows.</summary>
    internal static string GqaLlama(int kvHeads)
    {
        var source = Paths.Case("llama", "base_model");
        var dir = Paths.TempDir("peft-onnx-gqa");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        config["num_key_value_heads"] = kvHeads;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        int headDim = config["hidden_size"]!.GetValue<int>() / config["num_attention_heads"]!.GetValue<int>();
        using var st = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var tensors = st.Entries.Select(e =>
        {
            if (!e.Name.EndsWith("k_proj.weight", StringComparison.Ordinal) && !e.Name.EndsWith("v_proj.weight", StringComparison.Ordinal))
                return new TensorData(e.Name, e.DType, e.Shape, st.GetBytes(e.Name).ToArray());
            var w = st.ReadFloat32(e.Name);
            int rows = kvHeads * headDim;
            return TensorData.FromFloat32(e.Name, [rows, e.Shape[1]], w[..(rows * (int)e.Shape[1])]);
        }).ToList();
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);
        return dir;
    }
}
