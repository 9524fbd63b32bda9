using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// A multi-adapter export with --quantize: the base's linear layers become MatMulNBits and the adapters' stacks stay
/// float32, so every LoRA row (plain, all-linear, DoRA, lora_bias) equals that adapter's single `--no-merge` quantized
/// export, and base rows the quantized base export, in logits and greedy tokens; an adapter added at run time to the
/// quantized folder equals the same adapter exported in it.
/// </summary>
public class QuantizedMultiAdapterTests
{
    private static readonly (string? Adapter, int Length)[] Rows = [("plain", 5), ("dora", 3), (null, 4), ("with_bias", 6), ("all_linear", 2)];

    private static WeightQuantization Format(int bits) => new(new QuantizationFormat(bits));

    private static long[] Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => (long)(3 + (row * 7 + t * 5) % 40)).ToArray();

    private static string Multi(string arch, int bits, IReadOnlyList<string> names)
    {
        var adapters = MultiAdapterExportTests.Adapters(arch);
        return MultiAdapterFolders.Multi($"int{bits}/{arch}/{string.Join(",", names)}", Paths.Case(arch, "base_model"),
            names.Select(n => (n, adapters.Single(a => a.Name == n).Dir)).ToList(), new ExportOptions { Quantize = Format(bits) });
    }

    private static string Single(string arch, int bits, string? adapter) =>
        MultiAdapterFolders.Single($"int{bits}/{arch}/{adapter ?? "(base)"}/unmerged", Paths.Case(arch, "base_model"),
            adapter == null ? null : MultiAdapterExportTests.Adapters(arch).Single(a => a.Name == adapter).Dir,
            new ExportOptions { Quantize = Format(bits), Merge = adapter == null, Verify = false });

    [Theory]
    [InlineData("bloom", 8)]
    [InlineData("bloom", 4)]
    [InlineData("gpt2", 4)]
    public void Every_row_equals_the_adapters_own_unmerged_quantized_export(string arch, int bits)
    {
        var multi = Multi(arch, bits, ["plain", "all_linear", "dora", "with_bias"]);
        var graph = File.ReadAllBytes(Path.Combine(multi, CausalLmContract.ModelFile));
        Assert.True(System.Text.Encoding.ASCII.GetString(graph).Contains("MatMulNBits"), "the base is not quantized");
        var manifest = AdapterManifest.Load(multi)!;
        int batch = Rows.Length;
        var (ids, mask, total) = MultiAdapterFolders.LeftPadded(Rows.Select((r, i) => Prompt(r.Length, i)).ToArray());
        using var mixed = CausalLmForward.Open(Path.Combine(multi, CausalLmContract.ModelFile));
        int vocab = mixed.VocabSize;
        var all = mixed.Logits(ids, mask, batch, Rows.Select(r => manifest.IndexOf(r.Adapter)).ToArray());
        using var model = OnnxModel.Load(multi, DeviceOptions.Cpu);
        var generated = model.Generate(new GenerationRequest
        {
            InputIds = Rows.Select((r, i) => (IReadOnlyList<int>)Prompt(r.Length, i).Select(v => (int)v).ToArray()).ToArray(),
            Adapters = Rows.Select(r => r.Adapter).ToArray(),
            Options = GenerationOptions.Greedy(6),
        });
        for (int r = 0; r < batch; r++)
        {
            var prompt = Prompt(Rows[r].Length, r);
            var singleDir = Single(arch, bits, Rows[r].Adapter);
            using (var single = CausalLmForward.Open(Path.Combine(singleDir, CausalLmContract.ModelFile)))
            {
                var expected = single.Logits(prompt, BatchSlices.Ones(prompt.Length), 1);
                int pad = total - prompt.Length;
                Tolerance.AssertLogits(expected, all.AsSpan((r * total + pad) * vocab, prompt.Length * vocab).ToArray(), vocab,
                    what: $"{arch} int{bits} row {r} ({Rows[r].Adapter ?? "base"})");
            }
            using var singleModel = OnnxModel.Load(singleDir, DeviceOptions.Cpu);
            var alone = singleModel.Generate(GenerationRequest.FromIds(prompt.Select(v => (int)v).ToArray(), GenerationOptions.Greedy(6)));
            Assert.Equal(alone.NewTokens[0], generated.NewTokens[r]);
        }
    }

    [Fact]
    public void An_adapter_added_to_a_quantized_folder_equals_it_exported_there()
    {
        var partial = Multi("bloom", 4, ["all_linear"]);
        var reference = Multi("bloom", 4, ["all_linear", "plain"]);
        using var added = OnnxModel.Load(partial, DeviceOptions.Cpu);
        added.AddAdapter("plain", MultiAdapterExportTests.Adapters("bloom").Single(a => a.Name == "plain").Dir);
        using var exported = OnnxModel.Load(reference, DeviceOptions.Cpu);
        var request = new GenerationRequest { InputIds = [[5, 9, 13, 2], [7, 3]], Adapters = ["plain", null], Options = GenerationOptions.Greedy(6) };
        using var a = added.CreateGenerator(request);
        using var e = exported.CreateGenerator(request);
        while (!e.IsDone)
        {
            a.GenerateNextToken();
            e.GenerateNextToken();
            for (int row = 0; row < 2; row++)
                Tolerance.AssertLogits(e.Session.Logits(row).ToArray(), a.Session.Logits(row).ToArray(), added.VocabSize, what: $"step {e.Step} row {row}");
        }
        Assert.Equal(e.GetNewTokens(), a.GetNewTokens());

        // DoRA's factor needs the float32 base weight, which a quantized folder does not hold
        var withDora = Multi("bloom", 4, ["dora"]);
        using var quantized = OnnxModel.Load(withDora, DeviceOptions.Cpu);
        var error = Assert.Throws<Peft.Onnx.Core.PeftOnnxException>(() => quantized.AddAdapter("dora2", MultiAdapterExportTests.Adapters("bloom").Single(x => x.Name == "dora").Dir));
        Assert.Contains("needs the float32 base weight of 'transformer.h.0.self_attention.query_key_value', which this export does not hold (quantized)", error.Message);
        Assert.Equal(["dora"], quantized.Adapters);
    }
}
