using System.Buffers.Binary;
using System.Text;

namespace Peft.Onnx.Exporter.GenAiAdapters;

/// <summary>
/// The part of the FlatBuffers binary layout an adapter file needs, written front to back: a root offset and file
/// identifier, tables (a vtable of 16-bit field offsets right before each table, the table's signed offset back to
/// it), strings, and vectors of scalars or of table offsets. Every offset points forward, so a table is written before
/// the objects it refers to and its offset fields are patched once they are placed. Little-endian throughout.
/// </summary>
internal sealed class FlatBufferWriter
{
    private byte[] _buffer = new byte[1024];
    private int _length;

    public int Length => _length;

    /// <summary>Root offset (patched by <see cref="SetRoot"/>) and the 4-byte file identifier.</summary>
    public FlatBufferWriter(string fileIdentifier)
    {
        if (fileIdentifier.Length != 4) throw new ArgumentException("a file identifier has 4 characters", nameof(fileIdentifier));
        Reserve(4);
        Encoding.ASCII.GetBytes(fileIdentifier).CopyTo(Grow(4));
    }

    public void SetRoot(int table) => BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(0), (uint)table);

    /// <summary>
    /// A table of <paramref name="fieldSizes"/> (4 or 8 bytes each, in field order; 0 = absent): writes its vtable and
    /// returns the table's position; the fields are at <see cref="FieldPosition"/> and start zeroed.
    /// </summary>
    public int BeginTable(params int[] fieldSizes)
    {
        int vtableBytes = 4 + 2 * fieldSizes.Length;
        int inline = 4 + fieldSizes.Sum();
        // the table starts 4-aligned right after its vtable, and 8-byte fields must land 8-aligned
        bool hasWide = fieldSizes.Any(s => s == 8);
        Align(2);
        while ((_length + vtableBytes) % (hasWide ? 8 : 4) != 0) Grow(2);
        int vtable = _length;
        var v = Grow(vtableBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(v, (ushort)vtableBytes);
        BinaryPrimitives.WriteUInt16LittleEndian(v[2..], (ushort)inline);
        int offset = 4;
        for (int i = 0; i < fieldSizes.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(v[(4 + 2 * i)..], (ushort)(fieldSizes[i] == 0 ? 0 : offset));
            offset += fieldSizes[i];
        }
        int table = _length;
        BinaryPrimitives.WriteInt32LittleEndian(Grow(inline), table - vtable);
        return table;
    }

    /// <summary>Where field <paramref name="index"/> of a table begun with <paramref name="fieldSizes"/> sits.</summary>
    public static int FieldPosition(int table, int[] fieldSizes, int index) => table + 4 + fieldSizes.Take(index).Sum();

    public void PutInt32(int position, int value) => BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(position), value);

    /// <summary>Points the offset field at <paramref name="field"/> to the object at <paramref name="target"/> (which follows it).</summary>
    public void PutOffset(int field, int target)
    {
        if (target <= field) throw new InvalidOperationException("flatbuffer offsets point forward");
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(field), (uint)(target - field));
    }

    /// <summary>A string: length, UTF-8 bytes, a terminating zero. Returns its position.</summary>
    public int String(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Align(4);
        int at = _length;
        BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), (uint)bytes.Length);
        bytes.CopyTo(Grow(bytes.Length));
        Grow(1)[0] = 0;
        return at;
    }

    /// <summary>A vector of <paramref name="count"/> elements of <paramref name="elementSize"/> bytes whose first element is <paramref name="alignment"/>-aligned; returns (vector position, first element position).</summary>
    public (int Vector, int Data) Vector(int count, int elementSize, int alignment)
    {
        Align(4);
        while ((_length + 4) % alignment != 0) Grow(4);
        int at = _length;
        BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), (uint)count);
        int data = _length;
        Grow(checked(count * elementSize));
        return (at, data);
    }

    public Span<byte> At(int position, int length) => _buffer.AsSpan(position, length);

    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    private void Align(int alignment)
    {
        while (_length % alignment != 0) Grow(1);
    }

    private void Reserve(int bytes) => Grow(bytes);

    private Span<byte> Grow(int bytes)
    {
        if (_length + bytes > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(checked(_length + bytes), checked(_buffer.Length * 2)));
        var span = _buffer.AsSpan(_length, bytes);
        span.Clear();
        _length += bytes;
        return span;
    }
}
