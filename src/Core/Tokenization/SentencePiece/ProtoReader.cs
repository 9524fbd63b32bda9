namespace Peft.Onnx.Core.Tokenization;

/// <summary>
/// Reads the protobuf wire format, just enough to walk sentencepiece's <c>ModelProto</c> without a generated
/// class (Microsoft.ML.Tokenizers keeps its own copy internal). Any overrun throws <see cref="InvalidDataException"/>,
/// so a truncated file is reported instead of being half-read.
/// </summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    public const int Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5;

    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    public readonly bool AtEnd => _pos >= _data.Length;

    public (int Field, int Wire) ReadTag()
    {
        ulong tag = ReadVarint();
        int field = (int)(tag >> 3);
        if (field <= 0) throw new InvalidDataException($"invalid protobuf field number at byte {_pos}");
        return (field, (int)(tag & 7));
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length) throw Truncated();
            byte b = _data[_pos++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw new InvalidDataException($"protobuf varint longer than 10 bytes at byte {_pos}");
    }

    /// <summary>An <c>int32</c> field: negative values are written as 10-byte varints and come back truncated.</summary>
    public int ReadInt32() => unchecked((int)ReadVarint());

    public float ReadFloat()
    {
        if (_pos + 4 > _data.Length) throw Truncated();
        float value = BitConverter.ToSingle(_data.Slice(_pos, 4));
        _pos += 4;
        return value;
    }

    public ReadOnlySpan<byte> ReadBytes()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_data.Length - _pos)) throw Truncated();
        var bytes = _data.Slice(_pos, (int)length);
        _pos += (int)length;
        return bytes;
    }

    public string ReadString() => System.Text.Encoding.UTF8.GetString(ReadBytes());

    public void Skip(int wire)
    {
        switch (wire)
        {
            case Varint: ReadVarint(); break;
            case Fixed64: Advance(8); break;
            case LengthDelimited: ReadBytes(); break;
            case Fixed32: Advance(4); break;
            default: throw new InvalidDataException($"unsupported protobuf wire type {wire} at byte {_pos}");
        }
    }

    private void Advance(int count)
    {
        if (_pos + count > _data.Length) throw Truncated();
        _pos += count;
    }

    private readonly InvalidDataException Truncated() => new($"truncated protobuf data at byte {_pos} of {_data.Length}");
}
