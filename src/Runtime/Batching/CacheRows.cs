using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Peft.Onnx.Runtime.Batching;

/// <summary>
/// Builds a batch cache [rows, heads, lead + length, head_dim] on the CPU from rows of other caches: each row's first
/// <c>lead</c> positions (a baked prompt's virtual tokens, which every row has) stay in front, the rest is left-padded
/// with zeros to <c>length</c>. The padded positions are masked out, so they change no row's attention.
/// </summary>
internal static class CacheRows
{
    /// <summary>One source row: a cache value, the row in it, and how many positions after the lead to drop.</summary>
    public readonly record struct Source(OrtValue Value, int Row, int Skip);

    public static OrtValue Gather(IReadOnlyList<Source> rows, int lead, int length, TensorElementType type)
    {
        var first = rows[0].Value.GetTensorTypeAndShape().Shape;
        long heads = first[1], headDim = first[3];
        int elementSize = type == TensorElementType.Float16 ? 2 : 4;
        long positionBytes = headDim * elementSize;
        long targetLength = lead + length;
        var result = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, [rows.Count, heads, targetLength, headDim]);
        var target = result.GetTensorMutableRawData();
        target.Clear();
        for (int r = 0; r < rows.Count; r++)
        {
            var (value, sourceRow, skip) = rows[r];
            long sourceLength = value.GetTensorTypeAndShape().Shape[2];
            long keep = sourceLength - lead - skip;
            if (keep > length || keep < 0) throw new InvalidOperationException($"a cache row of {keep} positions does not fit {length}");
            var source = value.GetTensorMutableRawData();
            for (long h = 0; h < heads; h++)
            {
                long from = (sourceRow * heads + h) * sourceLength * positionBytes;
                long to = (r * heads + h) * targetLength * positionBytes;
                if (lead > 0) source.Slice((int)from, (int)(lead * positionBytes)).CopyTo(target.Slice((int)to, (int)(lead * positionBytes)));
                from += (lead + skip) * positionBytes;
                to += (lead + length - keep) * positionBytes;
                source.Slice((int)from, (int)(keep * positionBytes)).CopyTo(target.Slice((int)to, (int)(keep * positionBytes)));
            }
        }
        return result;
    }

    /// <summary>
    /// One row of a cache value as raw bytes [heads, lead + keep, head_dim]: its first <paramref name="lead"/> positions
    /// and its last <paramref name="keep"/> ones (a left-padded row's real positions).
    /// </summary>
    public static byte[] Row(OrtValue value, int row, int lead, int keep)
    {
        var shape = value.GetTensorTypeAndShape().Shape;
        long heads = shape[1], sourceLength = shape[2], headDim = shape[3];
        int elementSize = value.GetTensorTypeAndShape().ElementDataType == TensorElementType.Float16 ? 2 : 4;
        long positionBytes = headDim * elementSize, targetLength = lead + keep;
        if (keep > sourceLength - lead) throw new InvalidOperationException($"a row of {keep} positions does not fit a cache of {sourceLength - lead}");
        var result = new byte[heads * targetLength * positionBytes];
        var source = value.GetTensorMutableRawData();
        for (long h = 0; h < heads; h++)
        {
            long from = (row * heads + h) * sourceLength * positionBytes;
            long to = h * targetLength * positionBytes;
            if (lead > 0) source.Slice((int)from, (int)(lead * positionBytes)).CopyTo(result.AsSpan((int)to, (int)(lead * positionBytes)));
            from += (sourceLength - keep) * positionBytes;
            to += lead * positionBytes;
            source.Slice((int)from, (int)(keep * positionBytes)).CopyTo(result.AsSpan((int)to, (int)(keep * positionBytes)));
        }
        return result;
    }

    /// <summary>A one-row cache value [1, heads, positions, head_dim] holding <paramref name="row"/> (as <see cref="Row"/> wrote it).</summary>
    public static OrtValue FromRow(byte[] row, long heads, long headDim, TensorElementType type)
    {
        int elementSize = type == TensorElementType.Float16 ? 2 : 4;
        long positions = row.Length / (heads * headDim * elementSize);
        var result = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, type, [1, heads, positions, headDim]);
        row.CopyTo(result.GetTensorMutableRawData());
        return result;
    }

    /// <summary>
    /// Writes row <paramref name="sourceRow"/> of <paramref name="source"/> over row <paramref name="targetRow"/> of
    /// <paramref name="target"/> in place: the lead in front, the source's positions at the end, zeros between (the
    /// target row is at least as long; its old values are overwritten, the other rows untouched).
    /// </summary>
    public static void Overwrite(OrtValue source, int sourceRow, OrtValue target, int targetRow, int lead)
    {
        var sourceShape = source.GetTensorTypeAndShape().Shape;
        var targetShape = target.GetTensorTypeAndShape().Shape;
        long heads = targetShape[1], targetLength = targetShape[2], sourceLength = sourceShape[2], headDim = targetShape[3];
        int elementSize = target.GetTensorTypeAndShape().ElementDataType == TensorElementType.Float16 ? 2 : 4;
        long positionBytes = headDim * elementSize, keep = sourceLength - lead, pad = targetLength - sourceLength;
        if (pad < 0) throw new InvalidOperationException($"a cache row of {sourceLength} positions does not fit {targetLength}");
        var from = source.GetTensorMutableRawData();
        var to = target.GetTensorMutableRawData();
        for (long h = 0; h < heads; h++)
        {
            long f = (sourceRow * heads + h) * sourceLength * positionBytes;
            long t = (targetRow * heads + h) * targetLength * positionBytes;
            if (lead > 0) from.Slice((int)f, (int)(lead * positionBytes)).CopyTo(to.Slice((int)t, (int)(lead * positionBytes)));
            to.Slice((int)(t + lead * positionBytes), (int)(pad * positionBytes)).Clear();
            from.Slice((int)(f + lead * positionBytes), (int)(keep * positionBytes)).CopyTo(to.Slice((int)(t + (lead + pad) * positionBytes), (int)(keep * positionBytes)));
        }
    }
}
