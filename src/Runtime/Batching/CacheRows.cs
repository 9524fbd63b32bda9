using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// Builds a batch cache [rows, heads, length, head_dim] on the CPU from rows of other caches, each row left-padded
/// with zeros to the new length. The padded positions are masked out, so they change no row's attention.
/// </summary>
internal static class CacheRows
{
    /// <summary>One source row: a cache value, the row in it, and how many of its leading positions to drop.</summary>
    public readonly record struct Source(OrtValue Value, int Row, int Skip);

    public static OrtValue Gather(IReadOnlyList<Source> rows, int length, TensorElementType type)
    {
        var first = rows[0].Value.GetTensorTypeAndShape().Shape;
        long heads = first[1], headDim = first[3];
        int elementSize = type == TensorElementType.Float16 ? 2 : 4;
        var result = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, [rows.Count, heads, length, headDim]);
        var target = result.GetTensorMutableRawData();
        target.Clear();
        long rowBytes = (long)length * headDim * elementSize;
        for (int r = 0; r < rows.Count; r++)
        {
            var (value, sourceRow, skip) = rows[r];
            var shape = value.GetTensorTypeAndShape().Shape;
            long sourceLength = shape[2];
            long keep = sourceLength - skip;
            if (keep > length) throw new InvalidOperationException($"a cache row of {keep} positions does not fit {length}");
            var source = value.GetTensorMutableRawData();
            for (long h = 0; h < heads; h++)
            {
                long from = ((sourceRow * heads + h) * sourceLength + skip) * headDim * elementSize;
                long to = (r * heads + h) * rowBytes + (length - keep) * headDim * elementSize;
                long bytes = keep * headDim * elementSize;
                source.Slice((int)from, (int)bytes).CopyTo(target.Slice((int)to, (int)bytes));
            }
        }
        return result;
    }
}
