using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Peft.Onnx.Core.SafeTensors;

/// <summary>A tensor to write: name, type, shape and its little-endian bytes.</summary>
public sealed record TensorData(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Bytes)
{
    public static TensorData FromFloat32(string name, long[] shape, float[] values) =>
        new(name, DType.F32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    public static TensorData FromInt64(string name, long[] shape, long[] values) =>
        new(name, DType.I64, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
}

/// <summary>
/// Writes safetensors in the layout of the Python library (tensors ordered by dtype, then name; header
/// padded with spaces to 8 bytes), atomically: a temp file beside the target, then a rename.
/// </summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderByDescending(t => Rank(t.DType)).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();
        foreach (var t in ordered)
        {
            long expected = t.Shape.Aggregate((long)t.DType.Size(), (a, b) => a * b);
            if (expected != t.Bytes.Length)
                throw new PeftOnnxException($"{path}: tensor '{t.Name}' has {t.Bytes.Length} bytes but shape [{string.Join(", ", t.Shape)}] x {t.DType} needs {expected}");
        }
        if (ordered.Select(t => t.Name).Distinct().Count() != ordered.Count)
            throw new PeftOnnxException($"{path}: two tensors share a name");
        var header = BuildHeader(ordered, metadata);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            stream.Write(prefix);
            stream.Write(header);
            foreach (var t in ordered) stream.Write(t.Bytes.Span);
        });
    }

    private static byte[] BuildHeader(List<TensorData> ordered, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in ordered)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType.ToString());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Bytes.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Bytes.Length;
            }
            w.WriteEndObject();
        }
        var json = buffer.ToArray();
        int padded = (json.Length + 7) / 8 * 8;
        var header = new byte[padded];
        json.CopyTo(header, 0);
        header.AsSpan(json.Length).Fill((byte)' ');
        return header;
    }

    /// <summary>The order of the reference library's Dtype enum, which it sorts by (descending) for alignment.</summary>
    private static int Rank(DType t) => t switch
    {
        DType.BOOL => 0, DType.U8 => 1, DType.I8 => 2, DType.I16 => 5, DType.F16 => 7, DType.BF16 => 8,
        DType.I32 => 9, DType.F32 => 11, DType.F64 => 12, DType.I64 => 13, _ => 0,
    };
}
