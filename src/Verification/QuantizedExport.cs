using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Verification;

/// <summary>Whether an export folder's graphs multiply by quantized weights (com.microsoft MatMulNBits).</summary>
public static class QuantizedExport
{
    public static bool Detect(string onnxDir) =>
        new[] { CausalLmContract.ModelFile, Seq2SeqContract.DecoderFile, Seq2SeqContract.EncoderFile }
            .Select(f => Path.Combine(onnxDir, f))
            .Where(File.Exists)
            .Any(path => ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Node.Any(n => n.OpType == "MatMulNBits"));
}
