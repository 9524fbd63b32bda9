using System.Text.Json;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Tuners;
using Peft.Onnx.Trainer.Tuners.FourierFt;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// FourierFT against PEFT 0.13.2 (tests/fixtures/peft-current): the spectrum positions PEFT recomputes with
/// torch.randperm and never saves, counts, forward, merge, generation, saved files. GPT-2 merges as current PEFT does
/// (0.13.2 cannot): the merged model must give the unmerged outputs.
/// </summary>
public class FourierFtTunerTests
{
    public static TheoryData<string> Archs() => new(Paths.Archs);

    /// <summary>The merged reference: PEFT's merge_and_unload where it could merge, else its unmerged outputs.</summary>
    private static (string Logits, string Loss, string Generated) MergedKeys(string arch) =>
        arch == "gpt2" ? ("logits", "loss", "generated") : ("logits_merged", "loss_merged", "generated_merged");

    [Theory, MemberData(nameof(Archs))]
    public void Positions_are_the_ones_peft_drew_with_torch_randperm(string arch)
    {
        var caseDir = Paths.CurrentCase(arch, "fourierft");
        var config = (FourierFtConfig)AdapterConfig.Load(Path.Combine(caseDir, "adapter"));
        using var reference = SafeTensorsFile.Open(Path.Combine(caseDir, "reference.safetensors"));
        var targets = config.FindTargets(Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))));
        Assert.NotEmpty(targets);
        foreach (var t in targets)
        {
            var saved = reference.ReadInt64($"buffers.{AdapterFormat.ModuleKey(t.Path, "fourierft_indices")}");
            var positions = config.PositionsFor(t);
            Assert.Equal(saved[..t.Rank], positions.Select(p => (long)p.Row).ToArray());
            Assert.Equal(saved[t.Rank..], positions.Select(p => (long)p.Column).ToArray());
        }
    }

    [Theory, MemberData(nameof(Archs))]
    public void Adapter_matches_peft(string arch)
    {
        using var fixture = new TunerFixture(arch, "fourierft", Paths.CurrentCase(arch, "fourierft"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var tuner = Assert.IsType<FourierFtTuner>(model.Tuner);
        fixture.AssertTrainableParameters(tuner);
        TunerFixture.AssertSavesAsPeft(model, fixture.AdapterDir);

        var unmerged = fixture.Forward(model);
        fixture.AssertMatches(unmerged);
        fixture.AssertGenerates(model.Base);

        fixture.AssertMergeUnmergeKeepsLogits(model, tuner, unmerged.Logits, $"{arch}/fourierft");

        var merged = tuner.MergeAndUnload();
        Assert.Empty(merged.Linears.Adapters);
        var (logits, loss, generated) = MergedKeys(arch);
        fixture.AssertMatches(fixture.Forward(merged), logits, loss);
        fixture.AssertGenerates(merged, generated);
    }

    [Theory, MemberData(nameof(Archs))]
    public void Counts_equal_print_trainable_parameters(string arch)
    {
        var meta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Paths.CurrentCase(arch, "fourierft"), "meta.json"))).RootElement;
        var config = AdapterConfig.Load(Paths.CurrentCase(arch, "fourierft/adapter"));
        var counts = ParameterCount.Count(Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))), config);
        Assert.Equal(meta.GetProperty("counts").GetProperty("trainable").GetInt64(), counts.Trainable);
        Assert.Equal(meta.GetProperty("counts").GetProperty("all").GetInt64(), counts.All);
    }

    [Theory, MemberData(nameof(Archs))]
    public void Trained_adapter_saves_as_peft_saved_it(string arch)
    {
        using var fixture = new TunerFixture(arch, "fourierft", Paths.CurrentCase(arch, "fourierft"));
        using var trained = PeftModel.Load(fixture.BaseDir, fixture.TrainedAdapterDir);
        TunerFixture.AssertSavesAsPeft(trained, fixture.TrainedAdapterDir);
    }

    /// <summary>The trainer's ifft2 against the direct cosine sum the export uses.</summary>
    [Fact]
    public void Delta_is_the_real_part_of_the_inverse_2d_fft_of_the_dense_spectrum()
    {
        using var fixture = new TunerFixture("opt", "fourierft", Paths.CurrentCase("opt", "fourierft"));
        using var model = PeftModel.Load(fixture.BaseDir, fixture.AdapterDir);
        using var scope = NewDisposeScope();
        var layer = ((FourierFtTuner)model.Tuner).Layers[0];
        var config = (FourierFtConfig)model.Tuner.Config;
        var delta = layer.DeltaWeight();
        var direct = new FourierFtDelta(layer.Spectrum.data<float>().ToArray(), config.PositionsFor(layer.Target),
            (int)layer.Target.Linear.OutFeatures, (int)layer.Target.Linear.InFeatures, layer.Target.Scaling);
        for (int row = 0; row < direct.OutFeatures; row += 7)
            for (int col = 0; col < direct.InFeatures; col += 5)
                Assert.Equal(direct.At(row, col), delta[row, col].item<float>(), 1e-5);
    }
}
