using System.Text.Json.Nodes;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Tests.Support;

/// <summary>Bad adapters for the refusal tests: a copy of a current-PEFT fixture adapter with config keys and tensors edited.</summary>
internal static class EditedAdapter
{
    /// <summary>
    /// Copies <paramref name="method"/>'s adapter of <paramref name="arch"/> with <paramref name="keys"/> set (a null
    /// value removes the key), <paramref name="dropped"/> tensors left out and the <paramref name="reshaped"/> tensor
    /// given another shape (zeros); returns the copy's folder.
    /// </summary>
    public static string Write(string arch, string method, IReadOnlyDictionary<string, JsonNode?> keys,
        (string Name, long[] Shape)? reshaped = null, params string[] dropped)
    {
        var source = Paths.CurrentCase(arch, Path.Combine(method, "adapter"));
        var dir = Paths.TempDir($"peft-onnx-bad-{method}");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        foreach (var (key, value) in keys)
        {
            if (value is null) config.Remove(key);
            else config[key] = value.DeepClone();
        }
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var weights = SafeTensorsFile.Open(Path.Combine(source, AdapterFormat.WeightsFile));
        TensorData Copy(string n) => reshaped is { } r && r.Name == n
            ? TensorData.FromFloat32(n, r.Shape, new float[r.Shape.Aggregate(1L, (a, b) => a * b)])
            : TensorData.FromFloat32(n, weights[n].Shape, weights.ReadFloat32(n));
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), weights.Names.Where(n => !dropped.Contains(n)).Select(Copy).ToList(), AdapterFormat.WeightsMetadata);
        return dir;
    }
}
