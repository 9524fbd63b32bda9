using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// `export --prefix-slots`: a multi-adapter export of LoRA adapters only that still carries prefix stacks (one masked
/// position per slot) answers as the same export without them, and takes prefix-tuning adapters at run time, each
/// answering as its own single-adapter export.
/// </summary>
public class PrefixSlotsTests
{
    private static readonly ExportOptions WithSlots = new() { PrefixSlots = true };

    private static string Trained(string arch, string method) => Paths.Case(arch, method + "/adapter_trained");

    private static IReadOnlyList<(string Name, string Dir)> Lora(string arch) => [("lora", Trained(arch, "lora"))];

    private static IReadOnlyList<int> Prompt(int length, int row) => Enumerable.Range(0, length).Select(t => 3 + (row * 7 + t * 5) % 40).ToArray();

    /// <summary>Greedy generation of both models side by side: logits of every row equal at every step, then the tokens.</summary>
    private static void AssertSameGeneration(OnnxModel expected, OnnxModel actual, GenerationRequest request, string what)
    {
        using var e = expected.CreateGenerator(request);
        using var a = actual.CreateGenerator(request);
        while (!e.IsDone)
        {
            e.GenerateNextToken();
            a.GenerateNextToken();
            for (int row = 0; row < request.InputIds!.Count; row++)
                Tolerance.AssertLogits(e.Session.Logits(row).ToArray(), a.Session.Logits(row).ToArray(), expected.VocabSize, what: $"{what} step {e.Step} row {row}");
        }
        Assert.True(a.IsDone);
        Assert.Equal(e.GetNewTokens(), a.GetNewTokens());
    }

    [Theory]
    [InlineData("bloom")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("opt")]
    public void Reserved_prefix_stacks_change_no_row_and_take_prefix_adapters_at_run_time(string arch)
    {
        var baseDir = Paths.Case(arch, "base_model");
        var slotsDir = MultiAdapterFolders.Multi($"prefixslots/{arch}/slots", baseDir, Lora(arch), WithSlots);
        var plainDir = MultiAdapterFolders.Multi($"prefixslots/{arch}/plain", baseDir, Lora(arch));
        Assert.Contains(AdapterManifest.Load(slotsDir)!.Stacks, s => s.Name == PrefixStackNames.Key(0));
        Assert.DoesNotContain(AdapterManifest.Load(plainDir)!.Stacks, s => PrefixStackNames.Parse(s.Name) != null);

        using var slots = OnnxModel.Load(slotsDir, DeviceOptions.Cpu);
        using var plain = OnnxModel.Load(plainDir, DeviceOptions.Cpu);
        var mixed = new GenerationRequest
        {
            InputIds = [Prompt(5, 0), Prompt(3, 1), Prompt(4, 2)],
            Adapters = ["lora", null, "lora"],
            Options = GenerationOptions.Greedy(5),
        };
        AssertSameGeneration(plain, slots, mixed, $"{arch} reserved slots vs none");

        slots.AddAdapter("prefix", Trained(arch, "prefix"));
        using var single = OnnxModel.Load(MultiAdapterFolders.Single($"prefixslots/{arch}/prefix", baseDir, Trained(arch, "prefix")), DeviceOptions.Cpu);
        var prompt = Prompt(4, 3);
        Assert.Equal(single.Generate(GenerationRequest.FromIds(prompt, GenerationOptions.Greedy(6))).NewTokens[0],
            slots.Generate(new GenerationRequest { InputIds = [prompt], Adapter = "prefix", Options = GenerationOptions.Greedy(6) }).NewTokens[0]);

        // a batch of the added prefix, the exported LoRA and the base: each row as before the add or as its single export
        using var reference = OnnxModel.Load(MultiAdapterFolders.Multi($"prefixslots/{arch}/reference", baseDir, [.. Lora(arch), ("prefix", Trained(arch, "prefix"))]), DeviceOptions.Cpu);
        AssertSameGeneration(reference, slots, mixed with { Adapters = ["prefix", null, "lora"] }, $"{arch} added prefix vs exported");
    }

    [Fact]
    public void Prefix_slots_are_refused_for_encoder_decoders_and_single_exports()
    {
        var outDir = TempExports.FreshPath();
        var error = Assert.Throws<PeftOnnxException>(() => MultiAdapterExport.Export(Paths.Case("t5", "base_model"), [new NamedAdapter("lora", Trained("t5", "lora"))], outDir, WithSlots));
        Assert.Contains("--prefix-slots", error.Message);
        Assert.Contains("encoder-decoder", error.Message);
        TempExports.AssertNothingWritten(outDir);
        var cli = CliRunner.Run("export", "--base", Paths.Case("bloom", "base_model"), "--adapter", Trained("bloom", "lora"), "--out", outDir, "--prefix-slots");
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("--prefix-slots applies to named adapters", cli.Stderr);
        Assert.False(Directory.Exists(outDir));
    }
}
