using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Peft.Onnx.Core;

namespace Peft.Onnx.Exporter.GenAiAdapters;

/// <summary>
/// ONNX Runtime's adapter file (<c>.onnx_adapter</c>, what ORT GenAI's Adapters.LoadAdapter reads): a FlatBuffer with
/// file identifier "TORT" whose root table Adapter holds format_version (1), adapter_version, model_version and a
/// vector of Parameter tables, each a name, int64 dims, a TensorDataType (FLOAT = 1, ONNX's numbering) and the raw
/// little-endian bytes, 8-aligned. At run time every parameter is fed as the graph input of its name.
/// </summary>
public static class OnnxAdapterFile
{
    public const string Extension = ".onnx_adapter";
    public const string FileIdentifier = "TORT";
    public const int FormatVersion = 1;

    /// <summary>TensorDataType of float32.</summary>
    public const int Float = 1;

    // Adapter: format_version, adapter_version, model_version, parameters; Parameter: name, dims, data_type, raw_data.
    private static readonly int[] AdapterFields = [4, 4, 4, 4];
    private static readonly int[] ParameterFields = [4, 4, 4, 4];

    /// <summary>Writes <paramref name="parameters"/> to <paramref name="path"/> (replaced atomically); returns its size in bytes.</summary>
    public static long Write(string path, IReadOnlyList<OnnxAdapterParameter> parameters, int adapterVersion = 1, int modelVersion = 1)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in parameters)
        {
            if (string.IsNullOrEmpty(p.Name)) throw new PeftOnnxException($"{path}: an adapter parameter needs a name");
            if (!seen.Add(p.Name)) throw new PeftOnnxException($"{path}: two adapter parameters are named '{p.Name}'");
            if (p.ElementCount != p.Values.Length)
                throw new PeftOnnxException($"{path}: parameter '{p.Name}' has shape [{string.Join(", ", p.Dims)}] but {p.Values.Length} values");
        }
        var w = new FlatBufferWriter(FileIdentifier);
        int root = w.BeginTable(AdapterFields);
        w.SetRoot(root);
        w.PutInt32(FlatBufferWriter.FieldPosition(root, AdapterFields, 0), FormatVersion);
        w.PutInt32(FlatBufferWriter.FieldPosition(root, AdapterFields, 1), adapterVersion);
        w.PutInt32(FlatBufferWriter.FieldPosition(root, AdapterFields, 2), modelVersion);
        var (list, items) = w.Vector(parameters.Count, 4, 4);
        w.PutOffset(FlatBufferWriter.FieldPosition(root, AdapterFields, 3), list);
        for (int i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            int table = w.BeginTable(ParameterFields);
            w.PutOffset(items + 4 * i, table);
            w.PutOffset(FlatBufferWriter.FieldPosition(table, ParameterFields, 0), w.String(p.Name));
            var (dims, dimsData) = w.Vector(p.Dims.Length, 8, 8);
            for (int d = 0; d < p.Dims.Length; d++) BinaryPrimitives.WriteInt64LittleEndian(w.At(dimsData + 8 * d, 8), p.Dims[d]);
            w.PutOffset(FlatBufferWriter.FieldPosition(table, ParameterFields, 1), dims);
            w.PutInt32(FlatBufferWriter.FieldPosition(table, ParameterFields, 2), Float);
            var bytes = MemoryMarshal.AsBytes(p.Values.AsSpan());
            var (raw, rawData) = w.Vector(bytes.Length, 1, 8);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("adapter files are little-endian");
            bytes.CopyTo(w.At(rawData, bytes.Length));
            w.PutOffset(FlatBufferWriter.FieldPosition(table, ParameterFields, 3), raw);
        }
        var full = Path.GetFullPath(path);
        var staging = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        File.WriteAllBytes(staging, w.Written.ToArray());
        File.Move(staging, full, overwrite: true);
        return w.Length;
    }
}
