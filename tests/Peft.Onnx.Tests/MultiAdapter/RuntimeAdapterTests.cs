using System.Collections.Concurrent;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Adapters;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// OnnxModel.AddAdapter / RemoveAdapter on a multi-adapter export: adapters added at run time (LoRA, lora_bias, IA3,
/// a rank above the export's padded rank) give, in logits at every step and in greedy tokens, what the same adapters
/// exported in the folder give, mixed in one batch with exported adapters and the base; removal never disturbs a request
/// in flight; bad input is refused in one line and leaves the model as it was.
/// </summary>
public class RuntimeAdapterTests
{
    /// <summary>What the folder exports: LoRA on every linear module, DoRA, IA3, LoRA with lora_bias (so each kind has its stacks).</summary>
    private static IReadOnlyList<(string Name, string Dir)> Exported(string arch) =>
        MultiAdapterExportTests.Adapters(arch).Where(a => a.Name is "all_linear" or "dora" or "ia3" or "with_bias").ToList();

    private static readonly ConcurrentDictionary<string, Lazy<string>> Folders = new();

    /// <summary>Added at run time, in this order: a plain LoRA, IA3, lora_bias and DoRA adapters again under new names, and one of twice the rank.</summary>
    private static IReadOnlyList<(string Name, string Dir)> Added(string arch)
    {
        var all = MultiAdapterExportTests.Adapters(arch);
        string Dir(string name) => all.Single(a => a.Name == name).Dir;
        var big = Folders.GetOrAdd($"{arch}/big", _ => new Lazy<string>(() => RuntimeAdapterFolders.DoubledRank(Dir("plain")))).Value;
        return [("plain", Dir("plain")), ("ia3b", Dir("ia3")), ("bias2", Dir("with_bias")), ("dora2", Dir("dora")), ("big", big)];
    }

    private static string Export(string arch, string key, IReadOnlyList<(string Name, string Dir)> adapters) =>
        MultiAdapterFolders.Multi($"runtime/{arch}/{key}", Paths.Case(arch, "base_model"), adapters);

    /// <summary>The folder with only the exported adapters.</summary>
    private static string Partial(string arch) => Export(arch, "partial", Exported(arch));

    /// <summary>The reference: every adapter exported, in the slots the run-time adds give them.</summary>
    private static string Reference(string arch) => Export(arch, "reference", [.. Exported(arch), .. Added(arch)]);

    private static OnnxModel LoadWithAdded(string arch)
    {
        var model = OnnxModel.Load(Partial(arch), DeviceOptions.Cpu);
        foreach (var (name, dir) in Added(arch)) model.AddAdapter(name, dir);
        return model;
    }

