using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.AdaLora;
using Peft.Onnx.Trainer.Tuners.Boft;
using Peft.Onnx.Trainer.Tuners.Hra;
using Peft.Onnx.Trainer.Tuners.LoHa;
using Peft.Onnx.Trainer.Tuners.LoKr;
using Peft.Onnx.Trainer.Tuners.Oft;
using Peft.Onnx.Trainer.Tuners.Vera;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// The methods beyond the five, each against current PEFT (tests/fixtures/peft-current) with the same checks: counts,
/// forward, merge, generation, saved files. What only one method has is tested beside it (LycorisTunerTests,
/// OrthogonalTunerTests, VeraAdaLoraTunerTests).
/// </summary>
public class CurrentMethodTunerTests
{
    /// <summary>Each method's tuner type, and whether PEFT adapts GPT-2's Conv1D with it (LoHa, LoKr, OFT, HRA, BOFT: nn.Linear only).</summary>
    private static readonly (string Method, Type Tuner, bool Gpt2)[] Methods =
    [
        ("loha", typeof(LoHaTuner), false), ("lokr", typeof(LoKrTuner), false),
        ("oft", typeof(OftTuner), false), ("hra", typeof(HraTuner), false), ("boft", typeof(BoftTuner), false),
        ("vera", typeof(VeraTuner), true), ("adalora", typeof(AdaLoraTuner), true),
    ];

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var (method, _, gpt2) in Methods)
            foreach (var arch in Paths.Archs.Where(a => gpt2 || a != "gpt2"))
                data.Add(arch, method);
        return data;
    }

    /// <summary>One load per case: names, counts, saved files, forward (AdaLoRA's loss with its regulariser), generation, merge / unmerge, merge_and_unload.</summary>
    [Theory, MemberData(nameof(Cases))]
    public void Adapter_matches_peft(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, Paths.CurrentCase(arch, method));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsAssignableFrom<IMergeableTuner>(model.Tuner);
        Assert.IsType(Methods.Single(m => m.Method == method).Tuner, tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged.Logits, $"{arch}/{method}");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        fixture.AssertMatches(fixture.Forward(merged), "logits_merged", "loss_merged");
        fixture.AssertGenerates(merged, "generated_merged");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Counts_equal_print_trainable_parameters(string arch, string method)
    {
        var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.CurrentCase(arch, method), "meta.json"))).RootElement;
        var config = AdapterConfig.Load(Paths.CurrentCase(arch, method + "/adapter"));
        var counts = ParameterCount.Count(Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))), config);
        Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), counts.Trainable);
        Assert.Equal(meta.GetProperty("counts").GetProperty("all").GetInt64(), counts.All);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch, string method)
    {
        using var fixture = new TunerFixture(arch, method, Paths.CurrentCase(arch, method));
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }
}
