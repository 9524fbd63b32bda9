using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// Encoder-decoder multi-adapter exports (T5, mT5): LoRA (plain, all-linear, DoRA, lora_bias) and IA3 adapters chosen per
/// row in both graphs; every row of a mixed batch (different encoder lengths, the base in the middle, one adapter
/// repeated) equals that adapter's own merged export, in teacher-forced logits and greedy tokens.
/// </summary>
public class MultiAdapterSeq2SeqTests
{
    private static readonly (string? Adapter, int Length)[] Rows =
        [("plain", 5), ("ia3", 3), (null, 6), ("dora", 4), ("all_linear", 7), ("plain", 2), ("with_bias", 5)];

    private static long[] Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => (long)(3 + (row * 13 + t * 7) % 60)).ToArray();

    private const int DecoderLength = 4;

    private static long[] DecoderIds(int row) => [0, .. Enumerable.Range(1, DecoderLength - 1).Select(t => (long)(5 + (row * 3 + t * 11) % 50))];

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Every_row_of_a_mixed_batch_has_the_teacher_forced_logits_of_its_own_export(string arch)
    {
        var multi = MultiAdapterExportTests.MultiExport(arch);
        Assert.True(File.Exists(Path.Combine(multi, Seq2SeqContract.EncoderFile)));
        var manifest = AdapterManifest.Load(multi)!;
        Assert.Equal(MultiAdapterExportTests.Adapters(arch).Select(a => a.Name), manifest.Adapters.Select(a => a.Name));
        int batch = Rows.Length, total = Rows.Max(r => r.Length);
        var ids = new long[batch * total];
        var mask = new long[batch * total];
        var decoderIds = new long[batch * DecoderLength];
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(Rows[r].Length, r);
            for (int t = 0; t < prompt.Length; t++) { ids[r * total + t] = prompt[t]; mask[r * total + t] = 1; }
            DecoderIds(r).CopyTo(decoderIds, r * DecoderLength);
        }
        using var mixed = Seq2SeqForward.Open(multi);
        Assert.True(mixed.TakesAdapterIndex);
        int vocab = mixed.VocabSize;
        var all = mixed.Forward(ids, mask, decoderIds, batch, Rows.Select(r => manifest.IndexOf(r.Adapter)).ToArray()).Logits;
        using var baseForward = Seq2SeqForward.Open(MultiAdapterExportTests.SingleExport(arch, null));
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(Rows[r].Length, r);
            using var single = Seq2SeqForward.Open(MultiAdapterExportTests.SingleExport(arch, Rows[r].Adapter));
            var expected = single.Forward(prompt, BatchSlices.Ones(prompt.Length), DecoderIds(r), 1).Logits;
            var actual = all.AsSpan(r * DecoderLength * vocab, DecoderLength * vocab).ToArray();
            Tolerance.AssertLogits(expected, actual, vocab, what: $"{arch} row {r} ({Rows[r].Adapter ?? "base"})");
            if (Rows[r].Adapter == null) continue;
            var baseLogits = baseForward.Forward(prompt, BatchSlices.Ones(prompt.Length), DecoderIds(r), 1).Logits;
            Assert.True(baseLogits.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, $"{arch} row {r}: adapter {Rows[r].Adapter} left the logits unchanged");
        }
        // without adapter_index every row runs the base (the graphs' default)
        var defaulted = mixed.Forward(ids, mask, decoderIds, batch).Logits;
        var baseRow = baseForward.Forward(Prompt(Rows[0].Length, 0), BatchSlices.Ones(Rows[0].Length), DecoderIds(0), 1).Logits;
        Tolerance.AssertLogits(baseRow, defaulted.AsSpan(0, DecoderLength * vocab).ToArray(), vocab, what: $"{arch} row 0 without adapter_index");
    }

    [Fact]
    public void Adapters_are_not_added_or_removed_at_run_time_on_an_encoder_decoder_export_and_the_model_is_unchanged()
    {
        using var model = OnnxModel.Load(MultiAdapterExportTests.MultiExport("t5"), DeviceOptions.Cpu);
        var before = model.Adapters.ToArray();
        var lora = MultiAdapterExportTests.Adapters("t5").First().Dir;
        Assert.Contains("is an encoder-decoder export; adapters are added at run time to decoder-only", Assert.Throws<PeftOnnxException>(() => model.AddAdapter("late", lora)).Message);
        Assert.Contains("is an encoder-decoder export", Assert.Throws<PeftOnnxException>(() => model.RemoveAdapter(before[0])).Message);
        Assert.Equal(before, model.Adapters);
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Every_row_of_a_mixed_greedy_batch_generates_the_tokens_of_its_own_export(string arch)
    {
        using var model = OnnxModel.Load(MultiAdapterExportTests.MultiExport(arch), DeviceOptions.Cpu);
        Assert.True(model.IsEncoderDecoder);
        Assert.Equal(MultiAdapterExportTests.Adapters(arch).Select(a => a.Name), model.Adapters);
        var prompts = Rows.Select((r, i) => (IReadOnlyList<int>)Prompt(r.Length, i).Select(v => (int)v).ToArray()).ToArray();
        var result = MultiAdapterFolders.AssertRowsGenerateAsTheirOwnExports(model, Rows.Select(r => r.Adapter).ToArray(), prompts, a => MultiAdapterExportTests.SingleExport(arch, a), 6);
        var ex = Assert.Throws<PeftOnnxException>(() => model.Generate(new GenerationRequest { InputIds = [prompts[0]], Adapter = "missing", Options = GenerationOptions.Greedy(2) }));
        Assert.Contains("unknown adapter 'missing'", ex.Message);
    }

    /// <summary>Prompt-learning adapters beside LoRA and IA3: encoder prompts and decoder prefixes of different lengths.</summary>
    private static IReadOnlyList<(string Name, string Dir)> PromptAdapters(string arch) =>
    [
        ("prompt", Paths.Case(arch, "prompt_tuning_random/adapter_trained")),
        ("lora", Paths.Case(arch, "lora/adapter_trained")),
        ("prefix", Paths.Case(arch, "prefix/adapter_trained")),
        ("ptuning", Paths.Case(arch, "p_tuning_mlp/adapter_trained")),
        ("ia3", Paths.Case(arch, "ia3/adapter_trained")),
        ("prefix_short", MultiAdapterPromptTests.Shortened(arch, "prefix", 5)),
        ("prompt_short", MultiAdapterPromptTests.Shortened(arch, "prompt_tuning_random", 3)),
    ];

    /// <summary>
    /// Rows of "prefix" 8 long and of "prefix_short" 5 long use their prefix's cross part (transformers does where the
    /// encoder sequence is exactly num_virtual_tokens long), the other prefix rows do not; each row as it runs alone,
    /// although the batch is padded to 9.
    /// </summary>
    private static readonly (string? Adapter, int Length)[] PromptRows =
    [
        ("prompt", 5), ("lora", 3), (null, 4), ("prefix", 8), ("prefix_short", 3), ("ptuning", 9), ("prompt", 2),
        ("prompt_short", 6), ("ia3", 5), ("prefix", 4), ("prefix_short", 5),
    ];

    private static string PromptMultiExport(string arch) => MultiAdapterFolders.Multi($"seq2seq-prompt/{arch}", Paths.Case(arch, "base_model"), PromptAdapters(arch));

    private static string PromptSingleExport(string arch, string? adapter) =>
        MultiAdapterFolders.Single($"seq2seq-prompt/{arch}/{adapter ?? "(base)"}", Paths.Case(arch, "base_model"), adapter == null ? null : PromptAdapters(arch).Single(x => x.Name == adapter).Dir);

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Prompt_and_prefix_rows_of_a_mixed_batch_have_the_logits_of_their_own_export(string arch)
    {
        var multi = PromptMultiExport(arch);
        var manifest = AdapterManifest.Load(multi)!;
        Assert.Equal([8, 8, 8, 5, 3], manifest.Adapters.Where(a => a.Name.StartsWith('p')).Select(a => a.Rank));
        int batch = PromptRows.Length, total = PromptRows.Max(r => r.Length);
        var ids = new long[batch * total];
        var mask = new long[batch * total];
        var decoderIds = new long[batch * DecoderLength];
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(PromptRows[r].Length, r);
            for (int t = 0; t < prompt.Length; t++) { ids[r * total + t] = prompt[t]; mask[r * total + t] = 1; }
            DecoderIds(r).CopyTo(decoderIds, r * DecoderLength);
        }
        using var mixed = Seq2SeqForward.Open(multi);
        int vocab = mixed.VocabSize;
        var all = mixed.Forward(ids, mask, decoderIds, batch, PromptRows.Select(r => manifest.IndexOf(r.Adapter)).ToArray()).Logits;
        using var baseForward = Seq2SeqForward.Open(PromptSingleExport(arch, null));
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(PromptRows[r].Length, r);
            using var single = Seq2SeqForward.Open(PromptSingleExport(arch, PromptRows[r].Adapter));
            var expected = single.Forward(prompt, BatchSlices.Ones(prompt.Length), DecoderIds(r), 1).Logits;
            var actual = all.AsSpan(r * DecoderLength * vocab, DecoderLength * vocab).ToArray();
            Tolerance.AssertLogits(expected, actual, vocab, what: $"{arch} row {r} ({PromptRows[r].Adapter ?? "base"})");
            if (PromptRows[r].Adapter == null) continue;
            var baseLogits = baseForward.Forward(prompt, BatchSlices.Ones(prompt.Length), DecoderIds(r), 1).Logits;
            Assert.True(baseLogits.Zip(actual).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, $"{arch} row {r}: adapter {PromptRows[r].Adapter} left the logits unchanged");
        }
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Prompt_and_prefix_rows_of_a_mixed_greedy_batch_generate_the_tokens_of_their_own_export(string arch)
    {
        using var model = OnnxModel.Load(PromptMultiExport(arch), DeviceOptions.Cpu);
        var prompts = PromptRows.Select((r, i) => (IReadOnlyList<int>)Prompt(r.Length, i).Select(v => (int)v).ToArray()).ToArray();
        var result = MultiAdapterFolders.AssertRowsGenerateAsTheirOwnExports(model, PromptRows.Select(r => r.Adapter).ToArray(), prompts, a => PromptSingleExport(arch, a), 6);
    }

    [Fact]
    public void The_cli_serves_a_requests_file_and_a_forward_with_an_adapter_name_on_t5()
    {
        var multi = PromptMultiExport("t5");
        var dir = Paths.TempDir();
        try
        {
            (string Id, int[] Ids, string? Adapter, int Max)[] requests =
                [("a", [5, 9, 13, 17], "prefix", 4), ("b", [7, 8], null, 5), ("c", [21, 4, 33, 12, 9], "prompt_short", 3), ("d", [11, 30, 2], "lora", 5), ("e", [6, 16, 26], "ptuning", 2)];
            var path = Path.Combine(dir, "requests.jsonl");
            File.WriteAllLines(path, requests.Select(q => new JsonObject
            {
                ["id"] = q.Id, ["input_ids"] = new JsonArray(q.Ids.Select(i => (JsonNode)i).ToArray()),
                ["adapter"] = q.Adapter, ["max_new_tokens"] = q.Max,
            }.ToJsonString()));
            var r = CliRunner.Run(["generate", "--onnx", multi, "--requests", path, "--batch-size", "4", "--greedy", "--json", "--device", "cpu"]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
            for (int i = 0; i < requests.Length; i++)
            {
                using var single = OnnxModel.Load(PromptSingleExport("t5", requests[i].Adapter), DeviceOptions.Cpu);
                var alone = single.Generate(GenerationRequest.FromIds(requests[i].Ids, GenerationOptions.Greedy(requests[i].Max)));
                // a request's sequence is its prompt followed by its new tokens
                Assert.Equal([.. requests[i].Ids, .. alone.NewTokens[0]], results[i]!["sequences"]![0]!.AsArray().Select(v => v!.GetValue<int>()).ToArray());
            }

            var inputs = Paths.Case("t5", "inputs.safetensors");
            var outPath = Path.Combine(dir, "logits.safetensors");
            var f = CliRunner.Run(["forward", "--onnx", multi, "--adapter-name", "prompt", "--inputs", inputs, "--out", outPath, "--device", "cpu"]);
            Assert.True(f.ExitCode == 0, f.Stderr);
            var expected = OnnxForward.Run(PromptSingleExport("t5", "prompt"), ForwardBatch.Read(inputs), inputs);
            using var written = SafeTensorsFile.Open(outPath);
            Tolerance.AssertLogits(expected.Logits, written.ReadFloat32("logits"), (int)expected.LogitsShape[2]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
