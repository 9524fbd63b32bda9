using System.Runtime.InteropServices;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>
/// The content of an initializer: element type, shape and a way to write its little-endian bytes. Either
/// held in memory, or streamed: the values are produced range by range (<see cref="FloatValues"/>) only when
/// <see cref="ModelWriter"/> writes them to the data file, converted to float32 or float16 on the way, so a graph
/// over a multi-gigabyte checkpoint never holds more than a buffer of it.
/// </summary>
public sealed class InitializerData
{
    private const int ChunkBytes = 64 << 20;

    /// <summary>
    /// Float32 tensors of at least this many bytes that lie unchanged in a file (an F32 checkpoint's embedding table) are
    /// copied file to file (<see cref="ModelWriterDataFile.CopyFrom"/>); smaller ones go through the write buffer, where
    /// they cost less than a copy of their own.
    /// </summary>
    private const long FileCopyBytes = 4 << 20;

    private readonly byte[]? _bytes;
    private readonly Action<Stream>? _write;
    private readonly FloatValues? _values;

    private InitializerData(ElementType type, long[] dims, byte[]? bytes, Action<Stream>? write, FloatValues? values = null)
    {
        foreach (var d in dims)
            if (d < 0) throw new ArgumentException($"dimension {d} < 0 in [{string.Join(", ", dims)}]", nameof(dims));
        Type = type;
        Dims = dims;
        ElementCount = dims.Aggregate(1L, (a, b) => checked(a * b));
        ByteLength = checked(ElementCount * type.Size());
        _bytes = bytes;
        _write = write;
        _values = values;
        if (values != null && type is not (ElementType.Float or ElementType.Float16))
            throw new ArgumentException($"streamed float values can be written as float or float16, not {type}");
        if (bytes != null && bytes.LongLength != ByteLength)
            throw new ArgumentException($"{bytes.LongLength} bytes given for a {type} tensor of shape [{string.Join(", ", dims)}] ({ByteLength} bytes)");
    }

    public ElementType Type { get; }
    public long[] Dims { get; }
    public long ElementCount { get; }
    public long ByteLength { get; }

    /// <summary>True when the bytes are held in memory (not produced on demand).</summary>
    public bool IsMaterialized => _bytes != null;

    /// <summary>A copy of <paramref name="bytes"/> (little-endian elements of <paramref name="type"/>).</summary>
    public static InitializerData FromBytes(ElementType type, long[] dims, ReadOnlySpan<byte> bytes) => new(type, dims, bytes.ToArray(), null);

    public static InitializerData FromFloats(ReadOnlySpan<float> values, params long[] dims) =>
        new(ElementType.Float, dims, MemoryMarshal.AsBytes(values).ToArray(), null);

    public static InitializerData FromInt64(ReadOnlySpan<long> values, params long[] dims) =>
        new(ElementType.Int64, dims, MemoryMarshal.AsBytes(values).ToArray(), null);

    public static InitializerData Scalar(float value) => FromFloats([value]);
    public static InitializerData Scalar(long value) => FromInt64([value]);

    /// <summary>
    /// Bytes produced on demand by <paramref name="write"/>, which must write exactly
    /// ByteLength bytes each time it is called (the writer checks).
    /// </summary>
    public static InitializerData Deferred(ElementType type, long[] dims, Action<Stream> write) => new(type, dims, null, write);

    /// <summary>
    /// A float32 tensor computed on demand (e.g. a transposed weight): <paramref name="compute"/> runs when
    /// the bytes are written and its array is dropped afterwards.
    /// </summary>
    public static InitializerData DeferredFloats(long[] dims, Func<float[]> compute)
    {
        long count = dims.Aggregate(1L, (a, b) => checked(a * b));
        return Streamed(ElementType.Float, dims, FloatValues.Computed(count, () =>
        {
            var values = compute();
            if (values.LongLength != count)
                throw new InvalidOperationException($"tensor producer gave {values.LongLength} values, expected {count} ([{string.Join(", ", dims)}])");
            return values;
        }));
    }

    /// <summary>
    /// A tensor whose float32 <paramref name="values"/> are produced while it is written, as <paramref name="type"/>
    /// (Float, or Float16 converted on the way by <see cref="HalfConversion"/>).
    /// </summary>
    public static InitializerData Streamed(ElementType type, long[] dims, FloatValues values)
    {
        var data = new InitializerData(type, dims, null, null, values);
        if (values.Count != data.ElementCount)
            throw new ArgumentException($"{values.Count} values given for a tensor of shape [{string.Join(", ", dims)}]");
        return data;
    }

    /// <summary>The float32 values behind a streamed tensor, else null.</summary>
    public FloatValues? Values => _values;

    /// <summary>
    /// This float32 tensor as float16 (values beyond ±65504 saturate): converted now if it is in memory, else as it
    /// streams to the data file.
    /// </summary>
    public InitializerData ToFloat16()
    {
        if (Type != ElementType.Float) throw new InvalidOperationException($"only float32 tensors convert to float16 (this one is {Type})");
        if (_values != null) return Streamed(ElementType.Float16, Dims, _values);
        var floats = MemoryMarshal.Cast<byte, float>(ToArray());
        var bytes = new byte[floats.Length * 2];
        HalfConversion.Convert(floats, MemoryMarshal.Cast<byte, Half>(bytes.AsSpan()));
        return FromBytes(ElementType.Float16, Dims, bytes);
    }

