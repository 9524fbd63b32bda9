using System.Text.Json;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// One PEFT reference case (tests/fixtures/peft-reference/{arch}/{method}): its inputs, meta.json and
/// reference tensors, and the comparisons every tuner test makes against them.
/// </summary>
public sealed class TunerFixture : IDisposable
{
    public TunerFixture(string arch, string method) : this(arch, method, Paths.Case(arch, method)) { }

    /// <summary>A case in another fixture set over the same base models and inputs (tests/fixtures/peft-current).</summary>
    public TunerFixture(string arch, string method, string caseDir)
    {
        Arch = arch;
        Method = method;
        CaseDir = caseDir;
        ArchDir = Paths.ArchDirOf(caseDir, arch);
        Inputs = new Reference(arch, ArchDir);
        Meta = Reference.MetaAt(caseDir);
        Expected = SafeTensorsFile.Open(Path.Combine(CaseDir, "reference.safetensors"));
    }

    public string Arch { get; }
    public string Method { get; }
    public Reference Inputs { get; }
    public JsonElement Meta { get; }
    public SafeTensorsFile Expected { get; }

    public string CaseDir { get; }
    /// <summary>The folder of the base model and inputs (peft-reference/{arch}, or the case's own set's where it has one).</summary>
    public string ArchDir { get; }
    public string BaseDir => Path.Combine(ArchDir, "base_model");
    public string AdapterDir => Path.Combine(CaseDir, "adapter");
    public string TrainedAdapterDir => Path.Combine(CaseDir, "adapter_trained");
    public string MergedModelDir => Path.Combine(CaseDir, "merged_model");
    public bool IsEncoderDecoder => Inputs.IsEncoderDecoder;

    /// <summary>
    /// Trainable parameters under the names of PEFT's named_parameters() (the reference's init.* tensors), with the
    /// count PEFT printed; everything else frozen.
    /// </summary>
    public void AssertTrainableParameters(ITuner tuner)
    {
        var expected = Meta.GetProperty("tensors").EnumerateObject().Select(p => p.Name)
            .Where(n => n.StartsWith("init.", StringComparison.Ordinal)).Select(n => n["init.".Length..]).Order(StringComparer.Ordinal);
        Assert.Equal(expected, tuner.TrainableParameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Meta.GetProperty("counts").GetProperty("trainable").GetInt64(), tuner.TrainableParameters.Sum(p => p.Parameter.numel()));
        Assert.All(tuner.TrainableParameters, p => Assert.True(p.Parameter.requires_grad, p.Name));
    }

