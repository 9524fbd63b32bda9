using System.Text.Json.Nodes;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.PrefixTuning;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// Cases without a PEFT reference: cached generation through the tuner agrees with recomputing the whole sequence
/// (virtual tokens in the mask, positions counted past them), and prefix tuning under grouped-query attention.
/// </summary>
public class PromptLearningCacheTests
{
    public static TheoryData<string, string> Cases => new PromptLearningCases.TheoryDataBuilderFor(
        new[] { "bloom", "gpt2", "llama", "opt" }.SelectMany(a => new[] { "prompt_tuning_random", "p_tuning_lstm", "prefix_proj" }.Select(m => (a, m)))).Build();

    [Theory, MemberData(nameof(Cases))]
    public void Cached_generation_agrees_with_full_recomputation(string arch, string method)
    {
        using var model = PromptLearningCases.LoadSaved(arch, method);
        AssertCacheConsistent(model);
    }

    public static TheoryData<string, string> Seq2SeqCases => new PromptLearningCases.TheoryDataBuilderFor(
        new[] { "t5", "mt5" }.SelectMany(a => new[] { "prompt_tuning_text", "p_tuning_mlp", "prefix", "prefix_proj" }.Select(m => (a, m)))).Build();

    [Theory, MemberData(nameof(Seq2SeqCases))]
    public void Encoder_decoder_cached_generation_agrees_with_full_recomputation(string arch, string method)
    {
        using var model = PromptLearningCases.LoadSaved(arch, method);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(new long[] { 5, 17, 42, 99, 7, 250, 1 }, [1, 7]);
        var sequence = ((PromptLearningTuner)model.Tuner).Generate(input, null, new GreedyOptions(5, [-1], 0));
        Assert.Equal(6, sequence.shape[1]);
        var full = model.Forward(new Seq2SeqLmInput(input, ones(1, 7, dtype: int64), DecoderInputIds: sequence[.., ..^1]));
        Assert.Equal(sequence[0, 1..].data<long>().ToArray(), full.Logits[0].argmax(-1).data<long>().ToArray());
    }

    [Fact]
    public void Prefix_under_grouped_query_attention_uses_the_key_value_heads()
    {
        var dir = Paths.TempDir();
        try
        {
            WriteRandomLlama(dir, kvHeads: 2);
            var config = new PrefixTuningConfig { TaskType = AdapterConfig.CausalLm, NumVirtualTokens = 4, PrefixProjection = true, EncoderHiddenSize = 16 };
            using var model = PeftModel.Create(ModelLoader.Load(dir), config, seed: 3);
            var prepared = (PrefixTuningConfig)model.Config;
            Assert.Equal(32, prepared.TokenDim);          // 64 / 4 heads * 2 kv heads
            Assert.Equal(2, prepared.NumAttentionHeads);
            using (var scope = NewDisposeScope())
            {
                var past = ((PrefixTuner)model.Tuner).PastKeyValues(3);
                Assert.Equal(2, past.Self.Count);
                Assert.Equal(new long[] { 3, 2, 4, 16 }, past.Self[1].Key.shape);
                Assert.Equal(new long[] { 3, 2, 4, 16 }, past.Self[1].Value.shape);
            }
            var state = model.Tuner.AdapterStateDict();
            Assert.Equal(new long[] { 4, 2 * 2 * 32 }, state["prompt_embeddings"].shape);
            foreach (var t in state.Values) t.Dispose();
            AssertCacheConsistent(model);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>Greedy tokens with the cache equal the argmax of one uncached forward over prompt + tokens.</summary>
    private static void AssertCacheConsistent(PeftModel model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var prompt = tensor(new long[] { 5, 17, 42, 99, 7, 250 }, [1, 6]);
        var tuner = (PromptLearningTuner)model.Tuner;
        var sequence = tuner.Generate(prompt, null, new GreedyOptions(5, [-1], 0));
        Assert.Equal(11, sequence.shape[1]);
        var full = model.Forward(new CausalLmInput(sequence[.., ..^1], ones(1, 10, dtype: int64)));
        var logits = tuner.DropVirtualTokens(full.Logits);
        Assert.Equal(10, logits.shape[1]);
        var predicted = logits[0, 5.., ..].argmax(-1).data<long>().ToArray();
        Assert.Equal(sequence[0, 6..].data<long>().ToArray(), predicted);
    }

    private static void WriteRandomLlama(string dir, int kvHeads)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(PromptLearningCases.BaseDir("llama"), "config.json")))!;
        json["num_key_value_heads"] = kvHeads;
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString());
        var architecture = Architecture.For(ModelConfig.Load(dir));
        var random = new Random(5);
        var tensors = architecture.Parameters.Select(p => TensorData.FromFloat32(p.Name, p.Shape,
            Enumerable.Range(0, (int)p.ElementCount).Select(_ => p.Name.EndsWith("norm.weight") ? 1f : (float)(random.NextDouble() - 0.5) * 0.3f).ToArray())).ToList();
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