    /// <summary>Writes the bytes to <paramref name="stream"/>; throws if a deferred producer wrote a wrong count.</summary>
    public void WriteTo(Stream stream) => WriteTo(stream, new WriteBuffers());

    /// <summary>As <see cref="WriteTo(Stream)"/>, streamed values going through <paramref name="buffers"/> (reused across tensors).</summary>
    public void WriteTo(Stream stream, WriteBuffers buffers)
    {
        if (_bytes != null)
        {
            stream.Write(_bytes);
            return;
        }
        if (_values != null)
        {
            try { WriteValues(stream, buffers); }
            finally { _values.Release(); }
            return;
        }
        var counter = new CountingStream(stream);
        _write!(counter);
        if (counter.Count != ByteLength)
            throw new InvalidOperationException($"tensor producer wrote {counter.Count} bytes, expected {ByteLength} ({Type} [{string.Join(", ", Dims)}])");
    }

    private void WriteValues(Stream stream, WriteBuffers buffers)
    {
        if (stream is ModelWriterDataFile file)
        {
            if (Type == ElementType.Float && ByteLength >= FileCopyBytes && _values!.Stored is { } stored && stored.Length == ByteLength)
                file.CopyFrom(stored.Path, stored.Offset, stored.Length);
            else WriteValuesInPlace(file, buffers);
            return;
        }
        var values = _values!;
        int chunk = buffers.Floats.Length;
        for (long start = 0; start < ElementCount; start += chunk)
        {
            int n = (int)Math.Min(chunk, ElementCount - start);
            if (!values.TryGetSpan(start, n, out var floats))
            {
                values.Read(start, buffers.Floats.AsSpan(0, n));
                floats = buffers.Floats.AsSpan(0, n);
            }
            if (Type == ElementType.Float16)
            {
                var halves = buffers.Halves.AsSpan(0, n);
                HalfConversion.Convert(floats, halves);
                stream.Write(MemoryMarshal.AsBytes(halves));
            }
            else stream.Write(MemoryMarshal.AsBytes(floats));
        }
    }

    /// <summary>
    /// As <see cref="WriteValues"/>, producing each range straight into the data file's buffer (a transposed or merged
    /// float32 range is computed there; float16 is converted there), so the bytes are copied once less.
    /// </summary>
    private void WriteValuesInPlace(ModelWriterDataFile file, WriteBuffers buffers)
    {
        var values = _values!;
        int size = Type.Size();
        for (long start = 0; start < ElementCount;)
        {
            var free = file.FreeSpan;
            int n = (int)Math.Min(ElementCount - start, Math.Min(free.Length / size, buffers.Floats.Length));
            // tensors start aligned and buffers hold whole elements, so a buffer is either full (and flushed) or has room
            if (n == 0) throw new InvalidOperationException($"data file position {file.Position} is not aligned to {Type} elements");
            if (Type == ElementType.Float16)
            {
                if (!values.TryGetSpan(start, n, out var floats))
                {
                    values.Read(start, buffers.Floats.AsSpan(0, n));
                    floats = buffers.Floats.AsSpan(0, n);
                }
                HalfConversion.Convert(floats, MemoryMarshal.Cast<byte, Half>(free[..(2 * n)]));
            }
            else
            {
                var target = MemoryMarshal.Cast<byte, float>(free[..(4 * n)]);
                if (values.TryGetSpan(start, n, out var floats)) floats.CopyTo(target);
                else values.Read(start, target);
            }
            file.Advance(n * size);
            start += n;
        }
    }

    /// <summary>The bytes in one array (small tensors only: inline initializers, constant dedup).</summary>
    public byte[] ToArray()
    {
        if (_bytes != null) return _bytes;
        if (ByteLength > Array.MaxLength) throw new InvalidOperationException($"tensor of {ByteLength} bytes is too large for one array");
        using var ms = new MemoryStream((int)ByteLength);
        WriteTo(ms);
        return ms.ToArray();
    }

    /// <summary>Writes a span of unmanaged values in chunks (spans of more than 2 GB of bytes cannot be cast at once).</summary>
    public static void WriteChunked<T>(Stream stream, ReadOnlySpan<T> values) where T : unmanaged
    {
        int per = Math.Max(1, ChunkBytes / Marshal.SizeOf<T>());
        for (int i = 0; i < values.Length; i += per)
            stream.Write(MemoryMarshal.AsBytes(values.Slice(i, Math.Min(per, values.Length - i))));
    }

    /// <summary>Scratch arrays for streaming tensors, allocated once per model written.</summary>
    public sealed class WriteBuffers(int chunkElements = 1 << 20)
    {
        public float[] Floats { get; } = new float[chunkElements];
        public Half[] Halves { get; } = new Half[chunkElements];
    }

    /// <summary>Counts what a deferred producer writes, in place too (<see cref="IDirectWrite"/>, lent where the inner stream lends it).</summary>
    private sealed class CountingStream(Stream inner) : Stream, IDirectWrite
    {
        public Memory<byte> FreeMemory => inner is IDirectWrite direct ? direct.FreeMemory : Memory<byte>.Empty;

        public void Advance(int count)
        {
            if (inner is not IDirectWrite direct) throw new InvalidOperationException("this stream lends no buffer");
            direct.Advance(count);
            Count += count;
        }

        public long Count { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Count += count;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Count += buffer.Length;
        }

        public override void WriteByte(byte value)
        {
            inner.WriteByte(value);
            Count++;
        }
    }
}
