using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// Without max_new_tokens (request or generation_config.json), transformers 4.33 stops at max_length = 20 tokens in
/// all: the decoder-only prompt counts, an encoder-decoder's decoder start token counts, and at least one token is
/// generated even when the prompt is already that long. The fixture folders set no max_length, so 20 applies.
/// </summary>
public class DefaultLengthTests
{
    private static GenerationOptions NoStop => GenerationOptions.Greedy() with { StopTokenIds = [] };

    [Theory]
    [InlineData(7, 20)]
    [InlineData(19, 20)]
    [InlineData(20, 21)]
    [InlineData(25, 26)]
    public void Decoder_only_sequences_end_at_max_length_counting_the_prompt(int promptLength, int expectedLength)
    {
        var model = ExportedModels.Model("gpt2");
        var result = model.Generate(GenerationRequest.FromIds(Enumerable.Repeat(5, promptLength).ToArray(), NoStop));
        Assert.Equal(expectedLength, result.Sequences[0].Length);
    }

    [Fact]
    public void Padded_batches_count_the_longest_prompt()
    {
        var model = ExportedModels.Model("gpt2");
        var request = GenerationRequest.FromIds([Enumerable.Repeat(5, 4).ToArray(), Enumerable.Repeat(6, 9).ToArray()], NoStop);
        var result = model.Generate(request);
        // transformers counts input_ids.shape[-1], the padded length: both rows get 11 new tokens.
        Assert.Equal([20, 20], result.Sequences.Select(s => s.Length).ToArray());
        Assert.Equal([11, 11], result.NewTokens.Select(t => t.Length).ToArray());
    }

    [Fact]
    public void Encoder_decoder_sequences_hold_the_start_token_and_19_new_ones()
    {
        var model = ExportedModels.Model("t5");
        var result = model.Generate(GenerationRequest.FromIds(Enumerable.Repeat(5, 30).ToArray(), NoStop));
        Assert.Equal(20, result.Sequences[0].Length);
    }

    [Fact]
    public void An_explicit_max_new_tokens_wins()
    {
        var model = ExportedModels.Model("gpt2");
        var result = model.Generate(GenerationRequest.FromIds(Enumerable.Repeat(5, 25).ToArray(), GenerationOptions.Greedy(3) with { StopTokenIds = [] }));
        Assert.Equal(28, result.Sequences[0].Length);
    }
}
