using Peft.Onnx.Exporter.Onnx.Proto;

namespace Peft.Onnx.Tests.Quantization;

/// <summary>An exported graph's nodes and the bytes of its initializers (inline or in its external data file).</summary>
public sealed class ExportedTensors
{
    public ExportedTensors(string modelPath)
    {
        Model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(modelPath));
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var t in Model.Graph.Initializer)
        {
            if (t.ExternalData.Count == 0) Bytes[t.Name] = t.RawData.ToByteArray();
            else
            {
                int offset = int.Parse(t.ExternalData.Single(e => e.Key == "offset").Value);
                int length = int.Parse(t.ExternalData.Single(e => e.Key == "length").Value);
                var location = t.ExternalData.Single(e => e.Key == "location").Value;
                if (!files.TryGetValue(location, out var data))
                    files[location] = data = File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(modelPath)!, location));
                Bytes[t.Name] = data.AsSpan(offset, length).ToArray();
            }
            Dims[t.Name] = t.Dims.ToArray();
        }
    }

    public ModelProto Model { get; }

    public Dictionary<string, byte[]> Bytes { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, long[]> Dims { get; } = new(StringComparer.Ordinal);

    public float[] Floats(string name) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Bytes[name]).ToArray();

    /// <summary>The graph files of an export folder: model.onnx, or the encoder and decoder of a seq2seq export.</summary>
    public static IEnumerable<ExportedTensors> Folder(string dir) =>
        new[] { "model.onnx", "encoder_model.onnx", "decoder_model.onnx" }.Select(f => Path.Combine(dir, f)).Where(File.Exists).Select(p => new ExportedTensors(p));
}
