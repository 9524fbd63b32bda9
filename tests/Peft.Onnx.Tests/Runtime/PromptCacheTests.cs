using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Batching;
using Peft.Onnx.Tests.MultiAdapter;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// A continuous batch's prompt cache: a row whose prompt and adapter equal a cached one's skips its prefill, and
/// every row still gives the tokens of its request generated alone (greedy token for token, seeded sampling the same
/// stream); the cache keeps to its byte bound by dropping the least recently used prompts.
/// </summary>
public class PromptCacheTests
{
    private static int[] Prompt(int length, int seed) => Enumerable.Range(0, length).Select(t => 3 + (t * 7 + seed * 13) % 150).ToArray();

    /// <summary>Runs groups of requests, each group joining after the previous one ran two steps; returns each request's tokens.</summary>
    private static List<int>[] RunGroups(ContinuousBatch batch, params GenerationRequest[][] groups)
    {
        var all = groups.SelectMany(g => g).ToList();
        var rows = new BatchRow?[all.Count];
        var produced = all.Select(_ => new List<int>()).ToArray();
        int next = 0;
        foreach (var group in groups)
        {
            foreach (var request in group) rows[next++] = batch.Add(request)!;
            foreach (var f in batch.Prefill()) produced[Array.IndexOf(rows, f.Row)].Add(f.TokenId);
            for (int s = 0; s < 2; s++)
                foreach (var t in batch.Step()) produced[Array.IndexOf(rows, t.Row)].Add(t.TokenId);
        }
        for (int s = 0; s < 100 && batch.Count > 0; s++)
            foreach (var t in batch.Step()) produced[Array.IndexOf(rows, t.Row)].Add(t.TokenId);
        Assert.Equal(0, batch.Count);
        foreach (var row in rows) row!.Dispose();
        return produced;
    }

    private static void AssertEqualAlone(OnnxModel model, GenerationRequest[] requests, List<int>[] produced)
    {
        for (int i = 0; i < requests.Length; i++) Assert.Equal(model.Generate(requests[i]).NewTokens[0], produced[i].ToArray());
    }

    [Theory]
    [InlineData("tiny-bloom-fin")]
    [InlineData("tiny-llama-random")]
    [InlineData("opt")]
    public void Repeated_prompts_hit_and_every_row_equals_its_request_alone(string arch)
    {
        var model = ExportedModels.Model(arch);
        int[] a = Prompt(9, 1), b = Prompt(4, 2), c = Prompt(13, 3);
        GenerationRequest[] first =
        [
            GenerationRequest.FromIds(a, GenerationOptions.Greedy(10)),
            GenerationRequest.FromIds(b, GenerationOptions.Sampling(seed: 5, temperature: 0.9, topP: 0.9, maxNewTokens: 8)),
        ];
        // the same prompts again with other options (the cached first-token logits are sampled with the new row's seed), and a new one
        GenerationRequest[] second =
        [
            GenerationRequest.FromIds(a, GenerationOptions.Sampling(seed: 3, topK: 6, maxNewTokens: 9)),
            GenerationRequest.FromIds(c, GenerationOptions.Greedy(6)),
            GenerationRequest.FromIds(b, GenerationOptions.Greedy(1)),
            GenerationRequest.FromIds(b, new GenerationOptions { MaxNewTokens = 7, DoSample = false, RepetitionPenalty = 1.3 }),
        ];
        var cache = new PromptCache(64L << 20);
        using var batch = new ContinuousBatch(model, prompts: cache);
        var produced = RunGroups(batch, first, second);
        Assert.Equal(3, cache.Misses);
        Assert.Equal(3, cache.Hits);
        Assert.Equal(3, cache.Count);
        Assert.Equal(0, cache.Evictions);
        AssertEqualAlone(model, [.. first, .. second], produced);
        // a hit gives the same first token as a miss: the greedy row of prompt a and its cached logits agree with a fresh prefill
        Assert.Equal(produced[0][0], model.Generate(GenerationRequest.FromIds(a, GenerationOptions.Greedy(1))).NewTokens[0][0]);
    }

