using System.Text.Json.Nodes;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// PEFT folders derived from the fixtures for run-time adapter tests: the same tensors written under another config
/// (a larger rank, another prefix length), or with one tensor's shape changed (an adapter made for another base).
/// </summary>
public static class RuntimeAdapterFolders
{
    /// <summary>
    /// The fixture LoRA adapter <paramref name="source"/> at twice its rank: lora_A [2r, in] = [A; -0.7 A],
    /// lora_B [out, 2r] = [B, 0.3 B], lora_alpha doubled; a real adapter whose rank exceeds the others'.
    /// </summary>
    public static string DoubledRank(string source)
    {
        var dir = Fresh();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        int r = config["r"]!.GetValue<int>();
        config["r"] = 2 * r;
        config["lora_alpha"] = 2 * config["lora_alpha"]!.GetValue<double>();
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var file = SafeTensorsFile.Open(AdapterFormat.WeightsPath(source));
        var tensors = new List<TensorData>();
        foreach (var name in file.Names)
        {
            var shape = file[name].Shape;
            var v = file.ReadFloat32(name);
            if (name.Contains(".lora_A.", StringComparison.Ordinal))
                tensors.Add(TensorData.FromFloat32(name, [2 * shape[0], shape[1]], [.. v, .. v.Select(x => -0.7f * x)]));
            else if (name.Contains(".lora_B.", StringComparison.Ordinal))
            {
                long outF = shape[0];
                var wide = new float[outF * 2 * r];
                for (long o = 0; o < outF; o++)
                    for (int j = 0; j < r; j++)
                    {
                        wide[o * 2 * r + j] = v[o * r + j];
                        wide[o * 2 * r + r + j] = 0.3f * v[o * r + j];
                    }
                tensors.Add(TensorData.FromFloat32(name, [outF, 2 * r], wide));
            }
            else tensors.Add(TensorData.FromFloat32(name, shape, v));
        }
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), tensors);
        return dir;
    }

    /// <summary>The adapter with its first lora_A tensor 8 inputs wider: made for a base of another hidden size.</summary>
    public static string OtherBase(string source, out string tensor, out long[] shape)
    {
        var dir = Fresh();
        File.Copy(Path.Combine(source, AdapterFormat.ConfigFile), Path.Combine(dir, AdapterFormat.ConfigFile));
        using var file = SafeTensorsFile.Open(AdapterFormat.WeightsPath(source));
        tensor = file.Names.Where(n => n.Contains(".lora_A.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).First();
        var tensors = new List<TensorData>();
        shape = [];
        foreach (var name in file.Names)
        {
            var s = file[name].Shape;
            if (name == tensor)
            {
                shape = [s[0], s[1] + 8];
                tensors.Add(TensorData.FromFloat32(name, shape, new float[s[0] * (s[1] + 8)]));
            }
            else tensors.Add(TensorData.FromFloat32(name, s, file.ReadFloat32(name)));
        }
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), tensors);
        return dir;
    }

    /// <summary>
    /// The fixture prefix-tuning adapter <paramref name="source"/> (decoder-only: one row per virtual token) with
    /// <paramref name="nv"/> virtual tokens: its first nv rows, or past its own count, its rows again scaled by -0.5
    /// (a real adapter longer than the fixtures').
    /// </summary>
    public static string PrefixOfLength(string source, int nv)
    {
        var dir = Fresh();
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, AdapterFormat.ConfigFile)))!.AsObject();
        int original = config["num_virtual_tokens"]!.GetValue<int>();
        config["num_virtual_tokens"] = nv;
        File.WriteAllText(Path.Combine(dir, AdapterFormat.ConfigFile), config.ToJsonString());
        using var file = SafeTensorsFile.Open(AdapterFormat.WeightsPath(source));
        int width = (int)file[AdapterFormat.PromptEmbeddings].Shape[1];
        var all = file.ReadFloat32(AdapterFormat.PromptEmbeddings);
        var rows = Enumerable.Range(0, nv).SelectMany(t => all.AsSpan(t % original * width, width).ToArray().Select(v => t < original ? v : -0.5f * v)).ToArray();
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, [nv, width], rows)]);
        return dir;
    }

    /// <summary>The prefix-tuning adapter with prompt_embeddings 8 values wider per token: made for a base of another size.</summary>
    public static string PrefixForOtherBase(string source, out long[] shape, out long[] expected)
    {
        var dir = Fresh();
        File.Copy(Path.Combine(source, AdapterFormat.ConfigFile), Path.Combine(dir, AdapterFormat.ConfigFile));
        using var file = SafeTensorsFile.Open(AdapterFormat.WeightsPath(source));
        expected = file[AdapterFormat.PromptEmbeddings].Shape.ToArray();
        shape = [expected[0], expected[1] + 8];
        SafeTensorsWriter.Write(Path.Combine(dir, AdapterFormat.WeightsFile), [TensorData.FromFloat32(AdapterFormat.PromptEmbeddings, shape, new float[shape[0] * shape[1]])]);
        return dir;
    }

    private static string Fresh()
    {
        var dir = TempExports.FreshPath();
        Directory.CreateDirectory(dir);
        return dir;
    }
}
