using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>PEFT's on-disk adapter format: adapter_config.json + adapter_model.safetensors (metadata format=pt).</summary>
public static class AdapterFiles
{
    public const string WeightsFile = "adapter_model.safetensors";

    public static void Save(ITuner tuner, string dir)
    {
        Directory.CreateDirectory(dir);
        var state = tuner.AdapterStateDict();
        try
        {
            var tensors = state.Select(kv => TensorData.FromFloat32(kv.Key, kv.Value.shape, kv.Value.to(float32).cpu().contiguous().data<float>().ToArray()));
            SafeTensorsWriter.Write(Path.Combine(dir, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
        (tuner.Config with { InferenceMode = true }).Save(dir);
    }

    public static void LoadInto(ITuner tuner, string dir)
    {
        var path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path))
        {
            if (File.Exists(Path.Combine(dir, "adapter_model.bin")))
                throw new PeftOnnxException($"{Path.Combine(dir, "adapter_model.bin")}: pickle adapters are never loaded (they can run code); re-save it with safe_serialization=True to get {WeightsFile}");
            throw new PeftOnnxException($"{path}: file not found (expected PEFT adapter weights)");
        }
        using var file = SafeTensorsFile.Open(path);
        var state = new Dictionary<string, Tensor>();
        try
        {
            foreach (var name in file.Names) state[name] = ParameterStore.ReadTensor(file, name);
            tuner.LoadAdapterStateDict(state, path);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }
}
