using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;

namespace Peft.Onnx.Runtime;

/// <summary>
/// The logits at the last virtual token of a prompt-tuning or p-tuning export (<see cref="CausalLmContract.VirtualTokenLogitsFile"/>):
/// PEFT's loss scores them against each row's first label, a term the graph's logits (real tokens only) lack.
/// </summary>
public static class VirtualTokenLogits
{
    /// <summary>The stored logits [<paramref name="vocab"/>], or null when the folder has none (base, LoRA and prefix exports).</summary>
    public static float[]? Load(string onnxDir, int vocab)
    {
        var path = Path.Combine(onnxDir, CausalLmContract.VirtualTokenLogitsFile);
        if (!File.Exists(path)) return null;
        using var file = SafeTensorsFile.Open(path);
        if (!file.Contains(CausalLmContract.VirtualTokenLogits))
            throw new PeftOnnxException($"{path}: no tensor '{CausalLmContract.VirtualTokenLogits}' (expected float32 [{vocab}])");
        var shape = file[CausalLmContract.VirtualTokenLogits].Shape;
        if (shape.Length != 1 || shape[0] != vocab)
            throw new PeftOnnxException($"{path}: tensor '{CausalLmContract.VirtualTokenLogits}' has shape [{string.Join(", ", shape)}] but the export's vocabulary needs [{vocab}]");
        return file.ReadFloat32(CausalLmContract.VirtualTokenLogits);
    }
}
