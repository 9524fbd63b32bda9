using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// Prompt tuning, p-tuning and prefix tuning adapters in one multi-adapter export beside LoRA and IA3: every row of a
/// mixed batch (different lengths, left padding, prefixes of different lengths, the base in the middle) equals that
/// adapter's own single-adapter export, in logits and greedy tokens; base rows equal the base export.
/// </summary>
public class MultiAdapterPromptTests
{
    /// <summary>name -> adapter folder; "prompt_short" and "prefix_short" are trained fixtures cut to fewer virtual tokens.</summary>
    private static IReadOnlyList<(string Name, string Dir)> Adapters(string arch) =>
    [
        ("prompt", Paths.Case(arch, "prompt_tuning_random/adapter_trained")),
        ("lora", Paths.Case(arch, "lora/adapter_trained")),
        ("prefix", Paths.Case(arch, "prefix/adapter_trained")),
        ("ptuning", Paths.Case(arch, "p_tuning_mlp/adapter_trained")),
        ("ia3", Paths.Case(arch, "ia3/adapter_trained")),
        ("prefix_short", Shortened(arch, "prefix", 5)),
        ("prompt_short", Shortened(arch, "prompt_tuning_random", 3)),
    ];

    /// <summary>Rows as (adapter or null, prompt length).</summary>
    private static readonly (string? Adapter, int Length)[] Rows =
    [
        ("prompt", 5), ("lora", 3), (null, 4), ("prefix", 6), ("prefix_short", 2), ("ptuning", 7), ("prompt", 3),
        ("prompt_short", 4), ("ia3", 5),
    ];

    private static readonly ConcurrentDictionary<string, Lazy<string>> Made = new();

