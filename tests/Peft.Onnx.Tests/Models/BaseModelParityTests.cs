using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Models;

/// <summary>Every fixture base model against transformers 4.33: logits, loss, greedy generation, parameter count.</summary>
public class BaseModelParityTests
{
    public static TheoryData<string> Archs => new(Paths.Archs);

    [Theory, MemberData(nameof(Archs))]
    public void Forward_matches_transformers(string arch)
    {
        using var reference = new Reference(arch);
        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
        using var model = ModelLoader.Load(Paths.Case(arch, "base_model"));
        using var scope = NewDisposeScope();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        using var noGrad = no_grad();
        var output = model switch
        {
            CausalLm lm => lm.Forward(new CausalLmInput(ids, mask, Labels: labels)),
            Seq2SeqLm s2s => s2s.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels)),
            _ => throw new InvalidOperationException(),
        };
        var logits = output.Logits.contiguous().data<float>().ToArray();
        var vocab = (int)output.Logits.shape[^1];
        Assert.Equal(expected["logits"].Shape, output.Logits.shape);
        var rows = reference.IsEncoderDecoder ? null : Tolerance.RowsFromMask(reference.Inputs.ReadInt64("attention_mask"));
        Tolerance.AssertLogits(expected.ReadFloat32("logits"), logits, vocab, rows, $"{arch} logits");
        Tolerance.AssertLoss(reference.BaseMeta.GetProperty("loss").GetDouble(), output.Loss!.item<float>(), $"{arch} loss");
    }

    [Theory, MemberData(nameof(Archs))]
    public void Greedy_generation_matches_transformers(string arch)
    {
        using var reference = new Reference(arch);
        using var model = ModelLoader.Load(Paths.Case(arch, "base_model"));
        var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"));
        using var scope = NewDisposeScope();
        var prompt = tensor(reference.Inputs.ReadInt64("gen_input_ids"), reference.Shape("gen_input_ids"));
        var eos = model.Config.EosTokenId!.Select(e => (long)e).ToArray();
        var pad = model.Config.PadTokenId ?? eos[0];
        Tensor generated = model switch
        {
            CausalLm lm => GreedySearch.Generate(lm, prompt, null, new GreedyOptions(expected[0].Length - (int)prompt.shape[1], eos, pad)),
            Seq2SeqLm s2s => GreedySearch.Generate(s2s, prompt, null, new GreedyOptions(expected[0].Length - 1, eos, pad)),
            _ => throw new InvalidOperationException(),
        };
        Assert.Equal(expected[0], generated[0].data<long>().ToArray());
    }

    [Theory, MemberData(nameof(Archs))]
    public void Parameter_count_matches_num_parameters(string arch)
    {
        using var reference = new Reference(arch);
        using var model = ModelLoader.Load(Paths.Case(arch, "base_model"));
        Assert.Equal(reference.BaseMeta.GetProperty("num_params").GetInt64(), model.Parameters.CountElements());
        Assert.Equal(reference.BaseMeta.GetProperty("num_params").GetInt64(), model.Architecture.CountParameters());
    }
}
