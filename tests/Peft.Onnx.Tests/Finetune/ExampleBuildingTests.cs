using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Finetune;
using Xunit;

namespace Peft.Onnx.Tests.Finetune;

/// <summary>The guides' preprocessing on phrasebank rows, with the ids BASELINES.md lists for the tiny models.</summary>
public class ExampleBuildingTests
{
    private static readonly long[] Negative = [654, 105, 1609];
    private static readonly long[] Neutral = [654, 356, 1692];
    private static readonly long[] Positive = [114, 396, 273, 554];
    private static readonly SpecialIds Ids = new(Eos: 1, Pad: 0);

    [Theory]
    [InlineData("negative")]
    [InlineData("neutral")]
    [InlineData("positive")]
    public void Label_tokens_are_the_baseline_ids_plus_eos(string label)
    {
        foreach (var model in new[] { FinetuneData.Bloom, FinetuneData.T5 })
        {
            var builder = new ExampleBuilder(HfTokenizer.FromFolder(model), TaskKind.CausalLm, Ids, PromptTemplate.Parse("{text} Label : "));
            long[] expected = label switch { "negative" => Negative, "neutral" => Neutral, _ => Positive };
            Assert.Equal([.. expected, 1L], builder.TargetIds(label));
        }
    }

    [Fact]
    public void Causal_example_is_prompt_plus_target_with_the_prompt_masked()
    {
        var tokenizer = HfTokenizer.FromFolder(FinetuneData.Bloom);
        var builder = new ExampleBuilder(tokenizer, TaskKind.CausalLm, Ids, PromptTemplate.Parse("{text} Label : "));
        var e = builder.Build("The sales price was not disclosed .", "neutral");
        var prompt = tokenizer.Encode("The sales price was not disclosed . Label : ").Select(i => (long)i).ToArray();
        Assert.Equal(prompt, e.PromptIds);
        Assert.Equal([.. prompt, .. Neutral, 1L], e.InputIds);
        Assert.Equal([.. Enumerable.Repeat(-100L, prompt.Length), .. Neutral, 1L], e.Labels);
        Assert.Equal(" ", tokenizer.Decode([(int)prompt[^1]], skipSpecialTokens: false)); // the trailing space is its own token
    }

    [Fact]
    public void Causal_batches_are_left_padded_with_pad_mask_0_and_labels_minus_100()
    {
        var builder = new ExampleBuilder(HfTokenizer.FromFolder(FinetuneData.Bloom), TaskKind.CausalLm, Ids, PromptTemplate.Parse("{text} Label : "));
        var a = builder.Build("Profit fell .", "negative");
        var b = builder.Build("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007 .", "positive");
        var batch = BatchCollator.Collate([a, b], TaskKind.CausalLm, Ids.Pad);
        int t = b.InputIds.Length, pad = t - a.InputIds.Length;
        Assert.Equal(new long[] { 2, t }, batch.Shape);
        Assert.Equal(batch.Shape, batch.LabelShape);
        Assert.True(pad > 0);
        Assert.Equal([.. Enumerable.Repeat(0L, pad), .. a.InputIds], batch.InputIds[..t]);
        Assert.Equal([.. Enumerable.Repeat(0L, pad), .. Enumerable.Repeat(1L, a.InputIds.Length)], batch.AttentionMask[..t]);
        Assert.Equal([.. Enumerable.Repeat(-100L, pad), .. a.Labels], batch.Labels[..t]);
        Assert.Equal(b.InputIds, batch.InputIds[t..]);
        Assert.All(batch.AttentionMask[t..], m => Assert.Equal(1L, m));
    }

    [Fact]
    public void Max_length_keeps_the_target_and_the_end_of_the_prompt()
    {
        var builder = new ExampleBuilder(HfTokenizer.FromFolder(FinetuneData.Bloom), TaskKind.CausalLm, Ids, PromptTemplate.Parse("{text} Label : "), maxLength: 10);
        var e = builder.Build("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007 .", "positive");
        Assert.Equal(10, e.InputIds.Length);
        Assert.Equal([.. Positive, 1L], e.InputIds[^5..]);
        Assert.Equal([.. Positive, 1L], e.Labels[^5..]);
        Assert.All(e.Labels[..5], l => Assert.Equal(-100L, l));
        Assert.Equal(e.PromptIds, e.InputIds[..5]);
    }

    [Fact]
    public void Seq2seq_inputs_end_with_eos_are_cut_and_right_padded()
    {
        var tokenizer = HfTokenizer.FromFolder(FinetuneData.T5);
        var builder = new ExampleBuilder(tokenizer, TaskKind.Seq2SeqLm, Ids);
        Assert.Equal(128, builder.MaxLength);
        var a = builder.Build("Profit fell .", "negative");
        var text = tokenizer.Encode("Profit fell .").Select(i => (long)i).ToArray();
        Assert.Equal([.. text, 1L], a.InputIds);
        Assert.Equal([.. Negative, 1L], a.Labels);
        var b = builder.Build(string.Join(" ", Enumerable.Repeat("Operating profit rose to EUR 13.1 mn .", 30)), "positive");
        Assert.Equal(128, b.InputIds.Length);

        var batch = BatchCollator.Collate([a, b], TaskKind.Seq2SeqLm, Ids.Pad);
        Assert.Equal(new long[] { 2, 128 }, batch.Shape);
        Assert.Equal(new long[] { 2, 5 }, batch.LabelShape);
        Assert.Equal(a.InputIds, batch.InputIds[..a.InputIds.Length]);
        Assert.All(batch.InputIds[a.InputIds.Length..128], x => Assert.Equal(0L, x));
        Assert.All(batch.AttentionMask[a.InputIds.Length..128], x => Assert.Equal(0L, x));
        Assert.Equal([.. Negative, 1L, -100L], batch.Labels[..5]);
        Assert.Equal([.. Positive, 1L], batch.Labels[5..]);

        var shortTargets = new ExampleBuilder(tokenizer, TaskKind.Seq2SeqLm, Ids, targetMaxLength: 3);
        Assert.Equal(Positive[..3], shortTargets.Build("x", "positive").Labels);
    }

    [Fact]
    public void Validation_split_is_seeded_and_disjoint()
    {
        var table = DataTable.Read(Path.Combine(FinetuneData.Split, "validation.jsonl"));
        var (train, validation) = FinetuneSetup.Split(table, 0.1, 7);
        Assert.Equal((int)Math.Ceiling(0.1 * table.Count), validation.Count);
        Assert.Equal(table.Count, train.Count + validation.Count);
        var again = FinetuneSetup.Split(table, 0.1, 7).Validation;
        Assert.Equal(validation.Rows.Select(r => string.Join("|", r)), again.Rows.Select(r => string.Join("|", r)));
        Assert.Empty(train.Rows.Select(r => string.Join("|", r)).Intersect(validation.Rows.Select(r => string.Join("|", r))));
        var other = FinetuneSetup.Split(table, 0.1, 8).Validation;
        Assert.NotEqual(validation.Rows.Select(r => string.Join("|", r)), other.Rows.Select(r => string.Join("|", r)));
    }
}
