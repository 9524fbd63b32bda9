using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Sampling;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>The logits processors and warpers with transformers 4.33's semantics, on hand-computed cases.</summary>
public class TokenChooserTests
{
    private static ResolvedOptions Options(bool sample = true, double temperature = 1, int topK = 0, double topP = 1, double penalty = 1, ulong seed = 1) =>
        new(10, 20, sample, temperature, topK, topP, seed, penalty, [], 0);

    private static HashSet<int> Drawn(ResolvedOptions options, float[] logits, int draws = 400)
    {
        var chooser = new TokenChooser(options);
        return Enumerable.Range(0, draws).Select(_ => chooser.Choose(logits, [])).ToHashSet();
    }

    [Fact]
    public void Greedy_takes_the_first_maximum()
    {
        Assert.Equal(1, new TokenChooser(Options(sample: false)).Choose([0f, 3f, 3f, -1f], []));
    }

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_scores_of_seen_tokens()
    {
        // seen 0 (-1 -> -2) and 1 (2 -> 1): token 2 (1.5) wins.
        Assert.Equal(2, new TokenChooser(Options(sample: false, penalty: 2)).Choose([-1f, 2f, 1.5f], [1, 0, 1]));
        Assert.Equal(1, new TokenChooser(Options(sample: false, penalty: 2)).Choose([-1f, 2f, 1.5f], [0]));
    }

    [Fact]
    public void Top_p_removes_the_tail_whose_cumulative_probability_is_at_most_one_minus_p()
    {
        float[] logits = [0f, 1f, 2f, 3f]; // probabilities .032 .087 .237 .644; ascending cumulative .032 .119 .356 1
        Assert.Equal([2, 3], Drawn(Options(topP: 0.7), logits).Order());
        Assert.Equal([3], Drawn(Options(topP: 0.5), logits).Order());
        Assert.Equal([0, 1, 2, 3], Drawn(Options(topP: 0.99), logits, 2000).Order());
    }

    [Fact]
    public void Top_k_keeps_the_k_largest_and_ties_with_the_kth()
    {
        Assert.Equal([2, 3], Drawn(Options(topK: 2), [0f, 1f, 2f, 3f]).Order());
        Assert.Equal([1, 2, 3], Drawn(Options(topK: 2), [0f, 2f, 2f, 3f]).Order());
    }

    [Fact]
    public void Low_temperature_concentrates_on_the_maximum()
    {
        Assert.Equal([3], Drawn(Options(temperature: 0.01), [0f, 1f, 2f, 3f]).Order());
    }

    [Fact]
    public void Sampling_follows_the_softmax()
    {
        var chooser = new TokenChooser(Options(seed: 11));
        float[] logits = [0f, MathF.Log(3f)]; // 1 : 3
        int ones = Enumerable.Range(0, 20000).Count(_ => chooser.Choose(logits, []) == 1);
        Assert.InRange(ones / 20000.0, 0.73, 0.77);
    }
}
