using System.Globalization;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Core.Data;

/// <summary>
/// What `peft-onnx forward` writes, whichever engine ran it: logits (float32; [B, T, V], encoder-decoder [B, L, V])
/// and the mean loss when the batch had labels.
/// </summary>
public sealed record ForwardResult(float[] Logits, long[] LogitsShape, float? Loss)
{
    /// <summary>Writes logits (and loss, a scalar) to a safetensors file, atomically.</summary>
    public void Write(string path)
    {
        var tensors = new List<TensorData> { TensorData.FromFloat32("logits", LogitsShape, Logits) };
        if (Loss is { } loss) tensors.Add(TensorData.FromFloat32("loss", [], [loss]));
        SafeTensorsWriter.Write(path, tensors);
    }

    /// <summary>The line that reports a written result.</summary>
    public string Describe(string path) =>
        $"wrote logits [{string.Join(", ", LogitsShape)}]{(Loss is { } l ? $" and loss {l.ToString("G9", CultureInfo.InvariantCulture)}" : "")} to {path}";
}
