using System.Collections.Concurrent;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// OnnxModel.AddAdapter of prefix-tuning adapters (with and without prefix_projection, shorter and longer than the
/// exported prefix) into a multi-adapter export that stacks prefixes: in logits at every step and in greedy tokens they
/// give what the same adapters exported in the folder give, in mixed batches beside exported prefixes, LoRA adapters
/// (exported and added) and the base, and what their own single-adapter exports give; adds and removes never disturb a
/// request in flight; bad input is refused in one line and leaves the model as it was.
/// </summary>
public class RuntimePrefixAdapterTests
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Folders = new();

    private static string Cached(string key, Func<string> make) => Folders.GetOrAdd(key, _ => new Lazy<string>(make)).Value;

    /// <summary>llama_gqa's prefix fixtures come from the current PEFT (no LoRA case there); the others from the reference.</summary>
    private static bool Gqa(string arch) => arch == "llama_gqa";

    private static string Case(string arch, string sub) => Gqa(arch) ? Paths.CurrentCase(arch, sub) : Paths.Case(arch, sub);

    private static string Trained(string arch, string method) => Case(arch, method + "/adapter_trained");

    /// <summary>Exported: a 5-token prefix and, where the fixtures have one, a LoRA adapter.</summary>
    private static IReadOnlyList<(string Name, string Dir)> Exported(string arch) =>
    [
        ("prefix_mid", Cached($"{arch}/mid", () => RuntimeAdapterFolders.PrefixOfLength(Trained(arch, "prefix"), 5))),
        .. Gqa(arch) ? Array.Empty<(string, string)>() : [("lora", Trained(arch, "lora"))],
    ];

    /// <summary>Added in this order: the trained prefix (8 tokens, longer than the exported one), the projected one, a 3-token one and a LoRA adapter.</summary>
    private static IReadOnlyList<(string Name, string Dir)> Added(string arch) =>
    [
        ("prefix", Trained(arch, "prefix")),
        ("prefix_proj", Trained(arch, "prefix_proj")),
        ("prefix_short", Cached($"{arch}/short", () => RuntimeAdapterFolders.PrefixOfLength(Trained(arch, "prefix_proj"), 3))),
        .. Gqa(arch) ? Array.Empty<(string, string)>() : [("lora2", Trained(arch, "lora"))],
    ];

    private static string BaseModel(string arch) => Case(arch, "base_model");

    private static string Partial(string arch) => MultiAdapterFolders.Multi($"prefixadd/{arch}/partial", BaseModel(arch), Exported(arch));

    /// <summary>The reference: every adapter exported, in the slots the run-time adds give them.</summary>
    private static string Reference(string arch) => MultiAdapterFolders.Multi($"prefixadd/{arch}/reference", BaseModel(arch), [.. Exported(arch), .. Added(arch)]);

    private static string Single(string arch, string name) =>
        MultiAdapterFolders.Single($"prefixadd/{arch}/{name}", BaseModel(arch), Added(arch).Concat(Exported(arch)).Single(a => a.Name == name).Dir);

    private static OnnxModel LoadWithAdded(string arch)
    {
        var model = OnnxModel.Load(Partial(arch), DeviceOptions.Cpu);
        foreach (var (name, dir) in Added(arch)) model.AddAdapter(name, dir);
        return model;
    }

    private static IReadOnlyList<int> Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => 3 + (row * 7 + t * 5) % 40).ToArray();

    private static (string? Adapter, int Length)[] Rows(string arch) =>
        new (string?, int)[] { ("prefix", 5), (null, 4), ("prefix_short", 3), ("lora2", 6), ("prefix_proj", 2), ("prefix_mid", 5), ("lora", 4), ("prefix", 3) }
            .Where(r => !Gqa(arch) || r.Item1 is not ("lora" or "lora2")).ToArray();

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("llama_gqa")]
    [InlineData("opt")]
    public void Prefix_adapters_added_at_run_time_equal_the_same_adapters_exported_in_a_mixed_batch(string arch)
    {
        using var added = LoadWithAdded(arch);
        using var reference = OnnxModel.Load(Reference(arch), DeviceOptions.Cpu);
        Assert.Equal(reference.Adapters, added.Adapters);
        var rows = Rows(arch);
        GenerationRequest Mixed() => new()
        {
            InputIds = rows.Select((r, i) => Prompt(r.Length, i)).ToArray(),
            Adapters = rows.Select(r => r.Adapter).ToArray(),
            Options = GenerationOptions.Greedy(6),
        };
        using var a = added.CreateGenerator(Mixed());
        using var r = reference.CreateGenerator(Mixed());
        int vocab = added.VocabSize;
        while (!r.IsDone)
        {
            a.GenerateNextToken();
            r.GenerateNextToken();
            for (int row = 0; row < rows.Length; row++)
                Tolerance.AssertLogits(r.Session.Logits(row).ToArray(), a.Session.Logits(row).ToArray(), vocab,
                    what: $"{arch} step {r.Step} row {row} ({rows[row].Adapter ?? "base"})");
        }
        Assert.True(a.IsDone);
        Assert.Equal(r.GetNewTokens(), a.GetNewTokens());

        // each added prefix answers as its own single-adapter export, and differs from the base
        foreach (var name in new[] { "prefix", "prefix_proj", "prefix_short" })
        {
            var prompt = Prompt(4, 2);
            var request = new GenerationRequest { InputIds = [prompt], Adapter = name, Options = GenerationOptions.Greedy(6) };
            using var single = OnnxModel.Load(Single(arch, name), DeviceOptions.Cpu);
            Assert.Equal(single.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).NewTokens[0], added.Generate(request).NewTokens[0]);
            using var withAdapter = added.CreateGenerator(request with { Options = GenerationOptions.Greedy(1) });
            using var onBase = added.CreateGenerator(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(1)));
            withAdapter.GenerateNextToken();
            onBase.GenerateNextToken();
            var diff = withAdapter.Session.Logits(0).ToArray().Zip(onBase.Session.Logits(0).ToArray()).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(diff > 1e-3, $"{arch}: prefix {name} left the logits unchanged ({diff})");
        }
    }

    [Fact]
    public void The_export_records_its_prefix_stacks_and_an_added_longer_prefix_grows_them()
    {
        var manifest = AdapterManifest.Load(Partial("bloom"))!;
        var data = new FileInfo(Path.Combine(Partial("bloom"), CausalLmContract.DataFile)).Length;
        var prefixStacks = manifest.Stacks.Where(s => PrefixStackNames.Parse(s.Name) != null).ToList();
        Assert.Equal([PrefixStackNames.Key(0), PrefixStackNames.Value(0), PrefixStackNames.Key(1), PrefixStackNames.Value(1)], prefixStacks.Select(s => s.Name));
        Assert.All(prefixStacks, s => Assert.True(s.Offset + s.Length <= data));
        Assert.Equal([3, 4, 16, 5], prefixStacks[0].Dims);      // two adapters and the base, 4 heads, head_dim 16, 5 tokens
        Assert.Equal([3, 4, 5, 16], prefixStacks[1].Dims);
        Assert.Equal([7, 4, 16, 8], AdapterManifest.Load(Reference("bloom"))!.Stacks.Single(s => s.Name == PrefixStackNames.Key(0)).Dims);
    }

    [Fact]
    public async Task Adding_a_longer_prefix_and_removing_one_while_it_streams_leave_its_answer_unchanged()
    {
        using var model = LoadWithAdded("bloom");
        using var reference = OnnxModel.Load(Reference("bloom"), DeviceOptions.Cpu);
        var prompt = Prompt(5, 3);
        GenerationRequest On(string name) => new() { InputIds = [prompt], Adapter = name, Options = GenerationOptions.Greedy(8) };
        var expected = reference.Generate(On("prefix")).NewTokens[0];
        var expectedMid = reference.Generate(On("prefix_mid")).NewTokens[0];
        var longDir = Cached("bloom/long", () => RuntimeAdapterFolders.PrefixOfLength(Trained("bloom", "prefix"), 12));

        var streamed = new List<int>();
        using var exported = model.CreateGenerator(On("prefix_mid"));
        exported.GenerateNextToken();
        await foreach (var token in model.StreamAsync(On("prefix")))
        {
            streamed.Add(token.TokenId);
            if (streamed.Count == 2)
            {
                model.AddAdapter("prefix_long", longDir);   // grows every slot's prefix to 12 tokens
                model.RemoveAdapter("prefix");
                model.RemoveAdapter("prefix_mid");
            }
        }
        while (!exported.IsDone) exported.GenerateNextToken();
        Assert.Equal(expected, streamed);
        Assert.Equal(expectedMid, exported.GetNewTokens()[0]);
        Assert.Contains("unknown adapter 'prefix'", Assert.Throws<PeftOnnxException>(() => model.Generate(On("prefix"))).Message);
        Assert.Equal(["lora", "prefix_proj", "prefix_short", "lora2", "prefix_long"], model.Adapters);

        // the longer prefix answers as its own export; the others as before, in one mixed batch
        using (var single = OnnxModel.Load(MultiAdapterFolders.Single("prefixadd/bloom/long", BaseModel("bloom"), longDir), DeviceOptions.Cpu))
            Assert.Equal(single.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(8))).NewTokens[0], model.Generate(On("prefix_long")).NewTokens[0]);
        string?[] names = ["prefix_short", "prefix_long", null, "lora2", "prefix_proj"];
        var prompts = names.Select((_, i) => Prompt(3 + i, i)).ToArray();
        var mixed = model.Generate(new GenerationRequest { InputIds = prompts, Adapters = names, Options = GenerationOptions.Greedy(6) });
        for (int i = 0; i < names.Length; i++)
        {
            var alone = names[i] == "prefix_long"
                ? model.Generate(new GenerationRequest { InputIds = [prompts[i]], Adapter = names[i], Options = GenerationOptions.Greedy(6) })
                : reference.Generate(new GenerationRequest { InputIds = [prompts[i]], Adapter = names[i], Options = GenerationOptions.Greedy(6) });
            Assert.Equal(alone.NewTokens[0], mixed.NewTokens[i]);
        }

        // the freed slot of an exported prefix takes the next adapter, a LoRA one, which has no prefix there
        model.AddAdapter("lora3", Trained("bloom", "lora"));
        Assert.Equal(["lora3", "lora", "prefix_proj", "prefix_short", "lora2", "prefix_long"], model.Adapters);
        var lora = new GenerationRequest { InputIds = [prompt], Adapter = "lora", Options = GenerationOptions.Greedy(8) };
        Assert.Equal(reference.Generate(lora).NewTokens[0], model.Generate(lora with { Adapter = "lora3" }).NewTokens[0]);
    }

    [Fact]
    public void A_continuous_batch_serves_added_prefixes_beside_lora_and_base_rows_as_the_reference_export()
    {
        using var model = LoadWithAdded("gpt2");
        using var reference = OnnxModel.Load(Reference("gpt2"), DeviceOptions.Cpu);
        GenerationRequest On(string? name, int row) => new() { InputIds = [Prompt(3 + row % 4, row)], Adapter = name, Options = GenerationOptions.Greedy(4 + row % 3) };
        string?[] names = ["prefix_proj", null, "lora2", "prefix_short", "prefix", "prefix_mid"];
        var requests = names.Select(On).ToArray();
        using var batch = new Peft.Onnx.Runtime.Batching.ContinuousBatch(model);
        var rows = requests.Select(r => batch.Add(r)!).ToList();
        var produced = rows.ToDictionary(r => r, _ => new List<int>());
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);
        while (batch.Count > 0)
        {
            foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
            batch.RemoveDone();
        }
        for (int i = 0; i < requests.Length; i++) Assert.Equal(reference.Generate(requests[i]).NewTokens[0], produced[rows[i]]);
        foreach (var r in rows) r.Dispose();
    }

    [Fact]
    public void Bad_prefix_adapters_are_refused_in_one_line_and_leave_the_model_unchanged()
    {
        using var model = LoadWithAdded("bloom");
        var names = model.Adapters.ToArray();
        var prompt = Prompt(4, 3);
        int[] Tokens(string? adapter) => model.Generate(new GenerationRequest { InputIds = [prompt], Adapter = adapter, Options = GenerationOptions.Greedy(5) }).NewTokens[0];
        var before = names.Select(Tokens).ToArray();

        void Refused(Action act, params string[] parts)
        {
            var e = Assert.Throws<PeftOnnxException>(act);
            Assert.DoesNotContain('\n', e.Message);
            foreach (var p in parts) Assert.Contains(p, e.Message);
            Assert.Equal(names, model.Adapters);
        }

        var other = RuntimeAdapterFolders.PrefixForOtherBase(Trained("bloom", "prefix"), out var shape, out var expected);
        Refused(() => model.AddAdapter("other", other), "'prompt_embeddings'", $"[{shape[0]}, {shape[1]}]", $"[{expected[0]}, {expected[1]}]");
        Refused(() => model.AddAdapter("prefix", Trained("bloom", "prefix_proj")), "AddAdapter prefix", "an adapter named 'prefix' is loaded already");
        Refused(() => model.AddAdapter("prompt", Trained("bloom", "prompt_tuning_text")), "PROMPT_TUNING", "cannot be added at run time", "no embeddings input");
        Refused(() => model.AddAdapter("ptuning", Trained("bloom", "p_tuning_mlp")), "P_TUNING", "cannot be added at run time");
        Refused(() => model.RemoveAdapter("nope"), "unknown adapter 'nope'", "prefix_mid");
        Assert.Equal(before, names.Select(Tokens).ToArray());

        // an export stacking no prefix refuses a prefix adapter, naming what to export instead
        using var loraOnly = OnnxModel.Load(MultiAdapterFolders.Multi("prefixadd/bloom/lora-only", BaseModel("bloom"), [("lora", Trained("bloom", "lora"))]), DeviceOptions.Cpu);
        var error = Assert.Throws<PeftOnnxException>(() => loraOnly.AddAdapter("prefix", Trained("bloom", "prefix")));
        Assert.Equal("AddAdapter prefix: ", error.Message[..19]);
        Assert.Contains("stacks no prefixes", error.Message);
        Assert.Contains("at least one prefix-tuning, prompt-tuning or p-tuning adapter", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Equal(["lora"], loraOnly.Adapters);
    }
}