    /// <summary>
    /// The first SGD step's gradients (train_sgd.grad0.*): loss.backward() on the case's batch reaches exactly the
    /// trainable parameters, with PEFT's values.
    /// </summary>
    public void AssertFirstStepGradients(PeftModel model)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(Inputs.Inputs.ReadInt64("input_ids"), Inputs.Shape("input_ids"));
        var mask = tensor(Inputs.Inputs.ReadInt64("attention_mask"), Inputs.Shape("attention_mask"));
        var labels = tensor(Inputs.Inputs.ReadInt64("labels"), Inputs.Shape("labels"));
        var output = model.Base is Seq2SeqLm
            ? model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels))
            : model.Forward(new CausalLmInput(ids, mask, Labels: labels));
        output.Loss!.backward();
        foreach (var (name, parameter) in model.Tuner.TrainableParameters)
        {
            var expected = Expected.ReadFloat32($"train_sgd.grad0.{name}");
            var actual = parameter.grad!.contiguous().data<float>().ToArray();
            var scale = expected.Max(v => Math.Abs(v));
            var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst <= 1e-6 + 1e-4 * scale, $"{Arch}/{Method} gradient of {name}: max |diff| {worst:g4} (largest |grad| {scale:g4})");
            parameter.grad!.zero_();
        }
    }

    /// <summary>Runs the model (its tuner's input preparation included) on the case's batch, without gradients.</summary>
    public LmOutput Forward(PeftModel model) => Run(model.Base, input => model.Forward(input), input => model.Forward(input));

    /// <summary>Runs a plain base model on the case's batch.</summary>
    public LmOutput Forward(PretrainedModel model) => Run(model, input => ((CausalLm)model).Forward(input), input => ((Seq2SeqLm)model).Forward(input));

    private LmOutput Run(PretrainedModel model, Func<CausalLmInput, LmOutput> causal, Func<Seq2SeqLmInput, LmOutput> seq2seq)
    {
        var ids = tensor(Inputs.Inputs.ReadInt64("input_ids"), Inputs.Shape("input_ids"));
        var mask = tensor(Inputs.Inputs.ReadInt64("attention_mask"), Inputs.Shape("attention_mask"));
        var labels = tensor(Inputs.Inputs.ReadInt64("labels"), Inputs.Shape("labels"));
        using var noGrad = no_grad();
        return model is Seq2SeqLm
            ? seq2seq(new Seq2SeqLmInput(ids, mask, Labels: labels))
            : causal(new CausalLmInput(ids, mask, Labels: labels));
    }

    /// <summary>Logits against reference tensor <paramref name="name"/> (real tokens only for causal LMs) and the loss against meta.</summary>
    public void AssertMatches(LmOutput output, string logitsName = "logits", string lossName = "loss")
    {
        Assert.Equal(Expected[logitsName].Shape, output.Logits.shape);
        var rows = IsEncoderDecoder ? null : Tolerance.RowsFromMask(Inputs.Inputs.ReadInt64("attention_mask"));
        Tolerance.AssertLogits(Expected.ReadFloat32(logitsName), output.Logits.contiguous().data<float>().ToArray(),
            (int)output.Logits.shape[^1], rows, $"{Arch}/{Method} {logitsName}");
        Tolerance.AssertLoss(Meta.GetProperty(lossName).GetDouble(), output.Loss!.item<float>(), $"{Arch}/{Method} {lossName}");
    }

    /// <summary>Two outputs of our own agree within the logits tolerance of the reference.</summary>
    public static void AssertSameLogits(Tensor expected, Tensor actual, string what) =>
        Tolerance.AssertLogits(expected.contiguous().data<float>().ToArray(), actual.contiguous().data<float>().ToArray(), (int)expected.shape[^1], null, what);

    /// <summary>merge_adapter then unmerge_adapter: each leaves the outputs of the adapted <paramref name="model"/> (<paramref name="unmerged"/>) as they were.</summary>
    public void AssertMergeUnmergeKeepsLogits(PeftModel model, IMergeableTuner tuner, Tensor unmerged, string what)
    {
        tuner.Merge();
        Assert.True(tuner.Merged);
        AssertSameLogits(unmerged, Forward(model).Logits, $"{what} merged forward");
        tuner.Unmerge();
        AssertSameLogits(unmerged, Forward(model).Logits, $"{what} unmerged forward");
    }

    /// <summary>Greedy generation from gen_input_ids, as many new tokens as meta's <paramref name="key"/> row holds.</summary>
    public void AssertGenerates(PretrainedModel model, string key = "generated")
    {
        var expected = Reference.Rows(Meta.GetProperty(key));
        using var scope = NewDisposeScope();
        var prompt = tensor(Inputs.Inputs.ReadInt64("gen_input_ids"), Inputs.Shape("gen_input_ids"));
        var eos = model.Config.EosTokenId!.Select(e => (long)e).ToArray();
        var pad = model.Config.PadTokenId ?? eos[0];
        var generated = model switch
        {
            CausalLm lm => GreedySearch.Generate(lm, prompt, null, new GreedyOptions(expected[0].Length - (int)prompt.shape[1], eos, pad)),
            Seq2SeqLm s2s => GreedySearch.Generate(s2s, prompt, null, new GreedyOptions(expected[0].Length - 1, eos, pad)),
            _ => throw new InvalidOperationException(),
        };
        Assert.Equal(expected[0], generated[0].data<long>().ToArray());
    }

    /// <summary>
    /// Saves the adapter and checks the files against PEFT's: adapter_model.safetensors byte for byte, and
    /// adapter_config.json with the same keys and values.
    /// </summary>
    public static void AssertSavesAsPeft(PeftModel model, string peftAdapterDir)
    {
        var dir = Paths.TempDir();
        try
        {
            model.Save(dir);
            Assert.Equal(File.ReadAllBytes(Path.Combine(peftAdapterDir, AdapterFormat.WeightsFile)), File.ReadAllBytes(Path.Combine(dir, AdapterFormat.WeightsFile)));
            var expected = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(peftAdapterDir, "adapter_config.json"))).RootElement;
            var actual = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "adapter_config.json"))).RootElement;
            Assert.Equal(Canonical(expected), Canonical(actual));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A JSON value with object keys sorted and numbers in one spelling (PEFT writes 8 or 8.0 alike).</summary>
    private static string Canonical(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => $"\"{p.Name}\":{Canonical(p.Value)}")) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Canonical)) + "]",
        JsonValueKind.Number => e.GetDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => e.GetRawText(),
    };

    /// <summary>Every tensor of the merged model PEFT saved equals ours within float32 rounding of the merge.</summary>
    public void AssertMergedWeightsMatch(PretrainedModel merged)
    {
        using var peftMerged = ModelLoader.Load(MergedModelDir);
        foreach (var (name, expected) in peftMerged.Parameters.Distinct())
        {
            var actual = merged.Parameters[name];
            Assert.Equal(expected.shape, actual.shape);
            var diff = (expected - actual).abs().max().item<float>();
            Assert.True(diff <= 1e-5, $"{Arch}/{Method} merged tensor {name}: max |diff| {diff}");
        }
    }

    public void Dispose()
    {
        Expected.Dispose();
        Inputs.Dispose();
    }
}
