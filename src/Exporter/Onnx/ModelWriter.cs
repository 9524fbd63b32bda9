using System.Globalization;
using Google.Protobuf;
using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Exporter.Onnx;

/// <summary>How <see cref="ModelWriter"/> lays out a model.</summary>
public sealed record ModelWriteOptions
{
    /// <summary>Default-domain opset.</summary>
    public long Opset { get; init; } = 17;

    /// <summary>com.microsoft opset, imported only when a node uses that domain.</summary>
    public long MicrosoftOpset { get; init; } = 1;

    public long IrVersion { get; init; } = 8;

    /// <summary>
    /// Initializers of fewer bytes than this stay inline in model.onnx; the rest go to the external data file.
    /// 0 puts every initializer in the data file.
    /// </summary>
    public long InlineThreshold { get; init; } = 1024;

    /// <summary>External tensors of at least this many bytes start at a multiple of <see cref="PageAlignment"/> (mmap-friendly).</summary>
    public long PageAlignThreshold { get; init; } = 4096;

    public long PageAlignment { get; init; } = 4096;

    /// <summary>Alignment of the other external tensors.</summary>
    public long MinAlignment { get; init; } = 64;

    /// <summary>Name of the data file, next to model.onnx (default: model file name + ".data").</summary>
    public string? DataFileName { get; init; }

    public string ProducerName { get; init; } = "peft-onnx";

    /// <summary>A fixed string (not the assembly's build metadata) so outputs stay byte-identical.</summary>
    public string ProducerVersion { get; init; } = "0.1";

    public string? DocString { get; init; }

    /// <summary>Extra metadata_props (written in key order).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>
    /// fsync model and data before returning (default). An export turns it off and calls
    /// <see cref="ModelWriter.FlushToDisk"/> while its ONNX Runtime check runs, so the disk writes (started as each
    /// buffer is written) overlap the check instead of preceding it.
    /// </summary>
    public bool FlushToDisk { get; init; } = true;

    /// <summary>
    /// Initializers already stored in another model's data file in this folder (<see cref="ModelWriteResult.External"/>):
    /// each one of the same name, type and shape is written as a reference to those bytes; every other initializer goes
    /// inline, and no data file is written. Two graphs over the same weights so share one copy of them.
    /// </summary>
    public IReadOnlyDictionary<string, ExternalTensor>? SharedData { get; init; }

    /// <summary>Initializers written to the data file whatever their size (readers that find them by offset need every one there).</summary>
    public IReadOnlySet<string>? AlwaysExternal { get; init; }
}

/// <summary>Where an initializer's bytes are in an external data file (ONNX external_data: location, offset, length).</summary>
public sealed record ExternalTensor(string Location, long Offset, long Length, int DataType, long[] Dims);

/// <summary>What <see cref="ModelWriter.Write"/> produced.</summary>
public sealed record ModelWriteResult(string ModelPath, string? DataPath, long ModelBytes, long DataBytes, int InlineTensors, int ExternalTensors)
{
    /// <summary>The initializers this write stored in (or referenced from) a data file, by name.</summary>
    public IReadOnlyDictionary<string, ExternalTensor> External { get; init; } = new Dictionary<string, ExternalTensor>();
}

/// <summary>
/// Writes a <see cref="GraphBuilder"/> as model.onnx with its large initializers in one external data file.
/// Initializer bytes are streamed to the data file in graph order (deferred tensors are produced one at a
/// time), so the model may exceed 2 GB while the protobuf stays small. The output depends only on the graph
/// and the options: no timestamps, no random names.
/// </summary>
public static class ModelWriter
{
    /// <summary>Protobuf cannot serialize a message of 2 GB or more; refuse well before.</summary>
    public const long MaxProtoBytes = int.MaxValue - (16 << 20);