    private static IReadOnlyList<int> Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => 3 + (row * 7 + t * 5) % 40).ToArray();

    private static readonly (string? Adapter, int Length)[] Rows =
        [("plain", 5), (null, 4), ("big", 3), ("all_linear", 6), ("ia3b", 5), ("bias2", 2), ("ia3", 4), ("dora2", 4), ("plain", 3)];

    private static GenerationRequest MixedRequest(int tokens) => new()
    {
        InputIds = Rows.Select((r, i) => Prompt(r.Length, i)).ToArray(),
        Adapters = Rows.Select(r => r.Adapter).ToArray(),
        Options = GenerationOptions.Greedy(tokens),
    };

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void Adapters_added_at_run_time_equal_the_same_adapters_exported_in_a_mixed_batch(string arch)
    {
        using var added = LoadWithAdded(arch);
        using var reference = OnnxModel.Load(Reference(arch), DeviceOptions.Cpu);
        Assert.Equal(reference.Adapters, added.Adapters);
        using var a = added.CreateGenerator(MixedRequest(6));
        using var r = reference.CreateGenerator(MixedRequest(6));
        int vocab = added.VocabSize;
        while (!r.IsDone)
        {
            a.GenerateNextToken();
            r.GenerateNextToken();
            for (int row = 0; row < Rows.Length; row++)
                Tolerance.AssertLogits(r.Session.Logits(row).ToArray(), a.Session.Logits(row).ToArray(), vocab,
                    what: $"{arch} step {r.Step} row {row} ({Rows[row].Adapter ?? "base"})");
        }
        Assert.True(a.IsDone);
        Assert.Equal(r.GetNewTokens(), a.GetNewTokens());

        // the added adapters really act: the same prompt on the base gives other logits for each of them
        foreach (var name in new[] { "plain", "ia3b", "bias2", "dora2", "big" })
        {
            var prompt = Prompt(4, 1);
            using var withAdapter = added.CreateGenerator(new GenerationRequest { InputIds = [prompt], Adapter = name, Options = GenerationOptions.Greedy(1) });
            using var onBase = added.CreateGenerator(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(1)));
            withAdapter.GenerateNextToken();
            onBase.GenerateNextToken();
            var diff = withAdapter.Session.Logits(0).ToArray().Zip(onBase.Session.Logits(0).ToArray()).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(diff > 1e-3, $"{arch}: adapter {name} left the logits unchanged ({diff})");
        }
    }

    [Fact]
    public void Added_adapters_append_their_rows_without_padding_and_the_manifest_records_every_stack_in_the_data_file()
    {
        var manifest = AdapterManifest.Load(Partial("bloom"))!;
        Assert.NotEmpty(manifest.Stacks);
        Assert.Equal(LoraStackLayout.Rows, manifest.LoraLayout);
        var data = new FileInfo(Path.Combine(Partial("bloom"), CausalLmContract.DataFile)).Length;
        Assert.All(manifest.Stacks, s =>
        {
            Assert.Equal(CausalLmContract.DataFile, s.Location);
            Assert.True(s.Offset + s.Length <= data);
            if (AdapterStackNames.Parse(s.Name)!.Value.Kind is not (AdapterStackKind.LoraA or AdapterStackKind.LoraB))
                Assert.Equal(5, s.Dims[0]); // four adapters and the base
        });
        // the DoRA modules' float32 base weights are recorded for DoRA adapters added later
        Assert.Equal(manifest.Stacks.Count(st => AdapterStackNames.Parse(st.Name)?.Kind == AdapterStackKind.DoraScale), manifest.BaseWeights.Count);
        Assert.All(manifest.BaseWeights, w => Assert.True(w.Offset + w.Length <= data));

        // no rank padding and no base slot: qkv's A holds the zero row and each LoRA adapter's own rank of rows, and its
        // index table lists each adapter's rows (the base's last row none)
        const string qkvPath = "transformer.h.0.self_attention.query_key_value";
        var qkv = manifest.Stacks.Single(s => s.Name == AdapterStackNames.Name(qkvPath, AdapterStackKind.LoraA));
        var (tableName, _) = manifest.RowTableUsers.Single(t => t.Value.Contains(qkvPath));
        var table = StackFile.Read(Partial("bloom"), manifest.Stacks.Single(s => s.Name == tableName));
        int width = (int)manifest.Stacks.Single(s => s.Name == tableName).Dims[1];
        var owned = Enumerable.Range(0, 5).Select(k => table.Skip(k * width).Take(width).Count(v => v > 0)).ToArray();
        Assert.Equal(manifest.Adapters.Select(a => a.Method == "LORA" ? a.Rank : 0).Append(0), owned);
        Assert.Equal(1 + owned.Sum(), qkv.Dims[0]);
        Assert.Equal(64, qkv.Dims[1]);

        // adapters added at run time (the big one at rank 8, above every exported rank) append exactly their rows: the
        // same stacks as the reference, which exported them all
        var reference = AdapterManifest.Load(Reference("bloom"))!;
        var config = Peft.Onnx.Core.Configs.ModelConfig.Load(Paths.Case("bloom", "base_model"));
        using var registry = new AdapterRegistry(Partial("bloom"), manifest, Peft.Onnx.Core.Architectures.Architecture.For(config));
        foreach (var (name, dir) in Added("bloom")) registry.Add(name, dir);
        using var lease = registry.Lease();
        var grown = lease.Slots.Stacks!;
        var expected = StackFile.ReadAll(Reference("bloom"), reference.Stacks);
        Assert.Equal(expected[qkv.Name].Dims, grown[qkv.Name].Dims);
        Assert.Equal(1 + reference.Adapters.Where(a => a.Method == "LORA").Sum(a => a.Rank), grown[qkv.Name].Dims[0]);
        foreach (var kind in new[] { AdapterStackKind.LoraA, AdapterStackKind.LoraB })
            Assert.Equal(expected[AdapterStackNames.Name(qkvPath, kind)].Values, grown[AdapterStackNames.Name(qkvPath, kind)].Values);
        Assert.Equal(expected[tableName].Values, grown[tableName].Values);
    }

    [Fact]
    public void A_continuous_batch_runs_added_adapters_and_holds_rows_of_a_newer_adapter_state_until_it_drains()
    {
        using var model = LoadWithAdded("bloom");
        using var reference = OnnxModel.Load(Reference("bloom"), DeviceOptions.Cpu);
        GenerationRequest On(string? name, int row, int tokens) => new() { InputIds = [Prompt(4 + row % 3, row)], Adapter = name, Options = GenerationOptions.Greedy(tokens) };
        string?[] names = ["big", null, "plain", "dora2", "all_linear", "ia3b"];
        var requests = names.Select((n, i) => On(n, i, 5 + i % 3)).ToArray();

        using var batch = new Peft.Onnx.Runtime.Batching.ContinuousBatch(model);
        var rows = requests.Select(r => batch.Add(r)!).ToList();
        var produced = rows.ToDictionary(r => r, _ => new List<int>());
        foreach (var f in batch.Prefill()) produced[f.Row].Add(f.TokenId);

        // an adapter added while rows run: the running rows keep theirs; a new row waits (null) until the batch drains
        model.AddAdapter("late", MultiAdapterExportTests.Adapters("bloom").Single(a => a.Name == "plain").Dir);
        var late = On("late", 7, 4);
        Assert.Null(batch.Add(late));
        while (batch.Count > 0)
        {
            foreach (var t in batch.Step()) produced[t.Row].Add(t.TokenId);
            batch.RemoveDone();
        }
        for (int i = 0; i < requests.Length; i++) Assert.Equal(reference.Generate(requests[i]).NewTokens[0], produced[rows[i]]);

        var lateRow = batch.Add(late)!;
        var lateTokens = new List<int>();
        foreach (var f in batch.Prefill()) lateTokens.Add(f.TokenId);
        while (batch.Count > 0)
        {
            foreach (var t in batch.Step()) lateTokens.Add(t.TokenId);
            batch.RemoveDone();
        }
        Assert.Equal(reference.Generate(On("plain", 7, 4)).NewTokens[0], lateTokens);
        Assert.Equal(model.Generate(late).NewTokens[0], lateTokens);
        lateRow.Dispose();
        foreach (var r in rows) r.Dispose();
    }

    [Fact]
    public async Task Removing_an_adapter_lets_its_streaming_request_finish_and_refuses_new_ones()
    {
        using var model = LoadWithAdded("bloom");
        using var reference = OnnxModel.Load(Reference("bloom"), DeviceOptions.Cpu);
        var prompt = Prompt(5, 2);
        GenerationRequest On(string name) => new() { InputIds = [prompt], Adapter = name, Options = GenerationOptions.Greedy(8) };
        var expectedPlain = reference.Generate(On("plain")).NewTokens[0];
        var expectedExported = reference.Generate(On("all_linear")).NewTokens[0];

        var streamed = new List<int>();
        using var exported = model.CreateGenerator(On("all_linear"));
        exported.GenerateNextToken();
        await foreach (var token in model.StreamAsync(On("plain")))
        {
            streamed.Add(token.TokenId);
            if (streamed.Count == 2)
            {
                model.RemoveAdapter("plain");
                model.RemoveAdapter("all_linear");
            }
        }
        while (!exported.IsDone) exported.GenerateNextToken();
        Assert.Equal(expectedPlain, streamed);
        Assert.Equal(expectedExported, exported.GetNewTokens()[0]);

        Assert.Equal(["dora", "with_bias", "ia3", "ia3b", "bias2", "dora2", "big"], model.Adapters);
        var error = Assert.Throws<PeftOnnxException>(() => model.Generate(On("plain")));
        Assert.Equal("unknown adapter 'plain' (this export has: dora, with_bias, ia3, ia3b, bias2, dora2, big; omit the adapter for the base)", error.Message);
        Assert.Contains("unknown adapter 'all_linear'", Assert.Throws<PeftOnnxException>(() => model.Generate(On("all_linear"))).Message);

        // a freed slot is taken again by the next adapter, which answers as its exported twin
        model.AddAdapter("plain_again", MultiAdapterExportTests.Adapters("bloom").Single(a => a.Name == "plain").Dir);
        Assert.Equal(["plain_again", "dora", "with_bias", "ia3", "ia3b", "bias2", "dora2", "big"], model.Adapters);
        Assert.Equal(expectedPlain, model.Generate(On("plain_again")).NewTokens[0]);
        Assert.Equal(reference.Generate(On("big")).NewTokens[0], model.Generate(On("big")).NewTokens[0]);
    }

    [Fact]
    public async Task Adds_and_removes_while_many_generations_run_leave_every_answer_unchanged()
    {
        using var model = LoadWithAdded("bloom");
        var plainDir = MultiAdapterExportTests.Adapters("bloom").Single(a => a.Name == "plain").Dir;
        string?[] stable = ["plain", "all_linear", "ia3b", "dora2", null];
        GenerationRequest On(string? name, int i) => new() { InputIds = [Prompt(3 + i % 4, i)], Adapter = name, Options = GenerationOptions.Greedy(5) };
        var expected = Enumerable.Range(0, 8).SelectMany(i => stable.Select(n => (i, n))).ToDictionary(k => k, k => model.Generate(On(k.n, k.i)).NewTokens[0]);
        // own threads (not the pool, which a busy machine may not start in time): the mutator adds and removes a fixed
        // number of times while the workers generate until it is done
        int mutations = 0;
        var mutator = Task.Factory.StartNew(() =>
        {
            for (int k = 0; k < 9; k++)
            {
                var name = $"tmp{k % 3}";
                model.AddAdapter(name, plainDir);
                Assert.Equal(expected[(k % 8, "plain")], model.Generate(On(name, k % 8)).NewTokens[0]);
                model.RemoveAdapter(name);
                Interlocked.Increment(ref mutations);
            }
        }, TaskCreationOptions.LongRunning);
        var workers = Enumerable.Range(0, 4).Select(w => Task.Factory.StartNew(() =>
        {
            for (int round = 0; round < 2 || !mutator.IsCompleted; round++)
                foreach (var n in stable)
                {
                    int i = (w + round) % 8;
                    Assert.Equal(expected[(i, n)], model.Generate(On(n, i)).NewTokens[0]);
                }
        }, TaskCreationOptions.LongRunning)).ToArray();
        await Task.WhenAll([mutator, .. workers]);
        Assert.Equal(9, mutations);
        Assert.Equal(["all_linear", "dora", "with_bias", "ia3", "plain", "ia3b", "bias2", "dora2", "big"], model.Adapters);
    }

    [Fact]
    public void Bad_adapters_are_refused_in_one_line_and_leave_the_model_unchanged()
    {
        using var model = LoadWithAdded("bloom");
        var all = MultiAdapterExportTests.Adapters("bloom");
        string Dir(string name) => all.Single(a => a.Name == name).Dir;
        var names = model.Adapters.ToArray();
        var prompt = Prompt(4, 3);
        int[] Tokens(string? adapter) => model.Generate(new GenerationRequest { InputIds = [prompt], Adapter = adapter, Options = GenerationOptions.Greedy(6) }).NewTokens[0];
        var before = names.Select(Tokens).ToArray();
        var baseBefore = Tokens(null);

        void Refused(Action act, params string[] parts)
        {
            var e = Assert.Throws<PeftOnnxException>(act);
            Assert.DoesNotContain('\n', e.Message);
            foreach (var p in parts) Assert.Contains(p, e.Message);
            Assert.Equal(names, model.Adapters);
        }

        Refused(() => Tokens("nope"), "unknown adapter 'nope'", "this export has: all_linear, dora, with_bias, ia3, plain, ia3b, bias2, dora2, big");
        Refused(() => model.AddAdapter("plain", Dir("plain")), "AddAdapter plain", "an adapter named 'plain' is loaded already");
        Refused(() => model.AddAdapter("not ok!", Dir("plain")), "'not ok!' is not a plain identifier");
        Refused(() => model.AddAdapter("9lives", Dir("plain")), "'9lives' is not a plain identifier");
        var other = RuntimeAdapterFolders.OtherBase(Dir("plain"), out var tensor, out var shape);
        Refused(() => model.AddAdapter("other", other), tensor, $"[{shape[0]}, {shape[1]}]", $"[{shape[0]}, {shape[1] - 8}]");
        Refused(() => model.AddAdapter("prompt", Paths.Case("bloom", "prompt_tuning_text/adapter_trained")), "PROMPT_TUNING", "cannot be added at run time", "virtual tokens");
        Refused(() => model.AddAdapter("prefix", Paths.Case("bloom", "prefix/adapter_trained")), "AddAdapter prefix", "prefix-tuning adapter", "stacks no prefixes", "export the folder with at least one prefix-tuning");
        Refused(() => model.AddAdapter("loha", Paths.CurrentCase("bloom", "loha/adapter_trained")), "LOHA", "adapters added at run time are LoRA or IA3");
        Refused(() => model.AddAdapter("missing", Path.Combine(Path.GetTempPath(), "no-such-adapter-folder")), "not found");
        Refused(() => model.RemoveAdapter("nope"), "unknown adapter 'nope'");

        Assert.Equal(before, names.Select(Tokens).ToArray());
        Assert.Equal(baseBefore, Tokens(null));
    }

    [Fact]
    public void Exports_without_room_for_an_adapter_refuse_it_naming_why()
    {
        var plain = MultiAdapterExportTests.Adapters("bloom").Single(a => a.Name == "plain").Dir;
        using (var single = OnnxModel.Load(MultiAdapterExportTests.SingleExport("bloom", null), DeviceOptions.Cpu))
        {
            var e = Assert.Throws<PeftOnnxException>(() => single.AddAdapter("plain", plain));
            Assert.Contains("not a multi-adapter export", e.Message);
            Assert.Contains("--adapter NAME=DIR", e.Message);
            Assert.Empty(single.Adapters);
        }
        var ia3Only = Export("bloom", "ia3-only", MultiAdapterExportTests.Adapters("bloom").Where(a => a.Name == "ia3").ToList());
        using var model = OnnxModel.Load(ia3Only, DeviceOptions.Cpu);
        var error = Assert.Throws<PeftOnnxException>(() => model.AddAdapter("plain", plain));
        Assert.Contains("targets 'transformer.h.0.self_attention.query_key_value' but this export stacks no LoRA there", error.Message);
        Assert.Equal(["ia3"], model.Adapters);
    }
}
