using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// The weights a graph is built from, by Hugging Face state-dict name, read as float32. The checkpoint is one
/// source; passes (LoRA / IA3 merge, ...) wrap a source and change the tensors they touch. Graphs ask for
/// <see cref="AsIs"/> or <see cref="Transposed"/> initializers, which read the tensor only when the model
/// writer streams it.
/// </summary>
public abstract class WeightSource
{
    public abstract bool Contains(string name);

    public abstract long[] Shape(string name);

    /// <summary>The whole tensor as float32 (converted from F16/BF16/F64 where stored so).</summary>
    public abstract float[] ReadFloat32(string name);

    /// <summary>Streams the tensor's float32 little-endian bytes; sources that can avoid one big array override it.</summary>
    public virtual void WriteFloat32(string name, Stream stream) => InitializerData.WriteChunked<float>(stream, ReadFloat32(name));

    /// <summary>
    /// An extra term added to a linear module's output, built into the graph next to its MatMul (e.g. an unmerged
    /// LoRA branch x @ A^T @ B^T * scaling); null when the module has none. <paramref name="x"/> is the module's
    /// input; nodes go into the builder's current scope (the module's). Passes that wrap a source forward this.
    /// </summary>
    public virtual string? LinearBranch(GraphBuilder g, Core.Architectures.LinearSpec spec, string x) => null;

    /// <summary>The tensor unchanged, as a deferred float32 initializer.</summary>
    public InitializerData AsIs(string name) => InitializerData.Deferred(ElementType.Float, Shape(name), s => WriteFloat32(name, s));

    /// <summary>A 2-D tensor [rows, cols] stored as [cols, rows] (nn.Linear's [out, in] -> MatMul's [in, out]).</summary>
    public InitializerData Transposed(string name)
    {
        var shape = Shape(name);
        if (shape.Length != 2) throw new ArgumentException($"'{name}' has shape [{string.Join(", ", shape)}]; only 2-D tensors can be transposed");
        return InitializerData.DeferredFloats([shape[1], shape[0]], () => Transpose(ReadFloat32(name), checked((int)shape[0]), checked((int)shape[1])));
    }

    /// <summary>Row-major [rows, cols] -> [cols, rows], in blocks for cache locality.</summary>
    public static float[] Transpose(float[] a, int rows, int cols)
    {
        if ((long)rows * cols != a.LongLength) throw new ArgumentException("size mismatch");
        var t = new float[a.Length];
        const int B = 32;
        for (int r0 = 0; r0 < rows; r0 += B)
        {
            int r1 = Math.Min(rows, r0 + B);
            for (int c0 = 0; c0 < cols; c0 += B)
            {
                int c1 = Math.Min(cols, c0 + B);
                for (int r = r0; r < r1; r++)
                {
                    long src = (long)r * cols;
                    for (int c = c0; c < c1; c++) t[(long)c * rows + r] = a[src + c];
                }
            }
        }
        return t;
    }
}