    /// <summary>
    /// A fixture's trained prompt-learning adapter keeping only its first <paramref name="nv"/> virtual tokens (a valid
    /// adapter of its own): of each block of num_virtual_tokens rows (one per transformer submodule) the first nv.
    /// </summary>
    internal static string Shortened(string arch, string method, int nv) => Made.GetOrAdd($"{arch}/{method}/{nv}", _ => new Lazy<string>(() =>
    {
        var source = Paths.Case(arch, method + "/adapter_trained");
        var dir = TempExports.FreshPath();
        Directory.CreateDirectory(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        int original = config["num_virtual_tokens"]!.GetValue<int>();
        config["num_virtual_tokens"] = nv;
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var file = SafeTensorsFile.Open(AdapterFormat.WeightsPath(source));
        var shape = file[AdapterFormat.PromptEmbeddings].Shape;
        int width = (int)shape[1], blocks = (int)shape[0] / original;
        var all = file.ReadFloat32(AdapterFormat.PromptEmbeddings);
        var rows = Enumerable.Range(0, blocks).SelectMany(b => all.AsSpan(b * original * width, nv * width).ToArray()).ToArray();
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, [blocks * nv, width], rows)]);
        return dir;
    })).Value;

    private static string MultiExport(string arch) => MultiAdapterFolders.Multi($"prompt/{arch}", Paths.Case(arch, "base_model"), Adapters(arch));

    private static string SingleExport(string arch, string? adapter) =>
        MultiAdapterFolders.Single($"prompt/{arch}/{adapter ?? "(base)"}", Paths.Case(arch, "base_model"), adapter == null ? null : Adapters(arch).Single(x => x.Name == adapter).Dir);

    private static long[] Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => (long)(3 + (row * 11 + t * 7) % 50)).ToArray();

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
        Assert.Equal([8, 8, 8, 5, 3], manifest.Adapters.Where(a => a.Name.StartsWith('p')).Select(a => a.Rank));
        Assert.Equal(["PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING"], manifest.Adapters.Take(4).Where(a => a.Name != "lora").Select(a => a.Method));
        int batch = Rows.Length;
        var (ids, mask, total) = MultiAdapterFolders.LeftPadded(Rows.Select((r, i) => Prompt(r.Length, i)).ToArray());
        using var mixed = CausalLmForward.Open(Path.Combine(multi, CausalLmContract.ModelFile));
        Assert.False(File.Exists(Path.Combine(multi, CausalLmContract.PrefixInCacheFile)));
        int vocab = mixed.VocabSize;
        var all = mixed.Logits(ids, mask, batch, Rows.Select(r => manifest.IndexOf(r.Adapter)).ToArray());
        using var baseForward = CausalLmForward.Open(Path.Combine(SingleExport(arch, null), CausalLmContract.ModelFile));
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(Rows[r].Length, r);
            using var single = CausalLmForward.Open(Path.Combine(SingleExport(arch, Rows[r].Adapter), CausalLmContract.ModelFile));
            var expected = single.Logits(prompt, BatchSlices.Ones(prompt.Length), 1);
            int pad = total - prompt.Length;
            var actual = all.AsSpan((r * total + pad) * vocab, prompt.Length * vocab).ToArray();
            Tolerance.AssertLogits(expected, actual, vocab, what: $"{arch} row {r} ({Rows[r].Adapter ?? "base"})");
            if (Rows[r].Adapter == null) continue;
            // the adapter really changes the row
            var baseLogits = baseForward.Logits(prompt, BatchSlices.Ones(prompt.Length), 1);
            Assert.True(baseLogits.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, $"{arch} row {r}: adapter {Rows[r].Adapter} left the logits unchanged");
        }
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("opt")]
    public void Every_row_of_a_mixed_greedy_batch_generates_the_tokens_of_its_own_export(string arch)
    {
        using var model = OnnxModel.Load(MultiExport(arch), DeviceOptions.Cpu);
        var prompts = Rows.Select((r, i) => (IReadOnlyList<int>)Prompt(r.Length, i).Select(v => (int)v).ToArray()).ToArray();
        var result = MultiAdapterFolders.AssertRowsGenerateAsTheirOwnExports(model, Rows.Select(r => r.Adapter).ToArray(), prompts, a => SingleExport(arch, a), 8);
    }

    [Fact]
    public void A_LoRA_adapter_added_at_run_time_beside_exported_prompt_adapters_answers_as_its_own_export_and_a_soft_prompt_is_refused_naming_why()
    {
        using var model = OnnxModel.Load(MultiExport("bloom"), DeviceOptions.Cpu);
        var before = model.Adapters.ToArray();
        var promptDir = Paths.Case("bloom", "prompt_tuning_text/adapter_trained");
        var error = Assert.Throws<PeftOnnxException>(() => model.AddAdapter("late_prompt", promptDir));
        Assert.StartsWith("AddAdapter late_prompt: ", error.Message);
        Assert.Contains("its virtual tokens must run through the base model", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Equal(before, model.Adapters);

        // a LoRA adapter gets an empty prefix slot: it answers as its own export, beside the exported prompt adapters
        model.AddAdapter("late", Adapters("bloom").Single(a => a.Name == "lora").Dir);
        Assert.Equal([.. before, "late"], model.Adapters);
        string?[] rows = ["late", "prompt", null, "prefix_short", "late", "ptuning"];
        var prompts = rows.Select((_, i) => (IReadOnlyList<int>)Prompt(3 + i, i).Select(v => (int)v).ToArray()).ToArray();
        MultiAdapterFolders.AssertRowsGenerateAsTheirOwnExports(model, rows, prompts, a => SingleExport("bloom", a == "late" ? "lora" : a), 6);
    }

    [Fact]
    public void A_row_whose_virtual_tokens_and_prompt_fill_the_context_is_refused_and_the_base_row_is_not()
    {
        using var model = OnnxModel.Load(MultiExport("gpt2"), DeviceOptions.Cpu);   // n_positions 128
        IReadOnlyList<int> prompt = Enumerable.Range(0, 120).Select(t => 3 + t % 40).ToArray();
        var ex = Assert.Throws<PeftOnnxException>(() => model.Generate(new GenerationRequest { InputIds = [prompt], Adapter = "prompt", Options = GenerationOptions.Greedy(2) }));
        Assert.Contains("8 virtual tokens", ex.Message);
        Assert.Equal(2, model.Generate(new GenerationRequest { InputIds = [prompt], Options = GenerationOptions.Greedy(2) }).NewTokens[0].Length);
        Assert.Equal(2, model.Generate(new GenerationRequest { InputIds = [prompt.Take(110).ToArray()], Adapter = "prompt", Options = GenerationOptions.Greedy(2) }).NewTokens[0].Length);
    }

    [Fact]
    public void A_prompt_adapter_made_for_another_base_is_refused_in_one_line_and_nothing_is_written()
    {
        // the fixture's bloom (hidden 64) prefix on the bundled tiny-bloom-fin (hidden 256)
        var outDir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() => MultiAdapterExport.Export(Path.Combine(Paths.Models, "tiny-bloom-fin"),
            [new NamedAdapter("prefix", Paths.Case("bloom", "prefix/adapter_trained"))], outDir, new ExportOptions()));
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains("num_layers = 2 does not fit the base model", ex.Message);
        TempExports.AssertNothingWritten(outDir);
    }

    [Fact]
    public void A_forward_whose_virtual_tokens_and_inputs_overflow_the_position_table_is_refused_in_one_line()
    {
        var multi = MultiExport("gpt2");   // n_positions 128
        var ids = Enumerable.Range(0, 121).Select(t => (long)(3 + t % 40)).ToArray();
        var batch = new ForwardBatch(ids, BatchSlices.Ones(ids.Length), [1, ids.Length], null, null);
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxForward.Run(multi, batch, "inputs.safetensors", adapter: "prefix"));
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains("plus the adapter's 8 virtual tokens (129 positions)", ex.Message);
        // the base and a LoRA row have no virtual tokens
        Assert.Equal(ids.Length * 1000, OnnxForward.Run(multi, batch, "inputs.safetensors", adapter: "lora").Logits.Length);
    }

    /// <summary>
    /// Grouped-query attention (LLaMA with 2 key/value heads for 4 query heads, random weights): the baked soft prompts'
    /// keys/values are per kv head and repeated to the query heads per row; every row equals its own export.
    /// </summary>
    [Fact]
    public void Under_grouped_query_attention_every_prompt_row_has_the_logits_of_its_own_export()
    {
        var gqa = Paths.TempDir("peft-onnx-gqa-multi");
        var written = new List<string>();
        try
        {
            File.WriteAllText(Path.Combine(gqa, "config.json"), """
                { "model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
                  "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": false }
                """);
            var arch = Peft.Onnx.Core.Architectures.Architecture.For(Peft.Onnx.Core.Configs.ModelConfig.Load(gqa));
            DecoderExportChecks.WriteRandomWeights(arch, Path.Combine(gqa, "model.safetensors"), seed: 7);
            (string Name, string Dir)[] adapters =
            [
                ("prompt", Paths.Case("llama", "prompt_tuning_random/adapter_trained")),
                ("ptuning", Paths.Case("llama", "p_tuning_mlp/adapter_trained")),
                ("prompt_short", Shortened("llama", "prompt_tuning_random", 3)),
            ];
            var multi = TempExports.FreshPath();
            written.Add(multi);
            MultiAdapterExport.Export(gqa, adapters.Select(a => new NamedAdapter(a.Name, a.Dir)).ToList(), multi, new ExportOptions());
            (string? Adapter, int Length)[] rows = [("prompt", 4), (null, 6), ("prompt_short", 2), ("ptuning", 5), ("prompt", 6)];
            int batch = rows.Length;
            var (ids, mask, total) = MultiAdapterFolders.LeftPadded(rows.Select((r, i) => Prompt(r.Length, i)).ToArray());
            var manifest = AdapterManifest.Load(multi)!;
            using var mixed = CausalLmForward.Open(Path.Combine(multi, CausalLmContract.ModelFile));
            Assert.Equal(2, mixed.NumHeads);
            var all = mixed.Logits(ids, mask, batch, rows.Select(r => manifest.IndexOf(r.Adapter)).ToArray());
            for (int r = 0; r < batch; r++)
            {
                var single = TempExports.FreshPath();
                written.Add(single);
                OnnxExport.Export(gqa, rows[r].Adapter == null ? null : adapters.Single(a => a.Name == rows[r].Adapter).Dir, single, new ExportOptions { Verify = false });
                var prompt = Prompt(rows[r].Length, r);
                using var alone = CausalLmForward.Open(Path.Combine(single, CausalLmContract.ModelFile));
                var expected = alone.Logits(prompt, BatchSlices.Ones(prompt.Length), 1);
                var actual = all.AsSpan((r * total + total - prompt.Length) * 100, prompt.Length * 100).ToArray();
                Tolerance.AssertLogits(expected, actual, 100, what: $"gqa row {r} ({rows[r].Adapter ?? "base"})");
            }
        }
        finally
        {
            foreach (var dir in written.Append(gqa).Where(Directory.Exists)) Directory.Delete(dir, recursive: true);
        }
    }
}
