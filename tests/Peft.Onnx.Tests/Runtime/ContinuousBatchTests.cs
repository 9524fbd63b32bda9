using Peft.Onnx.Tests.Support;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Batching;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// Rows joining and leaving a continuous batch at different steps give the tokens of each request generated alone
/// (greedy token for token, seeded sampling the same stream), whoever else is in the batch.
/// </summary>
public class ContinuousBatchTests
{
    [Theory]
    [InlineData("tiny-bloom-fin")]
    [InlineData("tiny-llama-random")]
    [InlineData("tiny-gpt2-random")]
    [InlineData("opt")]
    public void Rows_joining_at_different_steps_equal_their_requests_alone(string arch)
    {
        var model = ExportedModels.Model(arch);
        var vocab = Math.Min(model.VocabSize, 200);
        var random = new Random(7);
        int[] RandomPrompt(int length) => Enumerable.Range(0, length).Select(_ => random.Next(3, vocab)).ToArray();
        var requests = new List<GenerationRequest>
        {
            GenerationRequest.FromIds(RandomPrompt(9), GenerationOptions.Greedy(12)),
            GenerationRequest.FromIds(RandomPrompt(3), GenerationOptions.Sampling(seed: 11, temperature: 0.8, topP: 0.9, maxNewTokens: 7)),
            GenerationRequest.FromIds(RandomPrompt(17), GenerationOptions.Greedy(5)),
            GenerationRequest.FromIds(RandomPrompt(1), GenerationOptions.Sampling(seed: 3, topK: 5, maxNewTokens: 10)),
            GenerationRequest.FromIds(RandomPrompt(6), GenerationOptions.Greedy(1)),
            GenerationRequest.FromIds(RandomPrompt(12), new GenerationOptions { MaxNewTokens = 9, DoSample = false, RepetitionPenalty = 1.3 }),
        };
        // requests join at steps 0, 0, 2, 3, 3, 6: each after the earlier ones have produced tokens
        int[] joinAt = [0, 0, 2, 3, 3, 6];
        var produced = requests.Select(_ => new List<int>()).ToArray();
        var rows = new BatchRow?[requests.Count];
        using var batch = new ContinuousBatch(model);
        int step = 0, joined = 0;
        while (joined < requests.Count || batch.Count > 0)
        {
            while (joined < requests.Count && joinAt[joined] <= step)
            {
                rows[joined] = batch.Join(requests[joined], out var first);
                produced[joined].Add(first.TokenId);
                joined++;
            }
            foreach (var t in batch.Step())
                produced[Array.IndexOf(rows, t.Row)].Add(t.TokenId);
            step++;
            Assert.True(step < 100, "the batch never emptied");
        }
        for (int i = 0; i < requests.Count; i++)
        {
            var alone = model.Generate(requests[i]);
            Assert.Equal(alone.NewTokens[0], produced[i].ToArray());
            Assert.Equal(alone.NewTokens[0], rows[i]!.NewTokens);
            Assert.True(rows[i]!.IsDone);
            rows[i]!.Dispose();
        }
    }

    [Fact]
    public void Cancelled_row_leaves_and_the_others_are_unchanged()
    {
        var model = ExportedModels.Model("tiny-bloom-fin");
        var a = GenerationRequest.FromText("The company said", GenerationOptions.Greedy(10));
        var b = GenerationRequest.FromText("Net sales increased by", GenerationOptions.Greedy(10));
        using var batch = new ContinuousBatch(model);
        using var rowA = batch.Join(a, out var firstA);
        using var rowB = batch.Join(b, out _);
        var tokensA = new List<int> { firstA.TokenId };
        batch.Step();
        rowB.Cancel();
        while (batch.Count > 0)
            foreach (var t in batch.Step())
            {
                Assert.Same(rowA, t.Row);
                tokensA.Add(t.TokenId);
            }
        Assert.True(rowB.IsCancelled);
        Assert.Equal(2, rowB.NewTokens.Length);
        Assert.Equal(model.Generate(a).NewTokens[0], rowA.NewTokens);
    }

    [Fact]
    public void Encoder_decoder_exports_are_refused_with_the_reason()
    {
        var model = ExportedModels.Model("tiny-t5-fin");
        Assert.Contains("encoder-decoder", ContinuousBatch.WhyUnsupported(model));
        var ex = Assert.Throws<PeftOnnxException>(() => new ContinuousBatch(model));
        Assert.Contains("continuous batching", ex.Message);
    }
}
