using System.Buffers.Binary;
using System.Text.Json;

namespace Peft.Onnx.Core.SafeTensors;

/// <summary>The parsed and validated JSON header of a safetensors file.</summary>
public sealed record SafeTensorsHeader(long HeaderLength, IReadOnlyList<TensorEntry> Entries, IReadOnlyDictionary<string, string> Metadata)
{
    public const string MetadataKey = "__metadata__";

    /// <summary>Reads the length prefix and header from the stream, checking every entry against the file size.</summary>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad(path, $"file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> prefix = stackalloc byte[8];
        stream.ReadExactly(prefix);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (n > (ulong)(fileLength - 8)) throw Bad(path, $"header length {n} runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors");
        if (n > SafeTensorsFile.MaxHeaderBytes) throw Bad(path, $"header length {n} exceeds the limit of {SafeTensorsFile.MaxHeaderBytes} bytes");
        if (n < 2) throw Bad(path, "header is empty (expected a JSON object)");
        var json = new byte[n];
        stream.ReadExactly(json);
        return Parse(json, fileLength - 8 - (long)n, path);
    }

    /// <summary>Validates the header JSON against the size of the data area that follows it.</summary>
    public static SafeTensorsHeader Parse(byte[] json, long dataLength, string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (Exception ex) when (ex is JsonException or ArgumentException)
        {
            throw Bad(path, $"header is not valid JSON ({FirstLine(ex.Message)})");
        }
        using (doc)
        {
            try { return FromDocument(doc, json.LongLength, dataLength, path); }
            // Names and strings are unescaped lazily: an invalid escape (a lone surrogate) or byte shows up here.
            catch (InvalidOperationException ex) { throw Bad(path, $"header holds invalid JSON text ({FirstLine(ex.Message)})"); }
        }
    }

    private static SafeTensorsHeader FromDocument(JsonDocument doc, long headerLength, long dataLength, string path)
    {
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header is not a JSON object");
        var entries = new List<TensorEntry>();
        var metadata = new Dictionary<string, string>();
        var seen = new HashSet<string>();
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (!seen.Add(prop.Name)) throw Bad(path, $"key '{prop.Name}' appears twice in the header");
            if (prop.Name == MetadataKey) { ReadMetadata(prop.Value, metadata, path); continue; }
            entries.Add(ReadEntry(prop.Name, prop.Value, dataLength, path));
        }
        CheckCoverage(entries, dataLength, path);
        return new SafeTensorsHeader(headerLength, entries, metadata);
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string path)
    {
        if (value.ValueKind != JsonValueKind.Object) throw Bad(path, $"'{MetadataKey}' must be an object of strings");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String) throw Bad(path, $"'{MetadataKey}.{m.Name}' must be a string");
            metadata[m.Name] = m.Value.GetString()!;
        }
    }

    private static TensorEntry ReadEntry(string name, JsonElement value, long dataLength, string path)
    {
        if (value.ValueKind != JsonValueKind.Object) throw Bad(path, $"tensor '{name}': entry must be an object with dtype, shape, data_offsets");
        if (!value.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw Bad(path, $"tensor '{name}': missing string 'dtype'");
        if (!DTypes.TryParse(dtypeEl.GetString()!, out var dtype))
            throw Bad(path, $"tensor '{name}': unknown dtype '{dtypeEl.GetString()}' (expected one of {string.Join(", ", Enum.GetNames<DType>())})");
        var shape = ReadLongArray(value, "shape", name, path, expectedLength: null);
        var offsets = ReadLongArray(value, "data_offsets", name, path, expectedLength: 2);
        long begin = offsets[0], end = offsets[1];
        if (begin > end) throw Bad(path, $"tensor '{name}': data_offsets [{begin}, {end}] are reversed");
        if (end > dataLength) throw Bad(path, $"tensor '{name}': data_offsets end {end} is past the data area ({dataLength} bytes); the file is truncated");
        long bytes = dtype.Size();
        foreach (var d in shape)
        {
            try { bytes = checked(bytes * d); }
            catch (OverflowException) { throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] is too large"); }
        }
        if (bytes != end - begin)
            throw Bad(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] x {dtype} needs {bytes} bytes but data_offsets span {end - begin}");
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static long[] ReadLongArray(JsonElement value, string key, string name, string path, int? expectedLength)
    {
        if (!value.TryGetProperty(key, out var arr) || arr.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"tensor '{name}': missing array '{key}'");
        if (expectedLength is { } n && arr.GetArrayLength() != n)
            throw Bad(path, $"tensor '{name}': '{key}' must have {n} elements");
        if (arr.GetArrayLength() > 64) throw Bad(path, $"tensor '{name}': '{key}' has {arr.GetArrayLength()} dimensions (at most 64)");
        var result = new long[arr.GetArrayLength()];
        int i = 0;
        foreach (var el in arr.EnumerateArray())
        {
            if (el.ValueKind != JsonValueKind.Number || !el.TryGetInt64(out var v) || v < 0)
                throw Bad(path, $"tensor '{name}': '{key}' must hold non-negative integers");
            result[i++] = v;
        }
        return result;
    }

    /// <summary>Tensors must tile the data area exactly: no overlaps and no gaps, as the reference library requires.</summary>
    private static void CheckCoverage(List<TensorEntry> entries, long dataLength, string path)
    {
        long cursor = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin < cursor) throw Bad(path, $"tensor '{e.Name}': bytes [{e.Begin}, {e.End}) overlap the previous tensor");
            if (e.Begin > cursor) throw Bad(path, $"gap in the data area before tensor '{e.Name}' (bytes [{cursor}, {e.Begin}) belong to no tensor)");
            cursor = e.End;
        }
        if (cursor != dataLength) throw Bad(path, $"data area is {dataLength} bytes but the tensors cover {cursor}");
    }

    private static string FirstLine(string s) => MessageText.OneLine(s.Split('\n')[0].Trim());

    private static PeftOnnxException Bad(string path, string problem) => new($"{path}: invalid safetensors: {problem}");
}
