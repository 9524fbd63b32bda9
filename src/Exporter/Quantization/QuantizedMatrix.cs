using System.Buffers;
using System.Runtime.InteropServices;
using Peft.Onnx.Exporter.Onnx;

namespace Peft.Onnx.Exporter.Quantization;

/// <summary>
/// A weight [N outputs, K inputs] (row n = output n's inputs, <paramref name="rows"/> row-major) quantized for
/// MatMulNBits as three initializers: <see cref="Codes"/> uint8 [N, blocks, blob], <see cref="Scales"/> float32
/// [N * blocks] and <see cref="ZeroPoints"/> uint8 [N * zero-point bytes] (asymmetric formats only). All three are
/// computed while the model writer streams the codes, a chunk of rows at a time, so the float weight is never held
/// whole; scales and zero points (a 1/32 or less of the float bytes) wait for their turn in memory and go after it.
/// </summary>
public sealed class QuantizedMatrix
{
    private const int ChunkElements = 1 << 20;

    private readonly FloatValues _rows;
    private readonly long _n;
    private readonly long _k;
    private float[]? _scales;
    private byte[]? _zeroPoints;
    private bool _scalesWritten;
    private bool _zeroPointsWritten;

    public QuantizedMatrix(FloatValues rows, long n, long k, QuantizationFormat format)
    {
        if (rows.Count != checked(n * k)) throw new ArgumentException($"{rows.Count} values given for a [{n}, {k}] weight");
        _rows = rows;
        _n = n;
        _k = k;
        Format = format;
    }

    public QuantizationFormat Format { get; }

    public long N => _n;

    public long K => _k;

    public InitializerData Codes => InitializerData.Deferred(ElementType.UInt8, [_n, Format.BlockCount(_k), Format.BlobBytes], WriteCodes);

    public InitializerData Scales => InitializerData.Deferred(ElementType.Float, [_n * Format.BlockCount(_k)], stream =>
    {
        EnsureQuantized();
        InitializerData.WriteChunked<float>(stream, _scales);
        _scalesWritten = true;
        DropWhenWritten();
    });

    public InitializerData ZeroPoints => InitializerData.Deferred(ElementType.UInt8, [_n * Format.ZeroPointBytes(_k)], stream =>
    {
        EnsureQuantized();
        InitializerData.WriteChunked<byte>(stream, _zeroPoints);
        _zeroPointsWritten = true;
        DropWhenWritten();
    });

    private void WriteCodes(Stream stream) => Quantize(stream);

    private void EnsureQuantized()
    {
        if (_scales == null) Quantize(null);
    }

    /// <summary>
    /// One pass over the rows: codes to <paramref name="codes"/> (when given), scales and zero points kept. Codes go
    /// straight into the data file's buffer where it lends one (<see cref="IDirectWrite"/>) and has room for whole rows;
    /// otherwise through a chunk of this pass's own.
    /// </summary>
    private void Quantize(Stream? codes)
    {
        var format = Format;
        long blocks = format.BlockCount(_k);
        int rowCodes = checked((int)(blocks * format.BlobBytes));
        int rowZeroPoints = checked((int)format.ZeroPointBytes(_k));
        var scales = new float[checked(_n * blocks)];
        var zeroPoints = new byte[checked(_n * rowZeroPoints)];
        int k = checked((int)_k);
        int chunkRows = (int)Math.Max(1, Math.Min(_n, ChunkElements / Math.Max(1, _k)));
        var direct = codes as IDirectWrite;
        float[]? input = null;   // rows that are not in memory as float32, copied once (pooled: tensor after tensor reuses it)
        byte[]? output = null;   // codes where the data file's buffer has no room for a whole row
        try
        {
            for (long first = 0; first < _n;)
            {
                var free = direct?.FreeMemory ?? Memory<byte>.Empty;
                bool inFile = free.Length >= rowCodes;
                int count = (int)Math.Min(_n - first, inFile ? Math.Min(chunkRows, free.Length / rowCodes) : chunkRows);
                Memory<byte> target = inFile ? free[..(count * rowCodes)] : (output ??= ArrayPool<byte>.Shared.Rent(chunkRows * rowCodes)).AsMemory(0, count * rowCodes);
                // rows already in memory as float32 (a mapped checkpoint, a computed array) are read in place, by the
                // worker that quantizes them (its page faults too); others are copied once into a chunk the rows share
                bool inPlace = _rows.TryGetSpan(first * _k, count * k, out _);
                if (!inPlace)
                {
                    input ??= ArrayPool<float>.Shared.Rent(chunkRows * k);
                    _rows.Read(first * _k, input.AsSpan(0, count * k));
                }
                long chunkFirst = first;
                var copied = input;
                Parallel.For(0, count, () => new RowScratch(format.BlockSize), (r, _, scratch) =>
                {
                    long row = chunkFirst + r;
                    ReadOnlySpan<float> values;
                    if (!inPlace) values = copied.AsSpan(r * k, k);
                    else if (!_rows.TryGetSpan(row * _k, k, out values))
                    {
                        // a chunk in place is in place row by row for every source there is; read the row if not
                        _rows.Read(row * _k, scratch.Row(k));
                        values = scratch.Row(k);
                    }
                    BlockQuantizer.QuantizeRow(format, values, target.Span.Slice(r * rowCodes, rowCodes),
                        scales.AsSpan(checked((int)(row * blocks)), (int)blocks), zeroPoints.AsSpan(checked((int)(row * rowZeroPoints)), rowZeroPoints), scratch.Block);
                    return scratch;
                }, _ => { });
                if (inFile) direct!.Advance(count * rowCodes);
                else codes?.Write(target.Span);
                first += count;
            }
        }
        finally
        {
            if (input != null) ArrayPool<float>.Shared.Return(input);
            if (output != null) ArrayPool<byte>.Shared.Return(output);
            _rows.Release();
        }
        _scales = scales;
        _zeroPoints = zeroPoints;
    }

    /// <summary>A worker's scratch: one block (a padded last block), and a row where one must be copied.</summary>
    private sealed class RowScratch(int blockSize)
    {
        private float[]? _row;

        public float[] Block { get; } = new float[blockSize];

        public Span<float> Row(int k) => (_row ??= new float[k]).AsSpan(0, k);
    }

    private void DropWhenWritten()
    {
        if (_scalesWritten && (_zeroPointsWritten || Format.Symmetric))
        {
            _scales = null;
            _zeroPoints = null;
        }
    }
}
