using Peft.Onnx.Core;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>
/// <see cref="OnnxForward"/>, the library side of `forward --onnx`: a base export's logits and loss against
/// transformers' on the fixture batch, and its refusals of batches the export cannot take.
/// </summary>
public class OnnxForwardTests
{
    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public void Base_export_logits_and_loss_match_transformers(string arch)
    {
        var inputs = Path.Combine(Paths.Case(arch), "inputs.safetensors");
        var result = OnnxForward.Run(ExportedModels.Folder(arch), ForwardBatch.Read(inputs), inputs);

        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
        using var reference = new Reference(arch);
        Assert.Equal(expected["logits"].Shape, result.LogitsShape);
        var rows = reference.IsEncoderDecoder
            ? reference.Inputs.ReadInt64("labels").Select(l => l != LabelIds.Ignore).ToArray()
            : Tolerance.RowsFromMask(reference.Inputs.ReadInt64("attention_mask"));
        Tolerance.AssertLogits(expected.ReadFloat32("logits"), result.Logits, (int)result.LogitsShape[^1], rows, $"{arch} OnnxForward logits");
        Assert.NotNull(result.Loss);
        Tolerance.AssertLoss(expected.ReadFloat32("loss")[0], result.Loss!.Value);
    }

    [Fact]
    public void A_decoder_only_export_needs_labels_shaped_like_input_ids()
    {
        var batch = new ForwardBatch([5, 6, 7, 8], [1, 1, 1, 1], [1, 4], [5, 6, 7], [1, 3]);
        var error = Assert.Throws<PeftOnnxException>(() => OnnxForward.Run(ExportedModels.Folder("gpt2"), batch, "batch.safetensors"));
        Assert.Equal("batch.safetensors: labels has shape [1, 3] but a decoder-only export needs the shape of input_ids [1, 4]", error.Message);
    }

    [Fact]
    public void An_encoder_decoder_export_needs_labels()
    {
        var batch = new ForwardBatch([5, 6, 7, 8], [1, 1, 1, 1], [1, 4], null, null);
        var error = Assert.Throws<PeftOnnxException>(() => OnnxForward.Run(ExportedModels.Folder("t5"), batch, "batch.safetensors"));
        Assert.StartsWith("batch.safetensors: an encoder-decoder export needs 'labels'", error.Message);
    }

    [Fact]
    public void Mean_cross_entropy_is_torchs_on_a_hand_computed_case()
    {
        // One row, vocab 2, logits (0, ln 3) at t = 0 and (0, 0) at t = 1; causal: t = 0 scores label 1 (id 0), t = 1 has none.
        float[] logits = [0f, MathF.Log(3f), 0f, 0f];
        Assert.Equal(Math.Log(4.0), MeanCrossEntropy.Of(logits, 2, [-100, 0], shift: true, batch: 1), 6);
        // Not shifted: t = 0 scores id 1 (-ln 3/4), t = 1 is ignored.
        Assert.Equal(-Math.Log(0.75), MeanCrossEntropy.Of(logits, 2, [1, -100], shift: false, batch: 1), 6);
        Assert.Throws<PeftOnnxException>(() => MeanCrossEntropy.Of(logits, 2, [-100, -100], shift: false, batch: 1));
    }
}
