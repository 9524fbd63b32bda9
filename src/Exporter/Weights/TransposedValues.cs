using System.Runtime.CompilerServices;
using System.Buffers;
using System.Runtime.Intrinsics.X86;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Weights;

/// <summary>
/// The transpose [cols, rows] of a source tensor [rows, cols], produced range by range in output order. It reads
/// straight from the memory-mapped checkpoint when the tensor lies there as float32, also under a merged LoRA delta,
/// which is added after transposing (<see cref="WeightSource.TransposedAddend"/>); otherwise (scaled, converted from
/// F16/BF16) the source tensor is computed once into one array, which goes on <see cref="Release"/>.
/// </summary>
internal sealed class TransposedValues(WeightSource source, string name, long rows, long cols) : FloatValues
{
    private const int Tile = 32;
    private const long ParallelElements = 1 << 18;

    /// <summary>Copies up to this many elements come from the shared array pool (one array serves tensor after tensor); larger ones are dropped.</summary>
    private const int PooledElements = 16 << 20;

    private float[]? _copy;
    private readonly TransposedTerm? _addend = source.TransposedAddend(name);

    public override long Count { get; } = checked(rows * cols);

    public override unsafe void Read(long start, Span<float> destination)
    {
        if (start < 0 || start > Count - destination.Length) throw new ArgumentOutOfRangeException(nameof(start));
        var src = Source();
        fixed (float* s = src)
        fixed (float* d = destination)
            Transpose(s, rows, cols, start, d, destination.Length);
        _addend?.Term.AddTo(destination, start);
    }

    public override void Release()
    {
        if (_copy != null && Count <= PooledElements) ArrayPool<float>.Shared.Return(_copy);
        _copy = null;
        source.Release(name);
    }

    private ReadOnlySpan<float> Source()
    {
        var below = _addend?.Below ?? source;
        if (Count <= int.MaxValue && below.TryGetSpan(name, 0, (int)Count, out var mapped)) return mapped;
        if (_copy == null)
        {
            if (Count > Array.MaxLength) throw new Core.PeftOnnxException($"tensor '{name}' has {Count} elements, too many to transpose in one array");
            _copy = Count <= PooledElements ? ArrayPool<float>.Shared.Rent((int)Count) : GC.AllocateUninitializedArray<float>((int)Count);
            below.Read(name, 0, _copy.AsSpan(0, (int)Count));
        }
        return _copy.AsSpan(0, (int)Count);
    }

    /// <summary>Elements [start, start + destination.Length) of the transpose of <paramref name="src"/> [rows, cols].</summary>
    public static unsafe void Transpose(ReadOnlySpan<float> src, long rows, long cols, long start, Span<float> destination)
    {
        if (src.Length != rows * cols) throw new ArgumentException("size mismatch");
        if (start < 0 || start > src.Length - destination.Length) throw new ArgumentOutOfRangeException(nameof(start));
        fixed (float* s = src)
        fixed (float* d = destination)
            Transpose(s, rows, cols, start, d, destination.Length);
    }

    /// <summary>
    /// out[c * rows + r] = src[r * cols + c] for the output elements [start, start + count): whole output rows in
    /// cache-sized tiles (split across cores when large), a partial first or last row element by element.
    /// </summary>
    private static unsafe void Transpose(float* src, long rows, long cols, long start, float* dst, long count)
    {
        long end = start + count;
        long firstFull = (start + rows - 1) / rows, lastFull = end / rows;   // whole output rows [firstFull, lastFull)
        if (firstFull >= lastFull)
        {
            Gather(src, rows, cols, start, end, dst);
            return;
        }
        Gather(src, rows, cols, start, firstFull * rows, dst);
        float* body = dst + (firstFull * rows - start);
        long outRows = lastFull - firstFull;
        int parts = outRows * rows >= ParallelElements ? (int)Math.Min(Environment.ProcessorCount, outRows) : 1;
        if (parts <= 1) Tiles(src, rows, cols, firstFull, lastFull, body, firstFull);
        else
        {
            nint s = (nint)src, b = (nint)body;
            Parallel.For(0, parts, p =>
            {
                long c0 = firstFull + outRows * p / parts, c1 = firstFull + outRows * (p + 1) / parts;
                Tiles((float*)s, rows, cols, c0, c1, (float*)b, firstFull);
            });
        }
        Gather(src, rows, cols, lastFull * rows, end, dst + (lastFull * rows - start));
    }

    /// <summary>Output rows [c0, c1) into <paramref name="dst"/>, which holds output rows from <paramref name="dstRow"/> on.</summary>
    // optimized at first call: these loops run a few times on gigabytes, too few calls for tiered compilation to reach them in time
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Tiles(float* src, long rows, long cols, long c0, long c1, float* dst, long dstRow)
    {
        for (long r0 = 0; r0 < rows; r0 += Tile)
        {
            long r1 = Math.Min(rows, r0 + Tile);
            for (long cs = c0; cs < c1; cs += Tile)
            {
                long ce = Math.Min(c1, cs + Tile);
                long r = r0;
                if (Avx.IsSupported)
                    for (; r + 8 <= r1; r += 8)
                    {
                        long c = cs;
                        for (; c + 8 <= ce; c += 8) Transpose8x8(src + r * cols + c, cols, dst + (c - dstRow) * rows + r, rows);
                        for (; c < ce; c++)
                            for (long k = r; k < r + 8; k++) dst[(c - dstRow) * rows + k] = src[k * cols + c];
                    }
                for (; r < r1; r++)
                {
                    float* row = src + r * cols;
                    float* o = dst + (cs - dstRow) * rows + r;
                    for (long c = cs; c < ce; c++, o += rows) *o = row[c];
                }
            }
        }
    }

    /// <summary>An 8 x 8 block: rows of <paramref name="src"/> <paramref name="srcStride"/> apart to rows of <paramref name="dst"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Transpose8x8(float* src, long srcStride, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride);
        var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride);
        var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride);
        var r7 = Avx.LoadVector256(src + 7 * srcStride);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Output elements [from, to) one by one (at most a row's worth at either end of a range).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Gather(float* src, long rows, long cols, long from, long to, float* dst)
    {
        for (long e = from; e < to; e++, dst++)
        {
            long c = e / rows, r = e % rows;
            *dst = src[r * cols + c];
        }
    }
}
