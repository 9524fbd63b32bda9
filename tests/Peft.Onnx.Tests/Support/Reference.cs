using System.Text.Json;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Tests.Support;

/// <summary>Reads a fixture case's inputs, reference tensors and meta.json.</summary>
public sealed class Reference : IDisposable
{
    public string Arch { get; }
    public SafeTensorsFile Inputs { get; }
    public JsonElement BaseMeta { get; }

    public Reference(string arch) : this(arch, Paths.Case(arch)) { }

    /// <summary>The inputs of a base that another fixture folder holds (<paramref name="archDir"/>: base_model, inputs).</summary>
    public Reference(string arch, string archDir)
    {
        Arch = arch;
        Inputs = SafeTensorsFile.Open(Path.Combine(archDir, "inputs.safetensors"));
        BaseMeta = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(archDir, "base_meta.json"))).RootElement;
    }

    public bool IsEncoderDecoder => Arch is "t5" or "mt5";

    public long[] Shape(string name) => Inputs[name].Shape;

    public static long[][] Rows(JsonElement array) =>
        array.EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToArray();

    public static JsonElement Meta(string arch, string method) => MetaAt(Paths.Case(arch, method));

    /// <summary>meta.json of the case folder <paramref name="caseDir"/>.</summary>
    public static JsonElement MetaAt(string caseDir) =>
        JsonDocument.Parse(File.ReadAllBytes(Path.Combine(caseDir, "meta.json"))).RootElement;

    public void Dispose() => Inputs.Dispose();
}
