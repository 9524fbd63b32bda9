using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>
/// The check a quantized export runs (its MatMulNBits weights pre-packed) asserts what the float check asserts: it
/// passes a sound export with the interface's shapes and refuses one whose weights make the logits non-finite.
/// </summary>
public class QuantizedCheckTests
{
    [Theory]
    [InlineData("bloom", 8)]
    [InlineData("llama", 4)]
    [InlineData("t5", 8)]
    public void Quantized_check_passes_a_sound_export_and_refuses_a_corrupted_scale(string arch, int bits)
    {
        var dir = TempExports.FreshPath();
        var options = new ExportOptions
        {
            Quantize = new WeightQuantization(new QuantizationFormat(bits, 16)),
            Verify = false,
        };
        try
        {
            var result = OnnxExport.ExportBase(Paths.Case(arch, "base_model"), dir, options);
            bool seq2seq = result.Models.Count == 2;
            var quantized = Check(dir, seq2seq, CheckWeights.Quantized);
            Assert.Equal(Check(dir, seq2seq, CheckWeights.Float), quantized);

            // one block's scale of the largest scales in the data file (the head's) set to NaN: the logit that reads it is NaN
            var model = result.Model;
            var scales = model.External.Where(e => e.Key.EndsWith("_scales", StringComparison.Ordinal)).OrderByDescending(e => e.Value.Length).ToList();
            Assert.NotEmpty(scales);
            var target = scales[0].Value;
            using (var data = new FileStream(model.DataPath!, FileMode.Open, FileAccess.Write))
            {
                data.Position = target.Offset;
                data.Write(BitConverter.GetBytes(float.NaN));
            }
            var ex = Assert.Throws<PeftOnnxException>(() => Check(dir, seq2seq, CheckWeights.Quantized));
            Assert.Contains("value NaN", ex.Message);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    /// <summary>The check's report, as text (its shapes are arrays), for the graphs in <paramref name="dir"/>.</summary>
    private static string Check(string dir, bool seq2seq, CheckWeights weights)
    {
        if (seq2seq)
        {
            var r = OnnxCheck.Seq2Seq(Path.Combine(dir, Seq2SeqContract.EncoderFile), Path.Combine(dir, Seq2SeqContract.DecoderFile), weights);
            return $"{r.NumDecoderLayers} {r.NumHeads} {r.HeadDim} {r.DModel} {r.VocabSize} [{string.Join(",", r.EncoderOutputShape)}] [{string.Join(",", r.FirstStepLogitsShape)}] [{string.Join(",", r.DecodeLogitsShape)}]";
        }
        var c = OnnxCheck.CausalLm(Path.Combine(dir, CausalLmContract.ModelFile), weights);
        return $"{c.NumLayers} {c.NumHeads} {c.HeadDim} {c.VocabSize} [{string.Join(",", c.PrefillLogitsShape)}] [{string.Join(",", c.DecodeLogitsShape)}]";
    }
}
