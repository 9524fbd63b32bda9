using System.Collections.Concurrent;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// One export holding several trained adapters (LoRA plain, all-linear, DoRA, lora_bias; IA3) on one base: every row of a
/// mixed batch (different lengths, left padding, one adapter repeated, the base in the middle) equals that adapter's own
/// merged export, in logits and greedy tokens; base rows equal the base export.
/// </summary>
public class MultiAdapterExportTests
{
    /// <summary>name -> adapter folder (trained, so that every adapter changes the outputs).</summary>
    public static IReadOnlyList<(string Name, string Dir)> Adapters(string arch) =>
    [
        ("plain", Paths.Case(arch, "lora/adapter_trained")),
        ("all_linear", Paths.Case(arch, "lora_all/adapter_trained")),
        ("dora", Paths.CurrentCase(arch, "lora_dora/adapter_trained")),
        ("with_bias", Paths.CurrentCase(arch, "lora_bias/adapter_trained")),
        ("ia3", Paths.Case(arch, "ia3/adapter_trained")),
    ];

    /// <summary>Rows as (adapter or null, prompt length): lengths differ, "plain" twice, the base in the middle.</summary>
    private static readonly (string? Adapter, int Length)[] Rows =
        [("plain", 5), ("dora", 3), (null, 4), ("ia3", 5), ("all_linear", 7), ("plain", 2), ("with_bias", 6)];

    /// <summary>The multi-adapter export of <paramref name="arch"/>'s five adapters, written once per run.</summary>
    public static string MultiExport(string arch) => MultiAdapterFolders.Multi($"five/{arch}", Paths.Case(arch, "base_model"), Adapters(arch));

    /// <summary>The single-adapter merged export of one adapter (null = the base), written once per run.</summary>
    public static string SingleExport(string arch, string? adapter) =>
        MultiAdapterFolders.Single($"five/{arch}/{adapter ?? "(base)"}", Paths.Case(arch, "base_model"), adapter == null ? null : Adapters(arch).Single(x => x.Name == adapter).Dir);

    private static long[] Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => (long)(3 + (row * 7 + t * 5) % 40)).ToArray();

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("opt")]
    public void Every_row_of_a_mixed_batch_has_the_logits_of_its_own_export(string arch)
    {
        var multi = MultiExport(arch);
        var manifest = AdapterManifest.Load(multi)!;
        Assert.Equal(Adapters(arch).Select(a => a.Name), manifest.Adapters.Select(a => a.Name));
        int batch = Rows.Length;
        var (ids, mask, total) = MultiAdapterFolders.LeftPadded(Rows.Select((r, i) => Prompt(r.Length, i)).ToArray());
        var indices = Rows.Select(r => manifest.IndexOf(r.Adapter)).ToArray();
        using var mixed = CausalLmForward.Open(Path.Combine(multi, CausalLmContract.ModelFile));
        Assert.True(mixed.TakesAdapterIndex);
        int vocab = mixed.VocabSize;
        var all = mixed.Logits(ids, mask, batch, indices);
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(Rows[r].Length, r);
            using var single = CausalLmForward.Open(Path.Combine(SingleExport(arch, Rows[r].Adapter), CausalLmContract.ModelFile));
            var expected = single.Logits(prompt, BatchSlices.Ones(prompt.Length), 1);
            int pad = total - prompt.Length;
            var actual = all.AsSpan((r * total + pad) * vocab, prompt.Length * vocab).ToArray();
            Tolerance.AssertLogits(expected, actual, vocab, what: $"{arch} row {r} ({Rows[r].Adapter ?? "base"})");
        }
        // an adapter really changes the row: the same prompt under another adapter differs from the base export
        using var baseForward = CausalLmForward.Open(Path.Combine(SingleExport(arch, null), CausalLmContract.ModelFile));
        var p0 = Prompt(Rows[0].Length, 0);
        var baseLogits = baseForward.Logits(p0, BatchSlices.Ones(p0.Length), 1);
        var row0 = all.AsSpan((total - p0.Length) * vocab, p0.Length * vocab).ToArray();
        Assert.True(baseLogits.Zip(row0).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the adapter left the logits unchanged");
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("opt")]
    public void Every_row_of_a_mixed_greedy_batch_generates_the_tokens_of_its_own_export(string arch)
    {
        using var model = OnnxModel.Load(MultiExport(arch), DeviceOptions.Cpu);
        Assert.Equal(Adapters(arch).Select(a => a.Name), model.Adapters);
        var prompts = Rows.Select((r, i) => (IReadOnlyList<int>)Prompt(r.Length, i).Select(v => (int)v).ToArray()).ToArray();
        var result = MultiAdapterFolders.AssertRowsGenerateAsTheirOwnExports(model, Rows.Select(r => r.Adapter).ToArray(), prompts, a => SingleExport(arch, a), 8);
        // the whole batch on one adapter (GenerationRequest.Adapter) equals the per-row choice of it
        var allDora = model.Generate(new GenerationRequest { InputIds = prompts, Adapter = "dora", Options = GenerationOptions.Greedy(8) });
        Assert.Equal(result.NewTokens[1], allDora.NewTokens[1]);
    }
}
