using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// Every prompt-learning reference case (6 families x prompt tuning RANDOM/TEXT, p-tuning MLP/LSTM, prefix with and
/// without projection) against PEFT 0.7.1: the saved adapter's logits and loss, greedy generation, and save/load.
/// </summary>
public class PromptLearningParityTests
{
    public static TheoryData<string, string> Cases => PromptLearningCases.All.Build();

    [Theory, MemberData(nameof(Cases))]
    public void Saved_adapter_logits_and_loss_match_peft(string arch, string method)
    {
        using var reference = new Reference(arch);
        using var expected = PromptLearningCases.Expected(arch, method);
        using var model = PromptLearningCases.LoadSaved(arch, method);
        var meta = Reference.Meta(arch, method);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        var output = model.Base is CausalLm
            ? model.Forward(new CausalLmInput(ids, mask, Labels: labels))
            : model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));

        var shape = meta.GetProperty("logits_shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
        Assert.Equal(shape, output.Logits.shape);
        var vocab = (int)shape[^1];
        bool[]? rows = null;
        if (!reference.IsEncoderDecoder)
        {
            // Virtual positions are real rows (mask ones), as PEFT's prefixed mask says.
            var virtualRows = (int)(shape[1] - ids.shape[1]);
            var realMask = reference.Inputs.ReadInt64("attention_mask");
            rows = Enumerable.Range(0, (int)ids.shape[0]).SelectMany(b =>
                Enumerable.Repeat(true, virtualRows).Concat(realMask.Skip(b * (int)ids.shape[1]).Take((int)ids.shape[1]).Select(m => m != 0))).ToArray();
        }
        Tolerance.AssertLogits(expected.ReadFloat32("logits"), PromptLearningCases.Floats(output.Logits), vocab, rows, $"{arch}/{method} logits");
        Tolerance.AssertLoss(meta.GetProperty("loss").GetDouble(), output.Loss!.item<float>(), $"{arch}/{method} loss");

        var tuner = PromptLearningCases.Tuner(model);
        Assert.Equal(reference.IsEncoderDecoder ? output.Logits.shape[1] : ids.shape[1], tuner.DropVirtualTokens(output.Logits).shape[1]);
    }

    [Theory, MemberData(nameof(Cases))]
    public void Greedy_generation_matches_peft(string arch, string method)
    {
        using var reference = new Reference(arch);
        using var model = PromptLearningCases.LoadSaved(arch, method);
        var expected = Reference.Rows(Reference.Meta(arch, method).GetProperty("generated"));
        using var scope = NewDisposeScope();
        var prompt = tensor(reference.Inputs.ReadInt64("gen_input_ids"), reference.Shape("gen_input_ids"));
        var eos = model.Base.Config.EosTokenId!.Select(e => (long)e).ToArray();
        var pad = model.Base.Config.PadTokenId ?? eos[0];
        int newTokens = expected[0].Length - (reference.IsEncoderDecoder ? 1 : (int)prompt.shape[1]);
        var generated = PromptLearningCases.Tuner(model).Generate(prompt, null, new GreedyOptions(newTokens, eos, pad));
        Assert.Equal(expected[0], generated[0].data<long>().ToArray());
    }

    [Theory, MemberData(nameof(Cases))]
    public void Load_then_save_is_byte_identical(string arch, string method)
    {
        using var model = PromptLearningCases.LoadSaved(arch, method);
        var dir = Paths.TempDir();
        try
        {
            model.Save(dir);
            var original = File.ReadAllBytes(Path.Combine(PromptLearningCases.AdapterDir(arch, method), "adapter_model.safetensors"));
            var saved = File.ReadAllBytes(Path.Combine(dir, "adapter_model.safetensors"));
            Assert.True(original.AsSpan().SequenceEqual(saved), $"{arch}/{method}: adapter_model.safetensors differs after load + save ({original.Length} vs {saved.Length} bytes)");
        }
        finally { Directory.Delete(dir, true); }
    }
}
