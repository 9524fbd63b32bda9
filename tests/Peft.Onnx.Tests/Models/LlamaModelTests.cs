using System.Globalization;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>LLaMA beyond the fixture: the KV cache, left padding with RoPE positions, inputs_embeds, grouped-query attention.</summary>
public class LlamaModelTests() : PositionIdsCausalLmTests("llama", "model.layers.0.self_attn.q_proj.weight")
{
    private const int Hidden = 32, Heads = 4, KvHeads = 2, Inter = 48, Vocab = 60, Layers = 2;
    private const int HeadDim = Hidden / Heads;

    [Fact]
    public void Grouped_query_attention_equals_the_same_model_with_repeated_key_value_heads()
    {
        var root = Paths.TempDir("llama-gqa");
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var gqaDir = Path.Combine(root, "gqa");
            var mhaDir = Path.Combine(root, "mha");
            var weights = RandomWeights(new LlamaArchitecture(Config(KvHeads)), seed: 3);
            WriteModel(gqaDir, KvHeads, weights);
            // The same math laid out as multi-head attention: kv head j serves query heads j*groups .. j*groups+groups-1
            // (repeat_kv), so each k/v row block is repeated for its group.
            WriteModel(mhaDir, Heads, weights.ToDictionary(kv => kv.Key, kv => IsKeyOrValue(kv.Key) ? RepeatHeads(kv.Value) : kv.Value));

            using var gqa = (LlamaForCausalLM)ModelLoader.Load(gqaDir);
            using var mha = (LlamaForCausalLM)ModelLoader.Load(mhaDir);

            // Parameter count: k and v are [kv_heads * head_dim, hidden], everything else as multi-head attention.
            long perLayer = 2L * Hidden * Hidden + 2L * KvHeads * HeadDim * Hidden + 3L * Hidden * Inter + 2 * Hidden;
            long expected = 2L * Vocab * Hidden + Layers * perLayer + Hidden;
            Assert.Equal(expected, gqa.Architecture.CountParameters());
            Assert.Equal(expected, gqa.Parameters.CountElements());
            Assert.Equal([(long)KvHeads * HeadDim, Hidden], gqa.Parameters["model.layers.1.self_attn.k_proj.weight"].shape);

            var (ids, mask) = CausalLmChecks.LeftPad([[5, 17, 30, 44, 9, 59, 12], [7, 3, 25]]);
            var positions = CausalLmChecks.PositionsFromMask(mask);
            var expectedLogits = mha.Forward(new CausalLmInput(ids, mask, PositionIds: positions)).Logits;
            var actual = gqa.Forward(new CausalLmInput(ids, mask, PositionIds: positions, UseCache: true));
            CausalLmChecks.AssertClose(expectedLogits, actual.Logits, "GQA vs repeated heads");

            // The cache keeps the kv heads un-repeated, and cached steps still agree.
            Assert.Equal([2L, KvHeads, 7, HeadDim], actual.PresentKeyValues!.Self[0].Key.shape);
            var next = tensor(new long[] { 40, 41 }, [2, 1]);
            var mask2 = cat([mask, ones(2, 1, dtype: int64)], 1);
            var pos2 = CausalLmChecks.PositionsFromMask(mask2)[.., ^1..];
            var cached = gqa.Forward(new CausalLmInput(next, mask2, PastKeyValues: actual.PresentKeyValues, PositionIds: pos2));
            var full = mha.Forward(new CausalLmInput(cat([ids, next], 1), mask2, PositionIds: CausalLmChecks.PositionsFromMask(mask2)));
            CausalLmChecks.AssertClose(full.Logits[.., ^1..], cached.Logits, "GQA cached step");
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void Architecture_lists_linears_in_module_order_with_bias_only_when_attention_bias()
    {
        var arch = new LlamaArchitecture(Config(KvHeads));
        Assert.Equal(
            ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
            arch.Linears.Take(7).Select(l => l.Path["model.layers.0.".Length..]));
        Assert.Equal("lm_head", arch.Linears[^1].Path);
        Assert.All(arch.Linears, l => Assert.False(l.HasBias));
        Assert.False(arch.HeadIsTied);

        var biased = new LlamaArchitecture(Config(KvHeads) with { AttentionBias = true, TieWordEmbeddings = true });
        Assert.Equal(4 * Layers, biased.Linears.Count(l => l.HasBias));
        Assert.True(biased.HeadIsTied);
        Assert.DoesNotContain(biased.Parameters, p => p.Name == "lm_head.weight");
        Assert.Equal([(long)KvHeads * HeadDim], biased.Parameters.Single(p => p.Name == "model.layers.0.self_attn.v_proj.bias").Shape);
        Assert.Equal(arch.CountParameters() - Vocab * Hidden + Layers * (2L * Hidden + 2L * KvHeads * HeadDim), biased.CountParameters());
    }

    private static LlamaConfig Config(int kvHeads) => new()
    {
        ModelType = "llama", VocabSize = Vocab, HiddenSize = Hidden, IntermediateSize = Inter, NumHiddenLayers = Layers,
        NumAttentionHeads = Heads, NumKeyValueHeads = kvHeads, MaxPositionEmbeddings = 64, RopeTheta = 500.0,
    };

    private static bool IsKeyOrValue(string name) => name.EndsWith(".k_proj.weight") || name.EndsWith(".v_proj.weight");

    /// <summary>[kv_heads * head_dim, hidden] -> [heads * head_dim, hidden], each kv head's rows repeated for its query group.</summary>
    private static float[] RepeatHeads(float[] w) =>
        tensor(w, [KvHeads, 1, HeadDim, Hidden]).expand(KvHeads, Heads / KvHeads, HeadDim, Hidden).contiguous().data<float>().ToArray();

    private static Dictionary<string, float[]> RandomWeights(LlamaArchitecture arch, int seed)
    {
        var random = new Random(seed);
        return arch.Parameters.ToDictionary(p => p.Name, p =>
        {
            var values = new float[p.ElementCount];
            // Norm weights around 1, the rest small, so logits stay in a range where 1e-4 is meaningful.
            bool norm = p.Name.EndsWith("norm.weight");
            for (int i = 0; i < values.Length; i++) values[i] = (float)((norm ? 1.0 : 0.0) + 0.2 * (random.NextDouble() - 0.5));
            return values;
        });
    }

    private static void WriteModel(string dir, int kvHeads, Dictionary<string, float[]> weights)
    {
        Directory.CreateDirectory(dir);
        var config = Config(kvHeads);
        var arch = new LlamaArchitecture(config);
        File.WriteAllText(Path.Combine(dir, "config.json"), string.Create(CultureInfo.InvariantCulture, $$"""
            {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": {{Vocab}}, "hidden_size": {{Hidden}},
             "intermediate_size": {{Inter}}, "num_hidden_layers": {{Layers}}, "num_attention_heads": {{Heads}},
             "num_key_value_heads": {{kvHeads}}, "max_position_embeddings": 64, "rope_theta": {{config.RopeTheta}},
             "rms_norm_eps": 1e-06, "hidden_act": "silu", "tie_word_embeddings": false, "pad_token_id": 0, "eos_token_id": 1}
            """));
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"),
            arch.Parameters.Select(p => TensorData.FromFloat32(p.Name, p.Shape, weights[p.Name])));
    }
}
