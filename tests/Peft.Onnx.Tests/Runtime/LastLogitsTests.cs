using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// num_logits_to_keep: decoder-only exports take it as an overridable initializer (default 0, every position, which
/// forward, compare and ORT GenAI rely on); the generator feeds 1 so the prefill runs the output head for the last
/// token only. Generations stay token-exact (GenerationTests, AdapterGenerationParityTests run through this path).
/// </summary>
public class LastLogitsTests
{
    public static readonly TheoryData<string> DecoderOnly = new("bloom", "gpt2", "llama", "opt");

    [Theory]
    [MemberData(nameof(DecoderOnly))]
    public void Keeping_one_position_gives_the_last_row_of_the_full_logits(string arch)
    {
        var path = Path.Combine(ExportedModels.Folder(arch), "model.onnx");
        using var session = new InferenceSession(path);
        Assert.True(session.OverridableInitializerMetadata.ContainsKey("num_logits_to_keep"));
        Assert.False(session.InputMetadata.ContainsKey("num_logits_to_keep"));

        using var reference = new Reference(arch);
        var ids = reference.Inputs.ReadInt64("gen_input_ids");
        int seq = ids.Length;
        var past = session.InputMetadata["past_key_values.0.key"].Dimensions;
        var values = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValue.CreateTensorValueFromMemory(ids, [1, seq]),
            ["attention_mask"] = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, seq).ToArray(), [1, seq]),
        };
        if (session.InputMetadata.ContainsKey("position_ids"))
            values["position_ids"] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, seq).Select(i => (long)i).ToArray(), [1, seq]);
        foreach (var name in session.InputMetadata.Keys.Where(k => k.StartsWith("past_key_values.", StringComparison.Ordinal)))
            values[name] = OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, past[1], 0, past[3]]);
        try
        {
            (float[] Logits, long[] Shape) Run(long? keep)
            {
                var names = values.Keys.ToList();
                var inputs = values.Values.ToList();
                using var k = keep is { } n ? OrtValue.CreateTensorValueFromMemory(new[] { n }, []) : null;
                if (k != null) { names.Add("num_logits_to_keep"); inputs.Add(k); }
                using var outputs = session.Run(new RunOptions(), names, inputs, ["logits"]);
                return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[0].GetTensorTypeAndShape().Shape);
            }

            var full = Run(null);
            var all = Run(0);
            var last = Run(1);
            long vocab = full.Shape[2];
            Assert.Equal([1, seq, vocab], full.Shape);
            Assert.Equal(full.Logits, all.Logits);
            Assert.Equal([1, 1, vocab], last.Shape);
            var expected = full.Logits.AsSpan((int)((seq - 1) * vocab), (int)vocab).ToArray();
            for (int v = 0; v < vocab; v++) Assert.Equal(expected[v], last.Logits[v], 1e-4f);
            Assert.Equal(Array.IndexOf(expected, expected.Max()), Array.IndexOf(last.Logits, last.Logits.Max()));
        }
        finally
        {
            foreach (var v in values.Values) v.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(DecoderOnly))]
    public void The_generator_feeds_it(string arch)
    {
        var model = ExportedModels.Model(arch);
        Assert.True(model.CausalLm!.KeepsLastLogits);
        using var generator = model.CreateGenerator(GenerationRequest.FromIds([5, 6, 7, 8], GenerationOptions.Greedy(2)));
        generator.GenerateNextToken();
        Assert.Equal(1, generator.Session.LogitsPositions);   // the 4-token prefill computed one position's logits
    }
}
