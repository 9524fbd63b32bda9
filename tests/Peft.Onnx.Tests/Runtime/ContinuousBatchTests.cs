using Peft.Onnx.Core;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Batching;
using Peft.Onnx.Tests.MultiAdapter;
using Peft.Onnx.Tests.Support;
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

    /// <summary>
    /// Groups of rows of different lengths prefilled together join while others run: one group at the start, one
    /// mid-stream (two rows, one of them done at its first token), one after some rows left; a row cancelled between
    /// its prefill and the next step never runs a step; each other row equals its request alone.
    /// </summary>
    [Theory]
    [InlineData("tiny-bloom-fin")]
    [InlineData("tiny-llama-random")]
    [InlineData("opt")]
    public void Groups_prefilled_together_join_mid_stream_and_equal_their_requests_alone(string arch)
    {
        var model = ExportedModels.Model(arch);
        var vocab = Math.Min(model.VocabSize, 200);
        var random = new Random(11);
        int[] RandomPrompt(int length) => Enumerable.Range(0, length).Select(_ => random.Next(3, vocab)).ToArray();
        var padded = RandomPrompt(8);
        var groups = new[]
        {
            (Step: 0, Requests: new[]
            {
                GenerationRequest.FromIds(RandomPrompt(4), GenerationOptions.Greedy(14)),
                GenerationRequest.FromIds(RandomPrompt(15), GenerationOptions.Sampling(seed: 5, temperature: 0.9, topP: 0.8, maxNewTokens: 6)),
                GenerationRequest.FromIds(RandomPrompt(1), GenerationOptions.Greedy(9)),
            }),
            (Step: 3, Requests: new[]
            {
                GenerationRequest.FromIds(RandomPrompt(21), GenerationOptions.Greedy(1)),
                // a mask with holes (its own zeros, beside the batch's padding)
                new GenerationRequest { InputIds = [padded], AttentionMask = [[0, 0, 1, 1, 1, 0, 1, 1]], Options = GenerationOptions.Sampling(seed: 9, topK: 7, maxNewTokens: 8) },
            }),
            (Step: 8, Requests: new[]
            {
                GenerationRequest.FromIds(RandomPrompt(2), GenerationOptions.Greedy(5)),
                GenerationRequest.FromIds(RandomPrompt(11), new GenerationOptions { MaxNewTokens = 7, DoSample = false, RepetitionPenalty = 1.2 }),
                GenerationRequest.FromIds(RandomPrompt(6), GenerationOptions.Greedy(10)),
            }),
        };
        var all = groups.SelectMany(g => g.Requests).ToList();
        var produced = all.Select(_ => new List<int>()).ToList();
        var rows = new List<BatchRow>();
        int cancelled = all.Count - 1;
        using var batch = new ContinuousBatch(model);
        int step = 0, group = 0;
        while (group < groups.Length || batch.Count > 0)
        {
            if (group < groups.Length && groups[group].Step <= step)
            {
                var added = groups[group].Requests.Select(r => batch.Add(r)!).ToList();
                rows.AddRange(added);
                var firsts = batch.Prefill();
                Assert.Equal(added, firsts.Select(f => f.Row));
                foreach (var f in firsts) produced[rows.IndexOf(f.Row)].Add(f.TokenId);
                if (group == 1) Assert.True(firsts[0].Finished, "the one-token row ends at its prefill");
                if (group == 2) added[^1].Cancel();
                group++;
            }
            foreach (var t in batch.Step())
            {
                Assert.NotEqual(cancelled, rows.IndexOf(t.Row));
                produced[rows.IndexOf(t.Row)].Add(t.TokenId);
            }
            step++;
            Assert.True(step < 100, "the batch never emptied");
        }
        for (int i = 0; i < all.Count; i++)
        {
            var alone = model.Generate(all[i]).NewTokens[0];
            if (i == cancelled)
            {
                Assert.True(rows[i].IsCancelled);
                Assert.Equal(alone[..1], produced[i].ToArray());
            }
            else Assert.Equal(alone, produced[i].ToArray());
            rows[i].Dispose();
        }
    }

    [Fact]
    public void A_row_cancelled_mid_stream_stops_within_one_step_and_the_batch_shrinks()
    {
        var model = ExportedModels.Model("tiny-gpt2-random");
        var requests = new[] { 5, 9, 3 }.Select(n => GenerationRequest.FromIds(Enumerable.Range(4, n).ToArray(), GenerationOptions.Greedy(12))).ToArray();
        using var batch = new ContinuousBatch(model);
        var rows = requests.Select(r => batch.Add(r)!).ToArray();
        batch.Prefill();
        batch.Step();
        batch.Step();
        rows[1].Cancel();
        var next = batch.Step();
        Assert.Equal(new[] { rows[0], rows[2] }, next.Select(t => t.Row));
        Assert.Equal(2, batch.Count);
        Assert.Equal(3, rows[1].NewTokens.Length);
        while (batch.Count > 0) batch.Step();
        Assert.Equal(model.Generate(requests[0]).NewTokens[0], rows[0].NewTokens);
        Assert.Equal(model.Generate(requests[2]).NewTokens[0], rows[2].NewTokens);
        foreach (var r in rows) r.Dispose();
    }

    /// <summary>
    /// A row joining after another left takes over its slot in place (the batch cache is not rebuilt, so the newcomer
    /// steps in the leaver's position, before the row that stayed), and each row still equals its request alone.
    /// </summary>
    [Theory]
    [InlineData("tiny-bloom-fin")]
    [InlineData("tiny-llama-random")]
    public void A_row_joining_takes_the_slot_of_one_that_left_and_equals_its_request_alone(string arch)
    {
        var model = ExportedModels.Model(arch);
        var a = GenerationRequest.FromIds([5, 17, 9, 33, 4, 12, 8, 21], GenerationOptions.Greedy(3));
        var b = GenerationRequest.FromIds([7, 3, 19, 11, 6, 28, 14, 10], GenerationOptions.Greedy(12));
        var c = GenerationRequest.FromIds([13, 2, 40], GenerationOptions.Sampling(seed: 8, temperature: 0.9, maxNewTokens: 6));
        using var batch = new ContinuousBatch(model);
        var rowA = batch.Add(a)!;
        var rowB = batch.Add(b)!;
        var produced = new Dictionary<BatchRow, List<int>> { [rowA] = [], [rowB] = [] };
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);
        while (!rowA.IsDone) foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
        batch.RemoveDone();
        var rowC = batch.Add(c)!;
        produced[rowC] = [];
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);
        int length = batch.Length;
        var next = batch.Step();
        Assert.Equal(new[] { rowC, rowB }, next.Select(t => t.Row));
        Assert.Equal(length + 1, batch.Length);
        foreach (var t in next) produced[t.Row].Add(t.TokenId);
        while (batch.Count > 0) foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
        foreach (var (row, request) in new[] { (rowA, a), (rowB, b), (rowC, c) })
        {
            Assert.Equal(model.Generate(request).NewTokens[0], produced[row].ToArray());
            row.Dispose();
        }
    }

    /// <summary>
    /// A leaver's slot (one of five) stays in the batch, masked out, through steps where no row joins, and the row that
    /// joins later takes it; the others never notice (each equals its request alone).
    /// </summary>
    [Fact]
    public void An_empty_slot_runs_masked_until_a_row_takes_it()
    {
        var model = ExportedModels.Model("tiny-gpt2-random");
        var requests = Enumerable.Range(0, 5)
            .Select(i => GenerationRequest.FromIds(Enumerable.Range(0, 8).Select(t => 3 + (t * 11 + i * 5) % 90).ToArray(), GenerationOptions.Greedy(i == 2 ? 2 : 14)))
            .ToList();
        var late = GenerationRequest.FromIds([21, 8, 30, 2], GenerationOptions.Sampling(seed: 6, topK: 8, maxNewTokens: 7));
        using var batch = new ContinuousBatch(model);
        var rows = requests.Select(r => batch.Add(r)!).ToList();
        var produced = rows.ToDictionary(r => r, _ => new List<int>());
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);
        while (!rows[2].IsDone) foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
        for (int s = 0; s < 2; s++)
        {
            var next = batch.Step();
            Assert.Equal(rows.Where((_, i) => i != 2), next.Select(t => t.Row));
            foreach (var t in next) produced[t.Row].Add(t.TokenId);
        }
        Assert.Equal(4, batch.Count);
        var lateRow = batch.Add(late)!;
        rows.Add(lateRow);
        requests.Add(late);
        produced[lateRow] = [];
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);
        var joined = batch.Step();
        Assert.Same(lateRow, joined[2].Row);
        foreach (var t in joined) produced[t.Row].Add(t.TokenId);
        while (batch.Count > 0) foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(model.Generate(requests[i]).NewTokens[0], produced[rows[i]].ToArray());
            rows[i].Dispose();
        }
    }

    /// <summary>Rows of different adapters of a multi-adapter export (and the base) share the batch, each as generate with its adapter.</summary>
    [Fact]
    public void Rows_of_different_adapters_share_the_batch()
    {
        using var model = OnnxModel.Load(MultiAdapterExportTests.MultiExport("gpt2"), DeviceOptions.Cpu);
        (string? Adapter, int[] Prompt)[] cases = [("plain", [5, 9, 13, 2]), ("ia3", [7, 3]), (null, [11, 4, 8, 20, 6]), ("dora", [5, 9, 13, 2]), ("all_linear", [30])];
        var requests = cases.Select(c => GenerationRequest.FromIds(c.Prompt, GenerationOptions.Greedy(9)) with { Adapter = c.Adapter }).ToArray();
        using var batch = new ContinuousBatch(model);
        var rows = new List<BatchRow>();
        var produced = requests.Select(_ => new List<int>()).ToArray();
        // two join together, then one after a step, then two after another
        foreach (var group in new[] { new[] { 0, 1 }, [2], [3, 4] })
        {
            foreach (var i in group) rows.Add(batch.Add(requests[i])!);
            foreach (var f in batch.Prefill()) produced[rows.IndexOf(f.Row)].Add(f.TokenId);
            foreach (var t in batch.Step()) produced[rows.IndexOf(t.Row)].Add(t.TokenId);
        }
        while (batch.Count > 0) foreach (var t in batch.Step()) produced[rows.IndexOf(t.Row)].Add(t.TokenId);
        for (int i = 0; i < requests.Length; i++) Assert.Equal(model.Generate(requests[i]).NewTokens[0], produced[i].ToArray());
        // the adapters really differ: the same prompt under "plain" and "dora" gave different tokens somewhere
        Assert.NotEqual(produced[0], produced[3]);
        var unknown = Assert.Throws<PeftOnnxException>(() => batch.Add(GenerationRequest.FromIds([4, 5], GenerationOptions.Greedy(2)) with { Adapter = "nope" }));
        Assert.Contains("plain", unknown.Message);
        foreach (var r in rows) r.Dispose();
    }

    /// <summary>Exports with a baked prompt (its virtual tokens lead every row's cache) batch continuously as well.</summary>
    [Theory]
    [InlineData("opt", "prompt_tuning_text")]
    [InlineData("bloom", "prefix")]
    public void Baked_prompt_exports_join_the_batch_and_equal_their_requests_alone(string arch, string method)
    {
        var model = ExportedModels.Adapter(arch, method, new ExportOptions { Verify = false });
        Assert.True(model.CausalLm!.VirtualTokens > 0);
        Assert.Null(ContinuousBatch.WhyUnsupported(model));
        var requests = new[] { (7, 0), (3, 0), (12, 2), (1, 4) }
            .Select((c, i) => (Step: c.Item2, Request: GenerationRequest.FromIds(Enumerable.Range(0, c.Item1).Select(t => 3 + (t * 5 + i * 7) % 40).ToArray(),
                i == 1 ? GenerationOptions.Sampling(seed: 4, temperature: 0.8, maxNewTokens: 8) : GenerationOptions.Greedy(8))))
            .ToArray();
        using var batch = new ContinuousBatch(model);
        var rows = new BatchRow?[requests.Length];
        var produced = requests.Select(_ => new List<int>()).ToArray();
        for (int step = 0; step < 40 && (step <= 4 || batch.Count > 0); step++)
        {
            var joining = Enumerable.Range(0, requests.Length).Where(i => requests[i].Step == step).ToArray();
            foreach (var i in joining) rows[i] = batch.Add(requests[i].Request)!;
            foreach (var f in batch.Prefill()) produced[Array.IndexOf(rows, f.Row)].Add(f.TokenId);
            foreach (var t in batch.Step()) produced[Array.IndexOf(rows, t.Row)].Add(t.TokenId);
        }
        Assert.Equal(0, batch.Count);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(model.Generate(requests[i].Request).NewTokens[0], produced[i].ToArray());
            rows[i]!.Dispose();
        }
    }

    /// <summary>
    /// Families that take position_ids place a baked prompt's real tokens by the cache length, so padding moves them:
    /// such an export stays out of the batch.
    /// </summary>
    [Fact]
    public void Baked_prompt_exports_of_position_id_families_are_refused_with_the_reason()
    {
        var model = ExportedModels.Adapter("gpt2", "prompt_tuning_text", new ExportOptions { Verify = false });
        Assert.Contains("positions", ContinuousBatch.WhyUnsupported(model));
        Assert.Throws<PeftOnnxException>(() => new ContinuousBatch(model));
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
