using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>Generation from exported fixture models against transformers 4.33's generate (base_meta.json) and itself.</summary>
public class GenerationTests
{
    public static readonly TheoryData<string> Archs = new(Paths.Archs);

    private static int[] GenInput(string arch)
    {
        using var reference = new Reference(arch);
        return reference.Inputs.ReadInt64("gen_input_ids").Select(v => (int)v).ToArray();
    }

    private static int[] Expected(string arch)
    {
        using var reference = new Reference(arch);
        return Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0].Select(v => (int)v).ToArray();
    }

    [Theory]
    [MemberData(nameof(Archs))]
    public void Greedy_generation_equals_transformers(string arch)
    {
        var model = ExportedModels.Model(arch);
        var expected = Expected(arch);
        int newTokens = model.IsEncoderDecoder ? expected.Length - 1 : expected.Length - GenInput(arch).Length;
        Assert.Equal(6, newTokens);
        var result = model.Generate(GenerationRequest.FromIds(GenInput(arch), GenerationOptions.Greedy(newTokens)));
        Assert.Equal(expected, result.Sequences[0]);
        Assert.Equal("cpu", result.Device);
    }

    [Theory]
    [MemberData(nameof(Archs))]
    public void Batch_of_prompts_of_different_lengths_gives_each_row_its_own_tokens(string arch)
    {
        var model = ExportedModels.Model(arch);
        var longPrompt = GenInput(arch);
        int[] shortPrompt = [17, 250, 33];
        var options = GenerationOptions.Greedy(6) with { StopTokenIds = [] };
        var alone = new[] { longPrompt, shortPrompt }
            .Select(p => model.Generate(GenerationRequest.FromIds(p, options)).NewTokens[0]).ToArray();
        var batch = model.Generate(GenerationRequest.FromIds([shortPrompt, longPrompt], options));
        Assert.Equal(alone[1], batch.NewTokens[0]);
        Assert.Equal(alone[0], batch.NewTokens[1]);
        if (!model.IsEncoderDecoder)
        {
            // Hugging Face layout: left padding, then the prompt, then the new tokens.
            int pad = longPrompt.Length - shortPrompt.Length;
            Assert.Equal(Enumerable.Repeat(model.GenerationDefaults.PadTokenId ?? 0, pad).Concat(shortPrompt).Concat(alone[1]), batch.Sequences[0]);
        }
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("mt5")]
    public void Pad_tokens_in_input_ids_are_masked_as_generate_does(string arch)
    {
        var model = ExportedModels.Model(arch);
        var prompt = GenInput(arch);
        int pad = model.GenerationDefaults.PadTokenId!.Value;
        var padded = model.IsEncoderDecoder ? prompt.Concat([pad, pad]).ToArray() : new[] { pad, pad }.Concat(prompt).ToArray();
        var expected = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).NewTokens[0];
        Assert.Equal(expected, model.Generate(GenerationRequest.FromIds(padded, GenerationOptions.Greedy(6))).NewTokens[0]);
        var explicitMask = padded.Select(id => id == pad ? 0 : 1).ToArray();
        Assert.Equal(expected, model.Generate(new GenerationRequest { InputIds = [padded], AttentionMask = [explicitMask], Options = GenerationOptions.Greedy(6) }).NewTokens[0]);
    }

    [Fact]
    public void Finished_rows_are_padded_and_generation_stops_when_all_rows_finished()
    {
        var model = ExportedModels.Model("bloom");
        var prompt = GenInput("bloom");
        // bloom's greedy continuation is 369 369 ...: make 369 a stop token.
        var result = model.Generate(GenerationRequest.FromIds([prompt, [5, 6]], GenerationOptions.Greedy(6) with { StopTokenIds = [369], PadTokenId = 3 }));
        Assert.Equal([369], result.NewTokens[0]);
        var second = result.Sequences[1][prompt.Length..];
        int stop = Array.IndexOf(second, 369);
        if (stop >= 0) Assert.All(second[(stop + 1)..], t => Assert.Equal(3, t));
        Assert.Equal(prompt.Length + Math.Max(1, result.NewTokens[1].Length), result.Sequences[0].Length);
        Assert.All(result.Sequences[0][(prompt.Length + 1)..], t => Assert.Equal(3, t));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public async Task Concurrent_generations_on_one_model_equal_the_sequential_ones(string arch)
    {
        var model = ExportedModels.Model(arch);
        var prompts = Enumerable.Range(0, 16).Select(i => Enumerable.Range(0, 2 + i % 5).Select(j => (i * 37 + j * 11) % 900 + 2).ToArray()).ToArray();
        var options = GenerationOptions.Greedy(8) with { StopTokenIds = [] };
        var sequential = prompts.Select(p => model.Generate(GenerationRequest.FromIds(p, options)).Sequences[0]).ToArray();
        var concurrent = await Task.WhenAll(prompts.Select(p => Task.Run(() => model.Generate(GenerationRequest.FromIds(p, options)).Sequences[0])));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(sequential[i], concurrent[i]);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("mt5")]
    public void Seeded_sampling_is_reproducible(string arch)
    {
        var model = ExportedModels.Model(arch);
        var prompt = GenInput(arch);
        int[] Sample(ulong seed) => model.Generate(GenerationRequest.FromIds(prompt,
            GenerationOptions.Sampling(seed, temperature: 1.5, topK: 0, maxNewTokens: 12) with { StopTokenIds = [] })).Sequences[0];
        Assert.Equal(Sample(7), Sample(7));
        var others = new[] { 8UL, 9UL, 10UL }.Select(Sample).ToArray();
        Assert.Contains(others, o => !o.SequenceEqual(Sample(7)));
    }

    [Fact]
    public void Top_k_1_sampling_equals_greedy()
    {
        var model = ExportedModels.Model("opt");
        var prompt = GenInput("opt");
        var greedy = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).Sequences[0];
        var sampled = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Sampling(123, topK: 1, maxNewTokens: 6))).Sequences[0];
        Assert.Equal(greedy, sampled);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public void Sampling_with_a_tiny_top_p_keeps_only_the_most_likely_token(string arch)
    {
        var model = ExportedModels.Model(arch);
        var prompt = GenInput(arch);
        var greedy = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).Sequences[0];
        var sampled = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Sampling(5, topK: 0, topP: 1e-6, maxNewTokens: 6))).Sequences[0];
        Assert.Equal(greedy, sampled);
    }

    [Fact]
    public void Repetition_penalty_changes_a_repeating_greedy_continuation()
    {
        var model = ExportedModels.Model("bloom");
        var prompt = GenInput("bloom");
        var plain = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).NewTokens[0];
        var penalized = model.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6) with { RepetitionPenalty = 10 })).NewTokens[0];
        Assert.Equal(6, plain.Count(t => t == 369));
        Assert.True(penalized.Distinct().Count() > 1, string.Join(",", penalized));
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("t5")]
    public async Task Streaming_yields_the_same_tokens(string arch)
    {
        var model = ExportedModels.Model(arch);
        var request = GenerationRequest.FromIds(GenInput(arch), GenerationOptions.Greedy(6));
        var expected = model.Generate(request).NewTokens[0];
        var streamed = new List<int>();
        await foreach (var token in model.StreamAsync(request))
        {
            Assert.Equal(0, token.Row);
            Assert.Equal(streamed.Count, token.Step);
            streamed.Add(token.TokenId);
        }
        Assert.Equal(expected, streamed);
    }

    [Fact]
    public async Task Cancellation_stops_streaming_early()
    {
        var model = ExportedModels.Model("gpt2");
        using var cts = new CancellationTokenSource();
        var request = GenerationRequest.FromIds(GenInput("gpt2"), GenerationOptions.Greedy(200) with { StopTokenIds = [] });
        var received = new List<int>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var token in model.StreamAsync(request, cts.Token))
            {
                received.Add(token.TokenId);
                if (received.Count == 3) cts.Cancel();
            }
        });
        Assert.Equal(3, received.Count);
    }

    [Fact]
    public void Cancellation_stops_generate()
    {
        var model = ExportedModels.Model("llama");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            model.Generate(GenerationRequest.FromIds(GenInput("llama"), GenerationOptions.Greedy(50)), cts.Token));
    }

    [Fact]
    public void Generator_steps_one_token_at_a_time()
    {
        var model = ExportedModels.Model("opt");
        var expected = Expected("opt");
        using var generator = model.CreateGenerator(GenerationRequest.FromIds(GenInput("opt"), GenerationOptions.Greedy(6)));
        int steps = 0;
        while (!generator.IsDone)
        {
            var tokens = generator.GenerateNextToken();
            Assert.Single(tokens);
            steps++;
        }
        Assert.Equal(6, steps);
        Assert.Equal(expected, generator.GetSequences()[0]);
    }
}
