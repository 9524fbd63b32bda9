using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// The weights a graph is built from, by Hugging Face state-dict name, read as float32 range by range. The checkpoint
/// is one source; passes (LoRA / IA3 merge, ...) wrap a source and change the tensors they touch. Graphs ask for
/// <see cref="AsIs"/> or <see cref="Transposed"/> initializers, which read the tensor only while the model writer
/// streams it, one buffer at a time, and then <see cref="Release"/> it.
/// </summary>
public abstract class WeightSource
{
    public abstract bool Contains(string name);

    public abstract long[] Shape(string name);

    public long ElementCount(string name) => Shape(name).Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>
    /// Elements [start, start + destination.Length) of the tensor in its stored row-major layout, as float32 (converted
    /// from F16/BF16/F64 where stored so, changed by the passes that touch it).
    /// </summary>
    public abstract void Read(string name, long start, Span<float> destination);

    /// <summary>
    /// Elements [start, start + count) where they already lie in memory as float32, unchanged by any pass (a
    /// memory-mapped F32 checkpoint), so they can be written or transposed without a copy; false otherwise.
    /// </summary>
    public virtual bool TryGetSpan(string name, long start, int count, out ReadOnlySpan<float> values)
    {
        values = default;
        return false;
    }

    /// <summary>
    /// Where the whole tensor lies in a file as float32, unchanged by any pass (an F32 checkpoint tensor), so the writer
    /// can copy it file to file (<see cref="AsIs"/> only: the bytes are the stored layout); null otherwise.
    /// </summary>
    public virtual StoredBytes? StoredFloat32(string name) => null;

    /// <summary>
    /// When <paramref name="name"/> is another source's tensor plus a term (a merged LoRA delta), that source and the term
    /// laid out as the tensor's transpose, so a transposed read transposes the untouched tensor where it lies (mapped)
    /// and adds the term after, instead of computing the whole sum into a copy first; null otherwise.
    /// </summary>
    public virtual TransposedTerm? TransposedAddend(string name) => null;

    /// <summary>The writer is done with the tensor: a memory-mapped source drops its pages from this process. Passes forward it.</summary>
    public virtual void Release(string name) { }

    /// <summary>The whole tensor as float32 in one array (small tensors; streaming goes through <see cref="Read"/>).</summary>
    public float[] ReadFloat32(string name)
    {
        long count = ElementCount(name);
        if (count > Array.MaxLength) throw new Core.PeftOnnxException($"tensor '{name}' has {count} elements, too many for one array");
        var values = new float[count];
        Read(name, 0, values);
        return values;
    }

    /// <summary>The tensor unchanged, as a float32 initializer streamed from this source.</summary>
    public InitializerData AsIs(string name) => InitializerData.Streamed(ElementType.Float, Shape(name), new TensorValues(this, name));

    /// <summary>A 2-D tensor [rows, cols] stored as [cols, rows] (nn.Linear's [out, in] -> MatMul's [in, out]), streamed.</summary>
    public InitializerData Transposed(string name)
    {
        var shape = Shape(name);
        if (shape.Length != 2) throw new ArgumentException($"'{name}' has shape [{string.Join(", ", shape)}]; only 2-D tensors can be transposed");
        return InitializerData.Streamed(ElementType.Float, [shape[1], shape[0]], new TransposedValues(this, name, shape[0], shape[1]));
    }

    /// <summary>Row-major [rows, cols] -> [cols, rows].</summary>
    public static float[] Transpose(float[] a, int rows, int cols)
    {
        if ((long)rows * cols != a.LongLength) throw new ArgumentException("size mismatch");
        var t = new float[a.Length];
        TransposedValues.Transpose(a, rows, cols, 0, t);
        return t;
    }

    /// <summary>One tensor of a source, as the writer streams it.</summary>
    private sealed class TensorValues(WeightSource source, string name) : FloatValues
    {
        public override long Count { get; } = source.ElementCount(name);

        public override void Read(long start, Span<float> destination) => source.Read(name, start, destination);

        public override bool TryGetSpan(long start, int count, out ReadOnlySpan<float> values) => source.TryGetSpan(name, start, count, out values);

        public override StoredBytes? Stored => source.StoredFloat32(name);

        public override void Release() => source.Release(name);
    }
}

/// <summary>A term added to elements of a 2-D tensor's transpose ([cols, rows] row-major), range by range.</summary>
public interface ITransposedTerm
{
    /// <summary>Adds the term to <paramref name="values"/>, elements [start, start + values.Length) of the transpose.</summary>
    void AddTo(Span<float> values, long start);
}

/// <summary>A tensor as <paramref name="Below"/>'s plus <paramref name="Term"/> (see <see cref="WeightSource.TransposedAddend"/>).</summary>
public sealed record TransposedTerm(WeightSource Below, ITransposedTerm Term);
