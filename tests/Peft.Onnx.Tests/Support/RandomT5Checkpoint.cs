using System.Text.Json.Nodes;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Tests.Support;

/// <summary>A T5 checkpoint of a given config.json with seeded random weights, for shapes no fixture has.</summary>
public static class RandomT5Checkpoint
{
    /// <summary>config.json + model.safetensors with N(0, 0.3) weights (relative bias tables N(0, 1)) in a fresh temp folder.</summary>
    public static string Write(JsonObject config, int seed)
    {
        var dir = Paths.TempDir("peft-onnx-random-t5");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var arch = (T5Architecture)Architecture.For(ModelConfig.Load(dir));
        var rng = new Random(seed);
        var tensors = arch.Parameters.Select(p =>
        {
            var values = new float[p.ElementCount];
            var std = p.Name.EndsWith("layer_norm.weight") ? 0.2 : p.Name.Contains("relative_attention_bias") ? 1.0 : 0.3;
            for (int i = 0; i < values.Length; i++)
                values[i] = (float)((p.Name.EndsWith("layer_norm.weight") ? 1.0 : 0.0) + std * Gaussian(rng));
            return TensorData.FromFloat32(p.Name, p.Shape, values);
        }).ToList();
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);
        return dir;
    }

    private static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
