using System.Buffers.Binary;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// A checkpoint's tensors (memory-mapped safetensors) as a <see cref="WeightSource"/>. Streaming a tensor
/// goes slice by slice, so single tensors over 2 GB export too.
/// </summary>
public sealed class CheckpointWeights(CheckpointTensors tensors) : WeightSource
{
    private const int SliceElements = 4 << 20;

    public CheckpointTensors Tensors { get; } = tensors;

    public override bool Contains(string name) => Tensors.Contains(name);

    public override long[] Shape(string name) => Tensors[name].Shape;

    public override float[] ReadFloat32(string name)
    {
        var e = Tensors[name];
        if (e.ElementCount > Array.MaxLength) throw new PeftOnnxException($"tensor '{name}' has {e.ElementCount} elements, too many for one array");
        if (e.ByteLength <= int.MaxValue) return Tensors.ReadFloat32(name);
        var result = new float[e.ElementCount];
        Convert(e, (start, values) => values.CopyTo(result.AsSpan(checked((int)start))));
        return result;
    }

    public override void WriteFloat32(string name, Stream stream)
    {
        var e = Tensors[name];
        Convert(e, (_, values) => InitializerData.WriteChunked<float>(stream, values));
    }

    /// <summary>
    /// Checks that the checkpoint has every tensor the architecture expects, with the expected shape and a
    /// floating-point dtype, so a mismatched folder fails before anything is written.
    /// </summary>
    public void Validate(Architecture architecture, string dir)
    {
        foreach (var p in architecture.Parameters)
        {
            if (!Tensors.Contains(p.Name)) throw new PeftOnnxException($"{dir}: checkpoint has no tensor '{p.Name}' (expected by {architecture.ClassName})");
            var e = Tensors[p.Name];
            if (!e.Shape.SequenceEqual(p.Shape))
                throw new PeftOnnxException($"{dir}: tensor '{p.Name}' has shape [{string.Join(", ", e.Shape)}], config.json implies [{string.Join(", ", p.Shape)}]");
            if (e.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
                throw new PeftOnnxException($"{dir}: tensor '{p.Name}' has dtype {e.DType}, expected F32, F16, BF16 or F64");
        }
    }

    /// <summary>Calls <paramref name="sink"/> with consecutive float32 slices of the tensor (start element, values).</summary>
    private void Convert(TensorEntry e, Action<long, ReadOnlySpan<float>> sink)
    {
        var file = Tensors.FileOf(e.Name);
        int size = e.DType.Size();
        var buffer = new float[(int)Math.Min(SliceElements, Math.Max(1, e.ElementCount))];
        for (long start = 0; start < e.ElementCount; start += SliceElements)
        {
            int n = (int)Math.Min(SliceElements, e.ElementCount - start);
            var bytes = file.GetBytes(e.Name, start * size, n * size);
            var dst = buffer.AsSpan(0, n);
            switch (e.DType)
            {
                case DType.F32:
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst);
                    break;
                case DType.F16:
                    for (int i = 0; i < n; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                    break;
                case DType.BF16:
                    for (int i = 0; i < n; i++) dst[i] = TensorConvert.BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]));
                    break;
                case DType.F64:
                    for (int i = 0; i < n; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(8 * i)..]);
                    break;
                default:
                    throw new PeftOnnxException($"tensor '{e.Name}' has dtype {e.DType}, expected a floating-point type");
            }
            sink(start, dst);
        }
    }
}
