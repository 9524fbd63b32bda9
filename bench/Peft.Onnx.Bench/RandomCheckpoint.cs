using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Bench;

/// <summary>
/// Writes a checkpoint with random weights (config.json + model.safetensors in Hugging Face's names), streamed in
/// chunks so a 2.2 GB bloomz-560m-sized file needs little memory.
/// </summary>
public static class RandomCheckpoint
{
    /// <summary>bloomz-560m's config with the given sizes replaced (null: keep).</summary>
    public static JsonObject BloomConfig(string realConfigPath, int? hidden = null, int? layers = null, int? heads = null, int? vocab = null)
    {
        var config = JsonNode.Parse(File.ReadAllText(realConfigPath))!.AsObject();
        if (hidden is { } h) config["hidden_size"] = h;
        if (layers is { } l) config["n_layer"] = l;
        if (heads is { } n) config["n_head"] = n;
        if (vocab is { } v) config["vocab_size"] = v;
        config["architectures"] = new JsonArray("BloomForCausalLM");
        config["torch_dtype"] = "float32";
        return config;
    }

    /// <summary>
    /// Any supported family: config.json as given, and every tensor of the state dict its architecture names
    /// (<see cref="Architecture.Parameters"/>); norm weights (1-D ".weight") are ones. Returns the safetensors size in bytes.
    /// </summary>
    public static long WriteAny(string dir, JsonObject config)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var architecture = Architecture.For(ModelConfig.Load(dir));
        var tensors = architecture.Parameters.Select(p => (p.Name, p.Shape, p.Shape.Length == 1 && p.Name.EndsWith(".weight", StringComparison.Ordinal))).ToList();
        return WriteSafetensors(Path.Combine(dir, CheckpointTensors.SingleFile), tensors);
    }

    private static long WriteSafetensors(string path, List<(string Name, long[] Shape, bool Norm)> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, shape, _) in tensors)
        {
            long bytes = shape.Aggregate(1L, (a, b) => a * b) * 4;
            header[name] = new JsonObject { ["dtype"] = "F32", ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()), ["data_offsets"] = new JsonArray(offset, offset + bytes) };
            offset += bytes;
        }
        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (headerBytes.Length + 7) / 8 * 8;
        using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            stream.Write(BitConverter.GetBytes((ulong)padded));
            stream.Write(headerBytes);
            for (int i = headerBytes.Length; i < padded; i++) stream.WriteByte((byte)' ');
            var buffer = new float[1 << 18];
            uint state = 0x9E3779B9;
            foreach (var (_, shape, norm) in tensors)
            {
                long count = shape.Aggregate(1L, (a, b) => a * b);
                while (count > 0)
                {
                    int n = (int)Math.Min(buffer.Length, count);
                    for (int i = 0; i < n; i++)
                    {
                        state ^= state << 13; state ^= state >> 17; state ^= state << 5;
                        buffer[i] = norm ? 1f : ((state & 0xFFFF) / 65535f - 0.5f) * 0.04f;
                    }
                    stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
                    count -= n;
                }
            }
            // on disk before anything is timed: its write-back would otherwise run under the copies and exports measured next
            stream.Flush(flushToDisk: true);
        }
        return new FileInfo(path).Length;
    }

    /// <summary>BLOOM's four linear modules per block (LoRA on all of them: every block weight is merged).</summary>
    public static readonly string[] BloomLinears = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"];

    /// <summary>
    /// Writes a PEFT LoRA adapter (<see cref="AdapterFormat"/>) for a BLOOM
    /// <paramref name="config"/>: rank <paramref name="r"/> on every <see cref="BloomLinears"/> module of every block,
    /// random A and B (B non-zero, so the merge changes every targeted weight; <paramref name="seed"/> picks the values).
    /// <paramref name="zeroB"/>: B all zeros (a branch that adds nothing). Returns the safetensors size in bytes.
    /// </summary>
    public static long WriteBloomLora(string dir, JsonObject config, int r = 8, int alpha = 16, uint seed = 0x2545F491, bool zeroB = false)
    {
        Directory.CreateDirectory(dir);
        // The targeted modules and their sizes as the family describes them, not a second list of BLOOM's names.
        var architecture = Architecture.For(ModelConfig.Parse(Encoding.UTF8.GetBytes(config.ToJsonString()), "config.json"));
        var targets = architecture.Linears.Where(l => BloomLinears.Contains(l.Path[(l.Path.LastIndexOf('.') + 1)..])).ToList();
        new LoraConfig
        {
            TaskType = AdapterConfig.CausalLm, R = r, LoraAlpha = alpha, TargetModules = TargetModules.FromNames(BloomLinears),
            InferenceMode = true, BaseModelNameOrPath = "random-bloom",
        }.Save(dir);
        uint state = seed == 0 ? 0x2545F491 : seed; // xorshift stays at zero from zero
        float[] Random(long count)
        {
            var values = new float[count];
            for (long i = 0; i < count; i++)
            {
                state ^= state << 13; state ^= state >> 17; state ^= state << 5;
                values[i] = ((state & 0xFFFF) / 65535f - 0.5f) * 0.02f;
            }
            return values;
        }
        var tensors = new List<TensorData>();
        foreach (var linear in targets)
        {
            tensors.Add(TensorData.FromFloat32(AdapterFormat.LoraAKey(linear.Path), [r, linear.InFeatures], Random(r * linear.InFeatures)));
            tensors.Add(TensorData.FromFloat32(AdapterFormat.LoraBKey(linear.Path), [linear.OutFeatures, r], zeroB ? new float[linear.OutFeatures * r] : Random(linear.OutFeatures * r)));
        }
        var weights = Path.Combine(dir, AdapterFormat.WeightsFile);
        SafeTensorsWriter.Write(weights, tensors, AdapterFormat.WeightsMetadata);
        return new FileInfo(weights).Length;
    }
}