    [Fact]
    public void The_least_recently_used_prompt_is_evicted_to_stay_within_the_bound()
    {
        var model = ExportedModels.Model("tiny-bloom-fin");
        GenerationRequest On(int seed) => GenerationRequest.FromIds(Prompt(6, seed), GenerationOptions.Greedy(4));
        // one entry's size (equal-length prompts give equal entries)
        var probe = new PromptCache(64L << 20);
        using (var batch = new ContinuousBatch(model, prompts: probe)) RunGroups(batch, [On(1)]);
        long entry = probe.Bytes;
        Assert.True(entry > 0);

        var cache = new PromptCache(entry * 2 + entry / 2);
        using var bounded = new ContinuousBatch(model, prompts: cache);
        // a, b, c: c evicts a; b hits (now most recent); a misses and evicts c; c misses again
        GenerationRequest[] requests = [On(1), On(2), On(3), On(2), On(1), On(3)];
        var produced = RunGroups(bounded, [requests[0], requests[1]], [requests[2]], [requests[3]], [requests[4]], [requests[5]]);
        Assert.Equal(1, cache.Hits);
        Assert.Equal(5, cache.Misses);
        Assert.Equal(3, cache.Evictions);
        Assert.Equal(2, cache.Count);
        Assert.True(cache.Bytes <= cache.CapacityBytes);
        AssertEqualAlone(model, requests, produced);

        // an entry larger than the whole bound is never kept
        var tiny = new PromptCache(entry - 1);
        using var none = new ContinuousBatch(model, prompts: tiny);
        AssertEqualAlone(model, [On(1), On(1)], RunGroups(none, [On(1)], [On(1)]));
        Assert.Equal((0, 2, 0L), (tiny.Hits, tiny.Misses, tiny.Bytes));
    }

    /// <summary>The cache is keyed by adapter as well: one prompt under two adapters and the base gives three entries, each hit by its own adapter only.</summary>
    [Fact]
    public void The_same_prompt_under_two_adapters_caches_one_prefill_each()
    {
        using var model = OnnxModel.Load(MultiAdapterExportTests.MultiExport("gpt2"), DeviceOptions.Cpu);
        int[] prompt = [5, 9, 13, 2];
        GenerationRequest On(string? adapter, int tokens) => GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(tokens)) with { Adapter = adapter };
        GenerationRequest[] first = [On("plain", 8), On("dora", 8), On(null, 8)];
        GenerationRequest[] second = [On("dora", 6), On(null, 5), On("plain", 7)];
        var cache = new PromptCache(64L << 20);
        using var batch = new ContinuousBatch(model, prompts: cache);
        var produced = RunGroups(batch, first, second);
        Assert.Equal(3, cache.Misses);
        Assert.Equal(3, cache.Hits);
        AssertEqualAlone(model, [.. first, .. second], produced);
        // the adapters really differ on this prompt, so a hit of the wrong adapter would have shown
        Assert.NotEqual(produced[0], produced[1]);
    }

    /// <summary>A baked prefix leads every row's cache: a cached row keeps it in front of its prompt's positions.</summary>
    [Fact]
    public void Baked_prefix_exports_reuse_cached_prompts_exactly()
    {
        var model = ExportedModels.Adapter("bloom", "prefix", new ExportOptions { Verify = false });
        Assert.True(model.CausalLm!.VirtualTokens > 0);
        int[] a = Prompt(7, 4), b = Prompt(3, 5);
        GenerationRequest[] first = [GenerationRequest.FromIds(a, GenerationOptions.Greedy(8)), GenerationRequest.FromIds(b, GenerationOptions.Greedy(5))];
        GenerationRequest[] second = [GenerationRequest.FromIds(b, GenerationOptions.Sampling(seed: 4, temperature: 0.8, maxNewTokens: 8)), GenerationRequest.FromIds(a, GenerationOptions.Greedy(3))];
        var cache = new PromptCache(64L << 20);
        using var batch = new ContinuousBatch(model, prompts: cache);
        var produced = RunGroups(batch, first, second);
        Assert.Equal((2L, 2L), (cache.Hits, cache.Misses));
        AssertEqualAlone(model, [.. first, .. second], produced);
    }
}