    public static ModelWriteResult Write(GraphBuilder graph, string modelPath, ModelWriteOptions? options = null)
    {
        options ??= new ModelWriteOptions();
        graph.Validate();
        modelPath = Path.GetFullPath(modelPath);
        var dir = Path.GetDirectoryName(modelPath)!;
        Directory.CreateDirectory(dir);
        var dataName = options.DataFileName ?? Path.GetFileName(modelPath) + ".data";
        var dataPath = Path.Combine(dir, dataName);

        var g = new GraphProto { Name = graph.Name };
        g.Node.AddRange(graph.Nodes);
        g.Input.AddRange(graph.Inputs);
        g.Output.AddRange(graph.Outputs);

        int inline = 0, external = 0;
        long dataBytes = 0;
        var stored = new Dictionary<string, ExternalTensor>(StringComparer.Ordinal);
        ModelWriterDataFile? data = null;
        var buffers = new InitializerData.WriteBuffers();
        try
        {
            foreach (var (name, tensor) in graph.Initializers)
            {
                var proto = new TensorProto { Name = name, DataType = (int)tensor.Type };
                proto.Dims.AddRange(tensor.Dims);
                if (options.SharedData != null && options.SharedData.TryGetValue(name, out var shared)
                    && shared.DataType == (int)tensor.Type && shared.Dims.SequenceEqual(tensor.Dims) && shared.Length == tensor.ByteLength)
                {
                    proto.DataLocation = TensorProto.Types.DataLocation.External;
                    AddLocation(proto, shared.Location, shared.Offset, shared.Length);
                    stored[name] = shared;
                    external++;
                }
                else if ((tensor.ByteLength < options.InlineThreshold && options.AlwaysExternal?.Contains(name) != true) || options.SharedData != null)
                {
                    proto.RawData = ByteString.CopyFrom(tensor.ToArray());
                    inline++;
                }
                else
                {
                    data ??= ModelWriterDataFile.Create(dataPath);
                    var align = tensor.ByteLength >= options.PageAlignThreshold ? options.PageAlignment : options.MinAlignment;
                    Pad(data, align);
                    long offset = data.Position;
                    tensor.WriteTo(data, buffers);
                    if (data.Position - offset != tensor.ByteLength)
                        throw new InvalidOperationException($"initializer '{name}': wrote {data.Position - offset} bytes, expected {tensor.ByteLength}");
                    proto.DataLocation = TensorProto.Types.DataLocation.External;
                    AddLocation(proto, dataName, offset, tensor.ByteLength);
                    stored[name] = new ExternalTensor(dataName, offset, tensor.ByteLength, (int)tensor.Type, tensor.Dims.ToArray());
                    external++;
                }
                g.Initializer.Add(proto);
            }
            if (data != null)
            {
                dataBytes = data.Length;
                data.Finish();
            }
        }
        finally
        {
            data?.Dispose();
        }
        if (data != null && options.FlushToDisk) Sync(dataPath);
        if (data == null && options.SharedData == null && File.Exists(dataPath)) File.Delete(dataPath); // a stale file from an earlier write

        var model = new ModelProto
        {
            IrVersion = options.IrVersion,
            ProducerName = options.ProducerName,
            ProducerVersion = options.ProducerVersion,
            Graph = g,
        };
        if (options.DocString != null) model.DocString = options.DocString;
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
        foreach (var domain in graph.Domains)
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = domain == "com.microsoft" ? options.MicrosoftOpset : 1 });
        if (options.Metadata != null)
            foreach (var (k, v) in options.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal)) model.MetadataProps.Add(Entry(k, v));

        long size = model.CalculateSize();
        if (size > MaxProtoBytes)
            throw new InvalidOperationException($"{modelPath}: the graph protobuf would be {size} bytes (limit 2 GB); lower InlineThreshold so more initializers go to the data file");
        using (var stream = new FileStream(modelPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            model.WriteTo(stream);
            stream.Flush(flushToDisk: options.FlushToDisk);
        }
        return new ModelWriteResult(modelPath, data != null ? dataPath : null, size, dataBytes, inline, external) { External = stored };
    }

    /// <summary>fsyncs the files of a model written with <see cref="ModelWriteOptions.FlushToDisk"/> off.</summary>
    public static void FlushToDisk(ModelWriteResult written)
    {
        if (written.DataPath != null) Sync(written.DataPath);
        Sync(written.ModelPath);
    }

    private static void Sync(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        f.Flush(flushToDisk: true);
    }

    private static void AddLocation(TensorProto proto, string location, long offset, long length)
    {
        proto.ExternalData.Add(Entry("location", location));
        proto.ExternalData.Add(Entry("offset", offset.ToString(CultureInfo.InvariantCulture)));
        proto.ExternalData.Add(Entry("length", length.ToString(CultureInfo.InvariantCulture)));
    }

    private static StringStringEntryProto Entry(string key, string value) => new() { Key = key, Value = value };

    private static void Pad(Stream s, long alignment)
    {
        long rem = s.Position % alignment;
        if (rem == 0) return;
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        for (long left = alignment - rem; left > 0;)
        {
            int n = (int)Math.Min(left, zeros.Length);
            s.Write(zeros[..n]);
            left -= n;
        }
    }
}
