namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// The float32 values of one tensor, produced on demand in row-major order: <see cref="ModelWriter"/> asks for
/// consecutive ranges, converts them to the initializer's element type into a reusable buffer and writes them, so
/// no copy of the whole tensor (or of the model) is ever held. <see cref="Release"/> follows the last range.
/// </summary>
public abstract class FloatValues
{
    public abstract long Count { get; }

    /// <summary>Fills <paramref name="destination"/> with elements [start, start + destination.Length).</summary>
    public abstract void Read(long start, Span<float> destination);

    /// <summary>
    /// The elements [start, start + count) where they already lie in memory in float32 (a memory-mapped checkpoint),
    /// so the writer can skip the copy into its buffer; false otherwise.
    /// </summary>
    public virtual bool TryGetSpan(long start, int count, out ReadOnlySpan<float> values)
    {
        values = default;
        return false;
    }

    /// <summary>Where all the values lie unchanged in a file as float32 (the writer may copy them file to file); null otherwise.</summary>
    public virtual Weights.StoredBytes? Stored => null;

    /// <summary>The writer is done: memory-mapped pages and computed arrays can go.</summary>
    public virtual void Release() { }

    /// <summary>Values held in an array.</summary>
    public static FloatValues Of(float[] values) => new ArrayValues(() => values);

    /// <summary>Values computed on the first <see cref="Read"/> (e.g. a transposed copy) and dropped on <see cref="Release"/>.</summary>
    public static FloatValues Computed(long count, Func<float[]> compute) => new ArrayValues(compute, count);

    private sealed class ArrayValues(Func<float[]> compute, long? count = null) : FloatValues
    {
        private float[]? _values;

        public override long Count => count ?? Values.LongLength;

        private float[] Values => _values ??= compute();

        public override void Read(long start, Span<float> destination) =>
            Values.AsSpan(checked((int)start), destination.Length).CopyTo(destination);

        public override bool TryGetSpan(long start, int count, out ReadOnlySpan<float> values)
        {
            values = Values.AsSpan(checked((int)start), count);
            return true;
        }

        public override void Release() => _values = null;
    }
}
