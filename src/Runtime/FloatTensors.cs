using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Peft.Onnx.Core;

namespace Peft.Onnx.Runtime;

/// <summary>float32 arrays to and from float32 or float16 tensors (an fp16 export's caches; float16 -> float32 is exact).</summary>
internal static class FloatTensors
{
    /// <summary>A float32 or float16 tensor's values as float32.</summary>
    public static float[] ToFloat(OrtValue value) => value.GetTensorTypeAndShape().ElementDataType switch
    {
        TensorElementType.Float => value.GetTensorDataAsSpan<float>().ToArray(),
        TensorElementType.Float16 => value.GetTensorDataAsSpan<Float16>().ToArray().Select(h => h.ToFloat()).ToArray(),
        var t => throw new PeftOnnxException($"expected a float or float16 tensor, got {t}"),
    };

    /// <summary><paramref name="data"/> as a tensor of <paramref name="type"/> (float32 as is, float16 converted).</summary>
    public static OrtValue Tensor(float[] data, long[] shape, TensorElementType type) => type switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(data, shape),
        TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(data.Select(v => (Float16)v).ToArray(), shape),
        _ => throw new PeftOnnxException($"expected a float or float16 cache input, got {type}"),
    };

    /// <summary>An output's values as float32 after checking its shape.</summary>
    public static float[] Read(OrtValue value, long[] expectedShape, string name)
    {
        var shape = value.GetTensorTypeAndShape().Shape;
        if (!shape.SequenceEqual(expectedShape))
            throw new PeftOnnxException($"output '{name}' has shape [{string.Join(", ", shape)}], expected [{string.Join(", ", expectedShape)}]");
        return ToFloat(value);
    }
}
